/**
 * Getting events onto tapio.events: an Avro sink with an idempotent, acks=all producer, keyed by
 * the source entity, and a pacer that produces from an endless source at a target rate.
 */
import type { TapioConfig } from '@tapio/config';
import { RegistryCodec, sourceKey } from '@tapio/events';
import type { Event } from '@tapio/events';
import type { Kafka, Producer } from '@tapio/kafka';

/** Produces batches of events, Avro-encoded in the wire format, with acks=all. */
export class EventSink {
  private readonly codec: RegistryCodec;
  private producer: Producer | undefined;
  private schemaId = 0;

  constructor(
    config: Readonly<TapioConfig>,
    private readonly kafka: Kafka,
    readonly topic: string,
  ) {
    this.codec = new RegistryCodec({ url: config.registry.url });
  }

  async open(): Promise<void> {
    this.schemaId = await this.codec.registerEvent(this.topic);
    // kafkajs's idempotent producer keeps one request in flight per broker; batches carry the volume.
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await this.producer.connect();
  }

  async send(events: readonly Event[]): Promise<void> {
    if (events.length === 0) return;
    if (this.producer === undefined) throw new Error('EventSink.send before open()');
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: events.map((e) => ({ key: sourceKey(e), value: this.codec.encode(this.schemaId, e) })),
    });
  }

  async close(): Promise<void> {
    await this.producer?.disconnect();
    this.producer = undefined;
  }
}

export interface PaceOptions {
  /** Target events per second (wall clock). */
  rate: number;
  /** Stop after this long; undefined runs until the signal aborts. */
  durationMs?: number;
  /** Most events in one produce request. */
  maxBatch: number;
  /** Ticks per second of the pacer. */
  ticksPerSecond?: number;
  signal?: AbortSignal;
  /** Called after each acknowledged batch. */
  onBatch?: (batchSize: number, totalSent: number) => void;
}

export interface PaceSummary {
  sent: number;
  batches: number;
  seconds: number;
  /** Events per second actually reached. */
  rate: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Produces `next()` events at `rate` per second. Each tick sends what is due (rate x elapsed time
 * minus what was sent), in batches of at most maxBatch, and awaits the acknowledgement before the
 * next tick, so a slow broker lowers the rate instead of piling up memory.
 */
export async function produceAtRate(
  next: () => Event,
  sink: Pick<EventSink, 'send'>,
  options: PaceOptions,
): Promise<PaceSummary> {
  if (!(options.rate > 0)) throw new RangeError(`rate must be positive, got ${options.rate}`);
  const tickMs = 1000 / (options.ticksPerSecond ?? 20);
  const started = performance.now();
  const end = options.durationMs === undefined ? Infinity : started + options.durationMs;
  let sent = 0;
  let batches = 0;
  for (;;) {
    const now = performance.now();
    if (options.signal?.aborted || now >= end) break;
    const due = Math.floor(((Math.min(now, end) - started) / 1000) * options.rate) - sent;
    let remaining = due;
    while (remaining > 0) {
      const size = Math.min(remaining, options.maxBatch);
      const batch: Event[] = new Array<Event>(size);
      for (let i = 0; i < size; i++) batch[i] = next();
      await sink.send(batch);
      sent += size;
      batches++;
      remaining -= size;
      options.onBatch?.(size, sent);
    }
    await sleep(Math.max(0, tickMs - (performance.now() - now)), options.signal);
  }
  const seconds = (performance.now() - started) / 1000;
  return { sent, batches, seconds, rate: seconds > 0 ? sent / seconds : 0 };
}
