/**
 * Dedup (ARCHITECTURE.md, Delivery guarantees): `eachBatch` on tapio.results in group tapio-dedup.
 * Per batch, one pipelined round trip sets `SET <prefix><fingerprint> <result id> NX PX <ttl>`
 * followed by `GET` of the same key for every decodable result:
 *   - SET succeeded, or the stored id is this result's own id (a redelivery, e.g. after a crash
 *     between SET and forward) → the original bytes go to tapio.results.deduped, same key;
 *   - another id is stored → a duplicate within the TTL: counted, not forwarded.
 * Offsets are resolved only after the forward (acks=-1, idempotent producer) and the dead-letters
 * are acknowledged. While Redis fails, the partition is paused and the batch retried with
 * exponential backoff and jitter, heartbeating meanwhile; nothing is committed, dropped or let
 * through, unless `dedup.failOpenAfterMs` > 0 and the outage has lasted that long.
 */
import type Redis from 'ioredis';
import { Counter, Gauge, Histogram } from 'prom-client';
import { TapioError, errorCode, findTapioError, isRetriable } from '@tapio/errors';
import { RegistryCodec, RESULT_SCHEMA, WireDecoder, readSchemaId } from '@tapio/events';
import type { Result } from '@tapio/events';
import { DeadLetterQueue } from '@tapio/kafka';
import type { EachBatchPayload, KafkaMessage } from '@tapio/kafka';
import { fingerprint } from '@tapio/rules';
import { BackgroundCommitter, connectConsumer, connectProducer } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';
import { createRedis } from './redis';

export { redisOptions } from './redis';

export interface DedupOptions {
  /** Default: config.topics.results. */
  inputTopic?: string;
  /** Default: config.topics.resultsDeduped. */
  outputTopic?: string;
  /** Default: config.groups.dedup (tapio-dedup). */
  groupId?: string;
  fromBeginning?: boolean;
}

export type DedupOutcome = 'forwarded' | 'redelivered' | 'duplicate' | 'failopen';

type Identity = Pick<Result, 'id' | 'ruleId' | 'entityKey'>;

interface Item {
  readonly message: KafkaMessage;
  readonly id: string;
  readonly redisKey: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Exponential backoff with full jitter in [initial, cap]. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(initialMs + Math.random() * Math.max(0, cap - initialMs));
}

export async function startDedup(ctx: ServiceContext, options: DedupOptions = {}): Promise<RunningService> {
  const { config, logger } = ctx;
  const settings = config.dedup;
  const inputTopic = options.inputTopic ?? config.topics.results;
  const outputTopic = options.outputTopic ?? config.topics.resultsDeduped;
  const groupId = options.groupId ?? config.groups.dedup;
  const registers = [ctx.metrics];
  const outcomes = new Counter({
    name: 'tapio_dedup_results_total',
    help: 'Results by dedup outcome: forwarded (first), redelivered (same id again), duplicate (dropped), failopen',
    labelNames: ['outcome'],
    registers,
  });
  const redisErrors = new Counter({
    name: 'tapio_dedup_redis_errors_total',
    help: 'Failed Redis round trips (each retried)',
    registers,
  });
  const pausedGauge = new Gauge({
    name: 'tapio_dedup_paused',
    help: 'Partitions paused while Redis is unavailable',
    registers,
  });
  const batchLatencyMs = new Histogram({
    name: 'tapio_dedup_batch_latency_ms',
    help: 'Wall time of one batch, from receipt to forward acknowledged',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000],
    registers,
  });
  const deadLettered = new Counter({
    name: 'tapio_dedup_dlq_total',
    help: 'Results sent to the dead-letter topic, by reason',
    labelNames: ['reason'],
    registers,
  });
  for (const outcome of ['forwarded', 'redelivered', 'duplicate', 'failopen'] as const) outcomes.inc({ outcome }, 0);

  const codec = new RegistryCodec({ url: config.registry.url });
  const decoder = new WireDecoder<Identity>(codec, RESULT_SCHEMA, { projection: ['id', 'ruleId', 'entityKey'] });

  const redis: Redis = createRedis(config, settings.commandTimeoutMs);
  let redisUp = false;
  let lastRedisErrorLogAt = 0;
  redis.on('ready', () => {
    redisUp = true;
    logger.info('redis ready');
  });
  redis.on('error', (err: Error) => {
    redisUp = false;
    // ioredis emits one error per reconnect attempt; one line per 5 s is enough.
    if (Date.now() - lastRedisErrorLogAt > 5000) {
      lastRedisErrorLogAt = Date.now();
      logger.warn({ err: err.message }, 'redis connection error');
    }
  });

  const producer = await connectProducer(ctx);
  const dlq = new DeadLetterQueue(producer, config.topics.dlq, ctx.name);
  const consumer = await connectConsumer(ctx, groupId);
  await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });

  let running = true;
  let lastError: string | undefined;
  let pausedPartitions = 0;
  const totals = { forwarded: 0, redelivered: 0, duplicate: 0, failopen: 0, deadLettered: 0 };

  /** Reads id and fingerprint; undefined after dead-lettering a record that cannot be read. */
  const identify = async (topic: string, partition: number, message: KafkaMessage): Promise<Identity | undefined> => {
    const context = { topic, partition, offset: message.offset };
    try {
      const schemaId = readSchemaId(message.value, context);
      // A registry outage must be retried, not dead-lettered: ensure() rejects retriably for it.
      if (!decoder.has(schemaId)) await decoder.ensure(schemaId);
      const r = decoder.decode(message.value, context);
      if (r.id === '' || r.ruleId === '' || r.entityKey === '') {
        throw new TapioError('MALFORMED_RECORD', 'result lacks id, ruleId or entityKey', { context });
      }
      return r;
    } catch (err) {
      const tapioError = findTapioError(err);
      if (tapioError === undefined || isRetriable(err)) throw err;
      const placed = tapioError.withContext(context);
      await dlq.send(
        { topic, partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers },
        placed.code,
        placed.message,
      );
      deadLettered.inc({ reason: placed.code });
      totals.deadLettered++;
      logger.warn({ code: placed.code, ...context }, placed.message);
      return undefined;
    }
  };

  /**
   * One pipelined round trip: SET NX PX then GET of the same key, per item. Throws
   * REDIS_UNAVAILABLE on any failure; the caller retries the whole set, which is safe because a
   * key we set earlier reads back as our own id. An item whose key expired between the two
   * commands reads null and is left undecided for the next round.
   */
  const decideRound = async (items: readonly Item[], setEarlier: Set<string>): Promise<Map<Item, DedupOutcome>> => {
    const pipeline = redis.pipeline();
    for (const item of items) {
      pipeline.set(item.redisKey, item.id, 'PX', settings.ttlMs, 'NX');
      pipeline.get(item.redisKey);
    }
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch (cause) {
      throw new TapioError('REDIS_UNAVAILABLE', `redis pipeline failed: ${(cause as Error).message}`, { cause });
    }
    if (replies === null || replies.length !== items.length * 2) {
      throw new TapioError('REDIS_UNAVAILABLE', 'redis pipeline returned no replies');
    }
    const decided = new Map<Item, DedupOutcome>();
    items.forEach((item, i) => {
      const [setErr, setReply] = replies[2 * i] as [Error | null, unknown];
      const [getErr, stored] = replies[2 * i + 1] as [Error | null, unknown];
      const err = setErr ?? getErr;
      if (err !== null) {
        throw new TapioError('REDIS_UNAVAILABLE', `redis command failed: ${err.message}`, { cause: err });
      }
      if (setReply === 'OK') {
        setEarlier.add(item.redisKey + '\n' + item.id);
        decided.set(item, 'forwarded');
      } else if (stored === item.id) {
        decided.set(item, setEarlier.has(item.redisKey + '\n' + item.id) ? 'forwarded' : 'redelivered');
      } else if (typeof stored === 'string') {
        decided.set(item, 'duplicate');
      }
    });
    return decided;
  };

  const eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    const startedAt = process.hrtime.bigint();
    const { topic, partition } = batch;
    const items: Item[] = [];
    for (const message of batch.messages) {
      const r = await identify(topic, partition, message);
      if (r !== undefined) {
        items.push({ message, id: r.id, redisKey: settings.keyPrefix + fingerprint(r.ruleId, r.entityKey) });
      }
    }

    const outcomeOf = new Map<Item, DedupOutcome>();
    const setEarlier = new Set<string>();
    let undecided = items;
    let attempt = 0;
    let downSinceMs: number | undefined;
    let resume: (() => void) | undefined;
    try {
      while (undecided.length > 0) {
        if (!payload.isRunning() || payload.isStale()) return; // shutting down or rebalanced: nothing resolved, nothing committed
        try {
          const decided = await decideRound(undecided, setEarlier);
          for (const [item, outcome] of decided) outcomeOf.set(item, outcome);
          undecided = undecided.filter((item) => !decided.has(item));
          attempt = 0;
        } catch (err) {
          if (errorCode(err) !== 'REDIS_UNAVAILABLE') throw err;
          redisErrors.inc();
          lastError = `REDIS_UNAVAILABLE: ${(err as Error).message}`;
          downSinceMs ??= Date.now();
          if (resume === undefined) {
            resume = payload.pause();
            pausedPartitions++;
            pausedGauge.set(pausedPartitions);
            logger.warn(
              { topic, partition, err: (err as Error).message },
              'redis unavailable: partition paused, retrying',
            );
          }
          if (settings.failOpenAfterMs > 0 && Date.now() - downSinceMs >= settings.failOpenAfterMs) {
            for (const item of undecided) outcomeOf.set(item, 'failopen');
            logger.error(
              { topic, partition, results: undecided.length, downMs: Date.now() - downSinceMs },
              'redis down longer than failOpenAfterMs: forwarding without dedup',
            );
            undecided = [];
            break;
          }
          const waitMs = backoffMs(attempt++, settings.retryInitialMs, settings.retryMaxMs);
          // Sleep in slices so the group keeps this member while it waits.
          for (let left = waitMs; left > 0; left -= config.kafka.heartbeatIntervalMs) {
            await sleep(Math.min(left, config.kafka.heartbeatIntervalMs));
            await payload.heartbeat();
          }
        }
      }
    } finally {
      if (resume !== undefined) {
        resume();
        pausedPartitions--;
        pausedGauge.set(pausedPartitions);
        if (undecided.length === 0) logger.info({ topic, partition }, 'redis back: partition resumed');
      }
    }

    const forward = items.filter((item) => outcomeOf.get(item) !== 'duplicate');
    if (forward.length > 0) {
      await producer.send({
        topic: outputTopic,
        acks: -1,
        messages: forward.map(({ message }) => ({ key: message.key, value: message.value, headers: message.headers })),
      });
    }
    for (const outcome of outcomeOf.values()) {
      outcomes.inc({ outcome });
      totals[outcome]++;
    }
    const last = batch.messages[batch.messages.length - 1];
    if (last !== undefined) payload.resolveOffset(last.offset);
    await payload.heartbeat();
    await committer.resolved(payload);
    batchLatencyMs.observe(Number(process.hrtime.bigint() - startedAt) / 1e6);
  };

  // Not per batch: kafkajs commits after every batch when autoCommit is on, and a commit per batch
  // was most of a hop's latency (see BackgroundCommitter); resolved offsets are committed in the background.
  const committer = new BackgroundCommitter(consumer, config.kafka.commitIntervalMs, logger);
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async (payload) => {
      try {
        await eachBatch(payload);
      } catch (err) {
        lastError = `${errorCode(err)}: ${(err as Error).message}`;
        logger.error(
          { err, partition: payload.batch.partition, firstOffset: payload.batch.firstOffset() },
          'batch failed; will retry',
        );
        throw err;
      }
    },
  });
  logger.info({ inputTopic, outputTopic, groupId, ttlMs: settings.ttlMs }, 'dedup consuming');

  return {
    health: () => ({
      ok: running,
      redisUp,
      pausedPartitions,
      ...totals,
      lastError,
    }),
    async stop() {
      running = false;
      // What is resolved now is committed here; disconnect() lets the running batch end (a Redis retry
      // loop sees isRunning() false and returns unresolved; a finished batch commits its own) and leaves the group.
      await committer.stop();
      await consumer.disconnect();
      await producer.disconnect();
      redis.disconnect();
    },
  };
}
