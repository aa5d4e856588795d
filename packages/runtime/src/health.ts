/**
 * Periodic health snapshots on the health topic (ARCHITECTURE.md: "engines' periodic health
 * snapshots; the rollout controller reads it"; the router's breaker too). The service supplies the
 * snapshot; this class adds the consumer lag of its group and produces it, keyed by instance.
 */
import { hostname } from 'node:os';
import type { Admin, Kafka, Producer } from '@tapio/kafka';
import type { Logger } from '@tapio/observability';

export interface HealthReporterOptions {
  kafka: Kafka;
  producer: Producer;
  topic: string;
  intervalMs: number;
  groupId: string;
  inputTopic: string;
  /** Builds the snapshot; `lag` is filled in by the reporter. */
  snapshot: (lag: number) => object;
  logger: Logger;
}

export function instanceName(service: string): string {
  return `${service}@${hostname()}:${process.pid}`;
}

/** Records not yet consumed by the group: end offsets minus committed offsets, summed. */
export async function consumerLag(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const done = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  let lag = 0;
  for (const p of ends) {
    const c = done.get(p.partition) ?? -1;
    lag += Math.max(0, Number(p.high) - (c < 0 ? Number(p.low) : c));
  }
  return lag;
}

export class HealthReporter {
  private timer: NodeJS.Timeout | undefined;
  private admin: Admin | undefined;
  /** The last snapshot queued (never rejects): each new one starts after it, so none overlap. */
  private tail: Promise<void> = Promise.resolve();
  /** Snapshots queued or being published. */
  private pending = 0;
  private stopped = false;

  constructor(private readonly options: HealthReporterOptions) {}

  async start(): Promise<void> {
    this.admin = this.options.kafka.admin();
    await this.admin.connect();
    this.timer = setInterval(() => {
      // One snapshot at a time: while the group rebalances the lag query can take seconds, and ticks
      // that each started another one piled up sends that stop() did not wait for (they reconnected
      // the producer after the service had disconnected it, and held the process open).
      if (this.pending > 0 || this.stopped) return;
      this.report().catch((err: unknown) => this.options.logger.warn({ err }, 'health snapshot not published'));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /**
   * Publishes one snapshot (also used at shutdown so the last figures are not lost), after the one
   * in flight if any, so that two never overlap.
   */
  report(): Promise<void> {
    this.pending += 1;
    const run = this.tail.then(() => this.publish()).finally(() => (this.pending -= 1));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async publish(): Promise<void> {
    const o = this.options;
    const lag = this.admin ? await consumerLag(this.admin, o.groupId, o.inputTopic).catch(() => 0) : 0;
    const snapshot = o.snapshot(lag);
    await o.producer.send({
      topic: o.topic,
      acks: -1,
      messages: [{ key: (snapshot as { instance?: string }).instance ?? null, value: JSON.stringify(snapshot) }],
    });
  }

  /** Stops the timer and waits for the snapshot in flight; the producer is the caller's to disconnect after. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.tail;
    await this.admin?.disconnect();
  }
}

/** A correlator's calls, errors and slow calls since its last health snapshot. */
export class CallWindow {
  calls = 0;
  errors = 0;
  slowCalls = 0;

  /** The counts so far, and a fresh window. */
  take(): { calls: number; errors: number; slowCalls: number } {
    const counts = { calls: this.calls, errors: this.errors, slowCalls: this.slowCalls };
    this.calls = 0;
    this.errors = 0;
    this.slowCalls = 0;
    return counts;
  }
}

export interface EngineHealthOptions {
  engine: 'v1' | 'v2';
  producer: Producer;
  groupId: string;
  inputTopic: string;
  window: CallWindow;
}

/**
 * Starts the periodic snapshot of a correlator (the router's breaker and the rollout controller read
 * it: @tapio/routing's HealthSnapshot shape) on the configured health topic.
 */
export async function startEngineHealth(
  ctx: {
    name: string;
    kafka: Kafka;
    logger: Logger;
    config: { topics: { health: string }; correlator: { healthIntervalMs: number } };
  },
  options: EngineHealthOptions,
): Promise<HealthReporter> {
  const instance = instanceName(ctx.name);
  const reporter = new HealthReporter({
    kafka: ctx.kafka,
    producer: options.producer,
    topic: ctx.config.topics.health,
    intervalMs: ctx.config.correlator.healthIntervalMs,
    groupId: options.groupId,
    inputTopic: options.inputTopic,
    logger: ctx.logger,
    snapshot: (lag) => ({ engine: options.engine, instance, at: Date.now(), ...options.window.take(), lag }),
  });
  await reporter.start();
  return reporter;
}
