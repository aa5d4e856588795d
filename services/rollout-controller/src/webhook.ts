/**
 * Webhook notifications of the rollout (stage change, rollback, completion): POST JSON, a few
 * attempts with backoff, one at a time in order, never awaited by the evaluation loop.
 */
import type { Logger } from '@tapio/observability';

export interface RolloutNotification {
  event: 'stage-changed' | 'rollback' | 'completed';
  rolloutId: string;
  status: string;
  /** 1-based. */
  stage: number;
  stages: number;
  v2Percentage: number;
  reason: string;
  at: string;
  [detail: string]: unknown;
}

export interface WebhookOptions {
  url: string;
  logger: Logger;
  maxAttempts?: number;
  timeoutMs?: number;
  backoffMs?: number;
  onFailure?: () => void;
}

export class WebhookNotifier {
  private readonly queue: RolloutNotification[] = [];
  private pumping: Promise<void> | null = null;
  private closed = false;
  private readonly maxAttempts: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;

  constructor(private readonly options: WebhookOptions) {
    this.maxAttempts = options.maxAttempts ?? 4;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.backoffMs = options.backoffMs ?? 500;
  }

  /** Queues a notification; does nothing when no URL is configured. */
  notify(n: RolloutNotification): void {
    if (this.options.url === '' || this.closed) return;
    this.queue.push(n);
    this.pumping ??= this.pump().finally(() => (this.pumping = null));
  }

  /** Lets the queue drain for at most `graceMs`, then drops what is left. */
  async close(graceMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.pumping ?? Promise.resolve(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.closed = true;
    this.queue.length = 0;
  }

  private async pump(): Promise<void> {
    for (let n = this.queue.shift(); n !== undefined; n = this.queue.shift()) await this.deliver(n);
  }

  private async deliver(n: RolloutNotification): Promise<void> {
    const body = JSON.stringify(n);
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      try {
        const res = await fetch(this.options.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        // A 4xx other than 408/429 will not get better by asking again.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          this.options.logger.warn({ status: res.status, event: n.event }, 'rollout webhook refused the notification');
          this.options.onFailure?.();
          return;
        }
      } catch (err) {
        this.options.logger.debug({ err, attempt }, 'rollout webhook attempt failed');
      }
      if (attempt < this.maxAttempts && !this.closed) {
        await new Promise((r) => setTimeout(r, this.backoffMs * 2 ** (attempt - 1)));
      }
    }
    this.options.logger.warn({ event: n.event, attempts: this.maxAttempts }, 'rollout webhook not delivered');
    this.options.onFailure?.();
  }
}
