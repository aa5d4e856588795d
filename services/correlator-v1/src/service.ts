/**
 * The V1 correlator, the plan's baseline: `eachMessage` on tapio.events.v1 in group tapio-v1,
 * decoding through the schema-registry client, the rules the routing header lists evaluated by the
 * V1 engine, one produce per result (acks=all) to tapio.results keyed by scope key. An offset is
 * committed only after that record's results are acknowledged: kafkajs resolves a message's offset
 * only when eachMessage returns, and eachMessage returns only after the produces resolve. A record's
 * results are kept until acknowledged: a retry after a failed produce re-sends them instead of
 * evaluating the record again (which would count its event twice, or, being a redelivery, lose them).
 * Undecodable or invalid records go to the dead-letter topic with the reason; the service goes on.
 */
import { V1Engine } from '@tapio/engine-v1';
import type { Result } from '@tapio/events';
import type { TapioError } from '@tapio/errors';
import { errorCode, findTapioError, isRetriable } from '@tapio/errors';
import { RegistryCodec, toEvent } from '@tapio/events';
import type { Event } from '@tapio/events';
import { DeadLetterQueue, ROUTING_HEADERS, headerText } from '@tapio/kafka';
import type { EachMessagePayload } from '@tapio/kafka';
import { EngineMetrics } from '@tapio/observability';
import { CallWindow, connectConsumer, connectProducer, startEngineHealth } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';

export interface CorrelatorV1Options {
  /** Default: config.topics.eventsV1. */
  inputTopic?: string;
  /** Default: config.topics.results. */
  outputTopic?: string;
  /** Default: config.groups.v1 (tapio-v1). */
  groupId?: string;
  fromBeginning?: boolean;
  /** Test hook: called before each produce of results; an error it returns fails that produce. */
  resultsSendFault?: () => Error | undefined;
}

export async function startCorrelatorV1(
  ctx: ServiceContext,
  options: CorrelatorV1Options = {},
): Promise<RunningService> {
  const { config, logger } = ctx;
  const inputTopic = options.inputTopic ?? config.topics.eventsV1;
  const outputTopic = options.outputTopic ?? config.topics.results;
  const groupId = options.groupId ?? config.groups.v1;
  const metrics = new EngineMetrics(ctx.metrics, 'v1');
  const codec = new RegistryCodec({ url: config.registry.url });
  const resultSchemaId = await codec.registerResult(outputTopic);

  const window = new CallWindow();
  const slowCallNs = BigInt(Math.round(config.correlator.slowCallMs * 1e6));
  const engine = new V1Engine({
    allowedLatenessMs: config.correlation.allowedLatenessMs,
    ruleTimeoutMs: config.correlation.ruleTimeoutMs,
    onRuleError: (ruleId, err) => {
      window.errors++;
      metrics.countError(err.code === 'RULE_TIMEOUT' ? 'timeout' : 'panic');
      logger.warn({ ruleId, code: err.code, err }, 'rule evaluation failed');
    },
  });

  const producer = await connectProducer(ctx);
  const dlq = new DeadLetterQueue(producer, config.topics.dlq, ctx.name);
  const consumer = await connectConsumer(ctx, groupId);
  await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });

  const health = await startEngineHealth(ctx, { engine: 'v1', producer, groupId, inputTopic, window });

  let lateSeen = 0;
  let running = true;
  let lastError: string | undefined;

  const deadLetter = async (payload: EachMessagePayload, err: TapioError): Promise<void> => {
    const { topic, partition, message } = payload;
    const placed = err.withContext({ topic, partition, offset: message.offset });
    await dlq.send(
      { topic, partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers },
      placed.code,
      placed.message,
    );
    metrics.deadLettered.inc({ engine: 'v1', reason: placed.code });
    metrics.countError('invalid');
    window.calls++;
    window.errors++;
    logger.warn({ code: placed.code, topic, partition, offset: message.offset }, placed.message);
  };

  /** Results evaluated and not yet acknowledged, by `partition/offset` (the outbox). */
  const outbox = new Map<string, Result[]>();
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    // A partition that moved away is evaluated afresh by its new owner: its held results go with it.
    const kept = new Set((e.payload.memberAssignment[inputTopic] ?? []).map(String));
    for (const key of outbox.keys()) if (!kept.has(key.slice(0, key.indexOf('/')))) outbox.delete(key);
  });

  const sendResults = async (results: readonly Result[], compared: boolean): Promise<void> => {
    const fault = options.resultsSendFault?.();
    if (fault !== undefined) throw fault;
    await Promise.all(
      results.map((r) =>
        producer.send({
          topic: outputTopic,
          acks: -1,
          messages: [
            {
              key: r.entityKey,
              value: codec.encode(resultSchemaId, r),
              ...(compared ? { headers: { [ROUTING_HEADERS.compared]: '1' } } : {}),
            },
          ],
        }),
      ),
    );
  };

  const handle = async (payload: EachMessagePayload): Promise<void> => {
    const started = process.hrtime.bigint();
    const { topic, partition, message } = payload;
    const context = { topic, partition, offset: message.offset };
    const held = outbox.get(`${partition}/${message.offset}`);
    if (held !== undefined) {
      // Evaluated before, its produce failed: send the same results again.
      await sendResults(held, headerText(message.headers, ROUTING_HEADERS.compared) === '1');
      outbox.delete(`${partition}/${message.offset}`);
      for (const r of held) metrics.results.inc({ engine: 'v1', rule_id: r.ruleId });
      return;
    }
    let event: Event;
    try {
      event = toEvent(await codec.decode(message.value, context));
    } catch (err) {
      const tapioError = findTapioError(err);
      // A registry outage is retried (kafkajs redelivers from this offset); bad bytes are dead-lettered.
      if (tapioError === undefined || isRetriable(err)) throw err;
      await deadLetter(payload, tapioError);
      return;
    }
    const rules = headerText(message.headers, ROUTING_HEADERS.rules);
    const scopeKey = headerText(message.headers, ROUTING_HEADERS.scopeKey) ?? message.key?.toString();
    // Route-change handoff: while this engine warms up for the key, its detections are withheld.
    const until = headerText(message.headers, ROUTING_HEADERS.suppressUntil);
    // Shadow comparison: the comparator pairs only results that carry the router's mark.
    const compared = headerText(message.headers, ROUTING_HEADERS.compared) === '1';
    const results =
      rules === undefined || scopeKey === undefined
        ? engine.process(event)
        : engine.processRouted(
            event,
            scopeKey,
            rules.split(',').filter((r) => r.length > 0),
            until === undefined ? -Infinity : Number(until),
          );
    metrics.countEvents(1);
    window.calls++;
    if (results.length > 0) {
      outbox.set(`${partition}/${message.offset}`, results);
      await sendResults(results, compared);
      outbox.delete(`${partition}/${message.offset}`);
      for (const r of results) metrics.results.inc({ engine: 'v1', rule_id: r.ruleId });
    }
    const late = engine.stats.lateEvents;
    if (late > lateSeen) {
      metrics.lateEvents.inc({ engine: 'v1' }, late - lateSeen);
      lateSeen = late;
    }
    const elapsed = process.hrtime.bigint() - started;
    if (elapsed > slowCallNs) window.slowCalls++;
    metrics.processingLatencyMs.observe({ engine: 'v1' }, Number(elapsed) / 1e6);
  };

  await consumer.run({
    partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
    autoCommit: true,
    autoCommitInterval: 1000,
    eachMessage: async (payload) => {
      try {
        await handle(payload);
      } catch (err) {
        lastError = `${errorCode(err)}: ${(err as Error).message}`;
        logger.error(
          { err, partition: payload.partition, offset: payload.message.offset },
          'record failed; will retry',
        );
        throw err;
      }
    },
  });
  logger.info({ inputTopic, outputTopic, groupId }, 'correlator-v1 consuming');

  return {
    health: () => ({
      ok: running,
      engine: 'v1',
      events: engine.stats.events,
      results: engine.stats.results,
      keys: engine.stats.keys,
      lastError,
    }),
    async stop() {
      running = false;
      // disconnect() waits for the in-flight message, commits resolved offsets and leaves the group.
      await consumer.disconnect();
      await health.report().catch(() => undefined);
      await health.stop();
      await producer.disconnect();
    },
  };
}
