/**
 * One produce request for the batches handled at the same time.
 *
 * With `partitionsConsumedConcurrently` > 1, several partition batches of one fetch are in flight at
 * once, and each produces its outputs. kafkajs sends one request per `sendBatch` call, and the
 * idempotent producer keeps one request in flight per broker, so the batches' produces queue up
 * behind each other: a record's wait grows with the number of partitions in the fetch. This sender
 * merges the calls made while a request is in flight (and within the same turn of the event loop)
 * into the next request: at most two requests per round of batches instead of one per batch.
 *
 * A call resolves when the request holding its records is acknowledged (acks=all) and rejects when
 * that request fails, so "commit only after the outputs are acknowledged" holds per caller. Records
 * keep their call order within a topic, so per-partition (per-key) order is that of the calls.
 */
import type { Producer } from '@tapio/kafka';

export interface OutRecord {
  key?: string | Buffer | null;
  value: Buffer | string | null;
  headers?: Record<string, string | Buffer>;
  partition?: number;
}

export interface TopicRecords {
  topic: string;
  messages: OutRecord[];
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class CoalescingSender {
  private queued = new Map<string, OutRecord[]>();
  private waiters: Waiter[] = [];
  private pumping = false;
  /** Produce requests sent and calls served (for metrics and tests). */
  requests = 0;
  calls = 0;

  constructor(private readonly producer: Producer) {}

  /** Resolves once every record of this call is acknowledged by the broker (acks=all). */
  send(topicMessages: readonly TopicRecords[]): Promise<void> {
    let any = false;
    for (const { topic, messages } of topicMessages) {
      if (messages.length === 0) continue;
      any = true;
      const list = this.queued.get(topic);
      if (list === undefined) this.queued.set(topic, [...messages]);
      else for (const m of messages) list.push(m);
    }
    if (!any) return Promise.resolve();
    this.calls++;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.pumping) void this.pump();
    return done;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    // Let the batches that finish in this turn of the event loop join the first request.
    await new Promise<void>((r) => setImmediate(r));
    while (this.waiters.length > 0) {
      const queued = this.queued;
      const waiters = this.waiters;
      this.queued = new Map();
      this.waiters = [];
      this.requests++;
      try {
        await this.producer.sendBatch({
          acks: -1,
          topicMessages: [...queued].map(([topic, messages]) => ({ topic, messages })),
        });
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.pumping = false;
  }
}
