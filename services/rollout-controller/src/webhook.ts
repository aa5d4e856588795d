/**
 * Webhook notifications of the rollout (stage change, rollback, completion): POST JSON, a few
 * attempts with backoff, one at a time in order, never awaited by the evaluation loop. Redirects
 * are not followed (`postOnce`); logs show the URL through `redactUrl` only.
 */
import type { Logger } from '@tapio/observability';
import { httpEndpoint, postOnce } from '@tapio/runtime';
import type { HttpEndpoint } from '@tapio/runtime';

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
  /** Authorization header value (a secret from the config); '' or absent: none. */
  authorization?: string;
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
  private readonly endpoint: HttpEndpoint | null;

  constructor(private readonly options: WebhookOptions) {
    this.maxAttempts = options.maxAttempts ?? 4;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.backoffMs = options.backoffMs ?? 500;
    this.endpoint = options.url === '' ? null : httpEndpoint(options.url, options.authorization);
  }

  /** The URL as logs may show it; '' when off. */
  get shownUrl(): string {
    return this.endpoint?.shown ?? '';
  }

  /** Queues a notification; does nothing when no URL is configured. */
  notify(n: RolloutNotification): void {
    if (this.endpoint === null || this.closed) return;
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
    const endpoint = this.endpoint as HttpEndpoint;
    const body = JSON.stringify(n);
    const log = { event: n.event, url: endpoint.shown };
    let reason = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const outcome = await postOnce(endpoint, { 'content-type': 'application/json' }, body, this.timeoutMs);
      if (outcome.kind === 'ok') return;
      reason = outcome.reason;
      // A 4xx other than 408/429 will not get better by asking again.
      if (outcome.kind === 'fail') {
        this.options.logger.warn({ ...log, reason }, 'rollout webhook refused the notification');
        this.options.onFailure?.();
        return;
      }
      this.options.logger.debug({ ...log, attempt, reason }, 'rollout webhook attempt failed');
      if (attempt < this.maxAttempts && !this.closed) {
        await new Promise((r) => setTimeout(r, this.backoffMs * 2 ** (attempt - 1)));
      }
    }
    this.options.logger.warn({ ...log, attempts: this.maxAttempts, reason }, 'rollout webhook not delivered');
    this.options.onFailure?.();
  }
}
