/**
 * The V2 correlator: `eachBatch` on tapio.events.v2 in group tapio-v2 (shadow role:
 * tapio.events.v2.shadow in tapio-v2-shadow, results to tapio.results.shadow). A batch is decoded
 * synchronously from the message buffers (projection to the fields rules read), evaluated as a
 * whole, its results produced together with its dead letters (acks=all; in one request with those of
 * the other partitions' batches finishing at the same time, CoalescingSender), and only then are its
 * offsets resolved; resolved offsets are committed in the background at most every
 * `kafka.commitIntervalMs` (BackgroundCommitter: a commit per batch was most of the hop's latency).
 * Heartbeats go out during long batches.
 *
 * A registry outage is found while decoding, before any record touches the engine, and fails the
 * batch so kafkajs redelivers it: the engine never sees a record twice because of it.
 */
import { RowBatch, RuleEventDecoder, V2Engine } from '@tapio/engine-v2';
import type { EventRow } from '@tapio/engine-v2';
import type { TapioError } from '@tapio/errors';
import { RegistryCodec } from '@tapio/events';
import type { Result } from '@tapio/events';
import { DLQ_HEADERS, ROUTING_HEADERS, headerText } from '@tapio/kafka';
import type { EachBatchPayload, KafkaMessage } from '@tapio/kafka';
import { EngineMetrics } from '@tapio/observability';
import {
  BackgroundCommitter,
  CallWindow,
  CoalescingSender,
  connectConsumer,
  connectProducer,
  startEngineHealth,
} from '@tapio/runtime';
import type { RunningService, ServiceContext, TopicRecords } from '@tapio/runtime';

export interface CorrelatorV2Options {
  role?: 'primary' | 'shadow';
  inputTopic?: string;
  outputTopic?: string;
  groupId?: string;
  fromBeginning?: boolean;
  /** Test hook: called per record before evaluation; throwing counts as an engine error. */
  faultInjector?: (event: { id: string; type: string; timestamp: number }) => void;
  /** Test hook: called before each produce of a batch's results; an error it returns fails that produce. */
  resultsSendFault?: () => Error | undefined;
}

type TopicMessages = TopicRecords[];

/** A batch's evaluated output whose produce failed: re-sent, not re-evaluated, when the records come again. */
interface Held {
  /** Offset of the last record evaluated. */
  lastOffset: bigint;
  topicMessages: TopicMessages;
}

/** Heartbeat at least this often inside a batch (well under the session timeout). */
const HEARTBEAT_EVERY_MS = 1000;

/** A valid Avro record can still break RULES.md (empty id, type or entity name). */
function contractProblem(e: EventRow): string | undefined {
  if (e.idIsEmpty) return 'id';
  if (e.type.length === 0) return 'type';
  if (e.kind.length === 0) return 'entity.kind';
  if (e.name.length === 0) return 'entity.name';
  return undefined;
}

export async function startCorrelatorV2(
  ctx: ServiceContext,
  options: CorrelatorV2Options = {},
): Promise<RunningService> {
  const { config, logger } = ctx;
  const role = options.role ?? config.correlator.role;
  const shadow = role === 'shadow';
  const inputTopic = options.inputTopic ?? (shadow ? config.topics.eventsV2Shadow : config.topics.eventsV2);
  const outputTopic = options.outputTopic ?? (shadow ? config.topics.resultsShadow : config.topics.results);
  const groupId = options.groupId ?? (shadow ? config.groups.v2Shadow : config.groups.v2);
  const metrics = new EngineMetrics(ctx.metrics, 'v2');
  const codec = new RegistryCodec({ url: config.registry.url });
  const resultSchemaId = await codec.registerResult(outputTopic);
  const decoder = new RuleEventDecoder(codec);
  const slowCallNs = BigInt(Math.round(config.correlator.slowCallMs * 1e6));

  const window = new CallWindow();
  const engine = new V2Engine({
    allowedLatenessMs: config.correlation.allowedLatenessMs,
    ruleTimeoutMs: config.correlation.ruleTimeoutMs,
    onRuleError: (ruleId, err) => {
      metrics.countError(err.code === 'RULE_TIMEOUT' ? 'timeout' : 'panic');
      window.errors++;
      logger.warn({ ruleId, code: err.code }, err.message);
    },
  });
  // Records of types no rule reads are still read and checked in full, but their entity and maps are not kept.
  decoder.projectTypes(engine.fieldNeeds());

  const producer = await connectProducer(ctx);
  // Batches of several partitions finish at once: their results share one produce request.
  const sender = new CoalescingSender(producer);
  const consumer = await connectConsumer(ctx, groupId);
  await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });
  const committer = new BackgroundCommitter(consumer, config.kafka.commitIntervalMs, logger);

  const health = await startEngineHealth(ctx, { engine: 'v2', producer, groupId, inputTopic, window });

  // Decoded rows, reused: one RowBatch per batch in flight (batches of several partitions are in
  // flight at once and the handler awaits between records), returned here when the batch is done.
  const freeRows: RowBatch[] = [];
  /** The outbox, per input partition (see Held). */
  const outbox = new Map<number, Held>();
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    // A partition that moved away is evaluated afresh by its new owner: its held output goes with it.
    const kept = new Set(e.payload.memberAssignment[inputTopic] ?? []);
    for (const partition of outbox.keys()) if (!kept.has(partition)) outbox.delete(partition);
  });

  let lateSeen = 0;
  let running = true;
  let lastError: string | undefined;

  const handleBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    const messages: KafkaMessage[] = batch.messages;
    if (messages.length === 0) return;
    const started = process.hrtime.bigint();
    const values = messages.map((m) => m.value);
    await decoder.prepare(values);
    const offsets = messages.map((m) => m.offset);
    const rows = freeRows.pop() ?? new RowBatch();
    try {
      await evaluateBatch(payload, messages, values, offsets, rows, started);
    } finally {
      freeRows.push(rows);
    }
  };

  const evaluateBatch = async (
    payload: EachBatchPayload,
    messages: KafkaMessage[],
    values: Array<Buffer | null>,
    offsets: string[],
    rows: RowBatch,
    started: bigint,
  ): Promise<void> => {
    const { batch } = payload;
    const results: Result[] = [];
    const bad = decoder.decodeRows(values, rows, {
      topic: batch.topic,
      partition: batch.partition,
      offsets,
    });
    const errors: ReadonlyArray<TapioError | null> = rows.errors;
    if (bad > 0) {
      // Decide retry versus dead letter before the engine sees anything of this batch.
      const transient = errors.find((e) => e !== null && e.retriable);
      if (transient) throw transient;
    }

    const deadLetters: { key: Buffer | null; value: Buffer | null; headers: Record<string, string | Buffer> }[] = [];
    let lastBeat = Date.now();
    // Records whose output is held (a produce failed after they were evaluated) are not evaluated again.
    const held = outbox.get(batch.partition);
    let first = 0;
    if (held !== undefined)
      while (first < messages.length && BigInt(offsets[first] as string) <= held.lastOffset) first++;
    // Records evaluated so far: a stop or rebalance mid-batch ends the loop early, and only these
    // may have their offsets resolved (resolving the batch's last offset lost the rest on SIGTERM).
    let done = first;
    for (let i = first; i < messages.length; i++, done = i) {
      if (!running || !payload.isRunning() || payload.isStale()) break;
      const message = messages[i] as KafkaMessage;
      let problem: TapioError | null = errors[i] ?? null;
      const row = problem === null ? (rows.rows[i] as EventRow) : null;
      const field = row === null ? undefined : contractProblem(row);
      if (row === null || field !== undefined || problem !== null) {
        const code = problem?.code ?? 'INVALID_EVENT';
        const text = problem?.message ?? `empty ${field} (${batch.topic}/${batch.partition}@${message.offset})`;
        deadLetters.push({
          key: message.key,
          value: message.value,
          headers: {
            [DLQ_HEADERS.reason]: code,
            [DLQ_HEADERS.message]: text,
            [DLQ_HEADERS.source]: `${batch.topic}/${batch.partition}@${message.offset}`,
            [DLQ_HEADERS.service]: ctx.name,
            [DLQ_HEADERS.at]: new Date().toISOString(),
          },
        });
        metrics.deadLettered.inc({ engine: 'v2', reason: code });
        metrics.countError('invalid');
        window.errors++;
        window.calls++;
        problem = null;
        continue;
      }
      const t0 = process.hrtime.bigint();
      try {
        if (options.faultInjector !== undefined) {
          options.faultInjector({ id: row.id, type: row.type, timestamp: row.timestamp });
        }
        const rules = headerText(message.headers, ROUTING_HEADERS.rules);
        const scopeKey = headerText(message.headers, ROUTING_HEADERS.scopeKey) ?? message.key?.toString();
        // Route-change handoff: while this engine warms up for the key, its detections are withheld.
        const until = headerText(message.headers, ROUTING_HEADERS.suppressUntil);
        if (rules === undefined || scopeKey === undefined) engine.processRowInto(row, results);
        else {
          engine.processRoutedRowInto(
            row,
            scopeKey,
            rules.split(','),
            results,
            until === undefined ? -Infinity : Number(until),
          );
        }
      } catch (err) {
        metrics.countError('panic');
        window.errors++;
        logger.warn({ err, offset: message.offset }, 'engine failed on a record');
      }
      window.calls++;
      if (process.hrtime.bigint() - t0 > slowCallNs) window.slowCalls++;
      if (Date.now() - lastBeat > HEARTBEAT_EVERY_MS) {
        await payload.heartbeat();
        lastBeat = Date.now();
      }
    }
    const processed = done;
    metrics.countEvents(processed - first - deadLetters.length);

    const topicMessages: TopicMessages = held?.topicMessages.slice() ?? [];
    if (results.length > 0) {
      topicMessages.push({
        topic: outputTopic,
        messages: results.map((r) => ({ key: r.entityKey, value: codec.encode(resultSchemaId, r) })),
      });
    }
    if (deadLetters.length > 0) topicMessages.push({ topic: config.topics.dlq, messages: deadLetters });
    if (topicMessages.length > 0) {
      if (processed > 0) {
        outbox.set(batch.partition, { lastOffset: BigInt(offsets[processed - 1] as string), topicMessages });
      }
      const fault = options.resultsSendFault?.();
      if (fault !== undefined) throw fault;
      await sender.send(topicMessages);
    }
    outbox.delete(batch.partition);
    for (const r of results) metrics.results.inc({ engine: 'v2', rule_id: r.ruleId });

    // Offsets only after the batch's results and dead letters are acknowledged.
    if (processed === 0) return;
    const last = messages[processed - 1] as KafkaMessage;
    payload.resolveOffset(last.offset);
    await committer.resolved(payload);
    await payload.heartbeat();

    const late = engine.stats.lateEvents;
    if (late > lateSeen) {
      metrics.lateEvents.inc({ engine: 'v2' }, late - lateSeen);
      lateSeen = late;
    }
    // Per-record latency of a batch: the batch's time spread over its records.
    const perRecordMs = Number(process.hrtime.bigint() - started) / 1e6 / processed;
    metrics.processingLatencyMs.observe({ engine: 'v2' }, perRecordMs);
  };

  await consumer.run({
    partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
    eachBatchAutoResolve: false,
    // Not per batch: kafkajs commits after every batch when autoCommit is on (see BackgroundCommitter).
    autoCommit: false,
    eachBatch: async (payload) => {
      try {
        await handleBatch(payload);
      } catch (err) {
        lastError = (err as Error).message;
        logger.error({ err, partition: payload.batch.partition }, 'batch failed; will retry');
        throw err;
      }
    },
  });
  logger.info({ role, inputTopic, outputTopic, groupId }, 'correlator-v2 consuming');

  return {
    health: () => ({
      ok: running,
      engine: 'v2',
      role,
      events: engine.stats.events,
      results: engine.stats.results,
      keys: engine.stats.keys,
      suppressed: engine.stats.suppressed,
      lastError,
    }),
    async stop() {
      running = false;
      // What is resolved now is committed here; a batch still running commits its own at its end.
      await committer.stop();
      await consumer.disconnect();
      await health.report().catch(() => undefined);
      await health.stop();
      await producer.disconnect();
    },
  };
}
