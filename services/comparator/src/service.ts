/**
 * Comparator: reads tapio.results (primary) and tapio.results.shadow (V2 shadow) in group
 * tapio-comparator, joins them by (ruleId, entityKey, triggerEventId) within a wall-clock window
 * (@tapio/comparison), counts every classification, logs a sample of the mismatches with both
 * results and publishes a cumulative snapshot to tapio.health every healthIntervalMs.
 * Only primary results with the `tapio-compared` header are paired: V1 puts it on the results of
 * records the router also sent, warm, to the shadow engine. Every other primary result (a key not
 * shadowed, a shadow still warming up, a V2-primary result) is counted as skipped, not as missing.
 * The join state is in memory: a restart forgets the unpaired results of the last window, which
 * only costs comparison coverage, never a result, so offsets are committed as they are read.
 */
import { Counter } from 'prom-client';
import { COMPARISON_KINDS, ComparisonTally, ResultJoiner, isComparablePrimary } from '@tapio/comparison';
import type { Comparison } from '@tapio/comparison';
import { errorCode, findTapioError, isRetriable } from '@tapio/errors';
import { RESULT_SCHEMA, RegistryCodec, WireDecoder, readSchemaId } from '@tapio/events';
import type { Result } from '@tapio/events';
import { DeadLetterQueue, ROUTING_HEADERS, headerText } from '@tapio/kafka';
import type { EachMessagePayload } from '@tapio/kafka';
import { connectConsumer, connectProducer } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';

export interface ComparatorOptions {
  /** Default: config.topics.results. */
  primaryTopic?: string;
  /** Default: config.topics.resultsShadow. */
  shadowTopic?: string;
  /** Default: config.topics.health. */
  healthTopic?: string;
  /** Default: config.groups.comparator (tapio-comparator). */
  groupId?: string;
  fromBeginning?: boolean;
  /** Mismatches logged in full per health interval; the rest are only counted. Default 10. */
  mismatchSamplesPerInterval?: number;
}

/** How often unpaired results are checked against the window. */
const EXPIRY_TICK_MS = 500;

export async function startComparator(ctx: ServiceContext, options: ComparatorOptions = {}): Promise<RunningService> {
  const { config, logger } = ctx;
  const primaryTopic = options.primaryTopic ?? config.topics.results;
  const shadowTopic = options.shadowTopic ?? config.topics.resultsShadow;
  const healthTopic = options.healthTopic ?? config.topics.health;
  const groupId = options.groupId ?? config.groups.comparator;
  const samplesPerInterval = options.mismatchSamplesPerInterval ?? 10;
  const registers = [ctx.metrics];
  const mismatches = new Counter({
    name: 'tapio_result_comparison_mismatch_total',
    help: 'V1 primary vs V2 shadow mismatches, by kind and rule',
    labelNames: ['kind', 'rule_id'],
    registers,
  });
  const comparisons = new Counter({
    name: 'tapio_result_comparison_total',
    help: 'V1 primary vs V2 shadow comparisons, by kind (match, missing_in_v2, extra_in_v2, differing)',
    labelNames: ['kind'],
    registers,
  });
  for (const kind of COMPARISON_KINDS) comparisons.inc({ kind }, 0);
  const skipped = new Counter({
    name: 'tapio_result_comparison_skipped_total',
    help: 'Primary results not compared: a V2-primary result, or a key not shadowed or whose shadow was warming up',
    registers,
  });

  const joiner = new ResultJoiner({ windowMs: config.comparator.windowMs });
  const tally = new ComparisonTally();
  const codec = new RegistryCodec({ url: config.registry.url });
  const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
  const producer = await connectProducer(ctx);
  const dlq = new DeadLetterQueue(producer, config.topics.dlq, ctx.name);

  let samplesLeft = samplesPerInterval;
  const record = (c: Comparison): void => {
    comparisons.inc({ kind: c.kind });
    tally.add(c);
    if (c.kind === 'match') return;
    mismatches.inc({ kind: c.kind, rule_id: c.ruleId });
    if (samplesLeft > 0) {
      samplesLeft--;
      logger.warn(
        { kind: c.kind, joinKey: c.joinKey, differingFields: c.differingFields, primary: c.primary, shadow: c.shadow },
        `shadow comparison: ${c.kind} for ${c.ruleId}`,
      );
    }
  };

  const consumer = await connectConsumer(ctx, groupId);
  await consumer.subscribe({ topics: [primaryTopic, shadowTopic], fromBeginning: options.fromBeginning ?? true });

  let running = true;
  let lastError: string | undefined;
  let undecodable = 0;

  const handle = async (payload: EachMessagePayload): Promise<void> => {
    const { topic, partition, message } = payload;
    const context = { topic, partition, offset: message.offset };
    let result: Result;
    try {
      const schemaId = readSchemaId(message.value, context);
      if (!decoder.has(schemaId)) await decoder.ensure(schemaId);
      result = decoder.decode(message.value, context);
    } catch (err) {
      const tapioError = findTapioError(err);
      if (tapioError === undefined || isRetriable(err)) throw err;
      const placed = tapioError.withContext(context);
      await dlq.send(
        { topic, partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers },
        placed.code,
        placed.message,
      );
      undecodable++;
      logger.warn({ code: placed.code, ...context }, placed.message);
      return;
    }
    const now = Date.now();
    let c: Comparison | undefined;
    if (topic === shadowTopic) c = joiner.addShadow(result, now);
    else {
      const shadowed = headerText(message.headers, ROUTING_HEADERS.compared) === '1';
      if (!shadowed || !isComparablePrimary(result)) skipped.inc();
      c = joiner.addPrimary(result, now, shadowed);
    }
    if (c !== undefined) record(c);
  };

  const expiryTimer = setInterval(() => {
    for (const c of joiner.expire(Date.now())) record(c);
  }, EXPIRY_TICK_MS);
  const publishSnapshot = async (): Promise<void> => {
    const snapshot = tally.snapshot(Date.now());
    await producer.send({
      topic: healthTopic,
      acks: -1,
      messages: [{ key: ctx.name, value: JSON.stringify(snapshot) }],
    });
  };
  // One snapshot at a time, and stop() waits for it before disconnecting the producer (as the
  // correlators' HealthReporter: a send still in flight would reconnect it after the shutdown).
  let snapshotting: Promise<void> | null = null;
  const healthTimer = setInterval(() => {
    samplesLeft = samplesPerInterval;
    if (snapshotting !== null) return;
    snapshotting = publishSnapshot()
      .catch((err: unknown) => {
        lastError = `${errorCode(err)}: ${(err as Error).message}`;
        logger.warn({ err }, 'health snapshot not published');
      })
      .finally(() => {
        snapshotting = null;
      });
  }, config.comparator.healthIntervalMs);

  await consumer.run({
    autoCommit: true,
    autoCommitInterval: 1000,
    eachMessage: async (payload) => {
      try {
        await handle(payload);
      } catch (err) {
        lastError = `${errorCode(err)}: ${(err as Error).message}`;
        logger.error(
          { err, topic: payload.topic, partition: payload.partition, offset: payload.message.offset },
          'record failed; will retry',
        );
        throw err;
      }
    },
  });
  logger.info(
    { primaryTopic, shadowTopic, healthTopic, groupId, windowMs: config.comparator.windowMs },
    'comparator consuming',
  );

  return {
    health: () => ({
      ok: running,
      ...tally.snapshot(Date.now()),
      ...joiner.stats,
      undecodable,
      lastError,
    }),
    async stop() {
      running = false;
      clearInterval(expiryTimer);
      clearInterval(healthTimer);
      await consumer.disconnect();
      if (snapshotting !== null) await snapshotting;
      await publishSnapshot().catch(() => undefined);
      await producer.disconnect();
    },
  };
}
