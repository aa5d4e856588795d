/**
 * Actions: `eachMessage` on tapio.results.deduped in group tapio-actions. Each result goes to the
 * configured sinks in turn: a structured log line, a JSON webhook (Idempotency-Key: <result id>)
 * and Alertmanager. A sink that still fails after its attempts gets the result on the actions
 * dead-letter topic (header `tapio-actions-sink` names it) and the service goes on. The offset is
 * resolved when eachMessage returns, so only after every sink has delivered or dead-lettered.
 */
import { Counter } from 'prom-client';
import { TapioError, errorCode, findTapioError, isRetriable } from '@tapio/errors';
import { RESULT_SCHEMA, RegistryCodec, WireDecoder, readSchemaId } from '@tapio/events';
import type { Result } from '@tapio/events';
import { DeadLetterQueue, ensureTopics } from '@tapio/kafka';
import type { EachMessagePayload } from '@tapio/kafka';
import { connectConsumer, connectProducer, postOnce } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';
import { alertmanagerSink, webhookSink } from './sinks';
import type { HttpSink } from './sinks';

export { alertOf } from './sinks';
export type { AlertmanagerAlert } from './sinks';

export interface ActionsOptions {
  /** Default: config.topics.resultsDeduped. */
  inputTopic?: string;
  /** Default: config.groups.actions (tapio-actions). */
  groupId?: string;
  fromBeginning?: boolean;
}

/** Header on the actions dead-letter records: the sink that could not take the result. */
export const ACTIONS_SINK_HEADER = 'tapio-actions-sink';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startActions(ctx: ServiceContext, options: ActionsOptions = {}): Promise<RunningService> {
  const { config, logger } = ctx;
  const settings = config.actions;
  const webhook = settings.webhook;
  const inputTopic = options.inputTopic ?? config.topics.resultsDeduped;
  const groupId = options.groupId ?? config.groups.actions;
  const registers = [ctx.metrics];
  const delivered = new Counter({
    name: 'tapio_actions_delivered_total',
    help: 'Results delivered, by sink',
    labelNames: ['sink'],
    registers,
  });
  const failed = new Counter({
    name: 'tapio_actions_failed_total',
    help: 'Results a sink did not take after all attempts (dead-lettered), by sink',
    labelNames: ['sink'],
    registers,
  });
  const retries = new Counter({
    name: 'tapio_actions_retries_total',
    help: 'Retried deliveries, by sink',
    labelNames: ['sink'],
    registers,
  });
  const undecodable = new Counter({
    name: 'tapio_actions_dlq_total',
    help: 'Undecodable results sent to the dead-letter topic, by reason',
    labelNames: ['reason'],
    registers,
  });

  const httpSinks: HttpSink[] = [];
  if (webhook.url !== '') httpSinks.push(webhookSink(webhook.url, webhook.authorization));
  if (settings.alertmanager.url !== '') {
    httpSinks.push(alertmanagerSink(settings.alertmanager.url, settings.alertmanager.authorization));
  }
  const endpoints = Object.fromEntries(httpSinks.map((s) => [s.name, s.endpoint.shown]));
  const sinkNames = [...(settings.log ? ['log'] : []), ...httpSinks.map((s) => s.name)];
  for (const sink of sinkNames) {
    delivered.inc({ sink }, 0);
    failed.inc({ sink }, 0);
  }

  // The actions DLQ is not among topicSpecs (it belongs to this service's config section), so the
  // service makes sure it exists; idempotent and safe with concurrent starts.
  const admin = ctx.kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [
      {
        topic: settings.dlqTopic,
        numPartitions: config.topics.resultPartitions,
        replicationFactor: config.topics.replicationFactor,
        configEntries: [],
      },
    ]);
  } finally {
    await admin.disconnect();
  }

  const codec = new RegistryCodec({ url: config.registry.url });
  const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
  const producer = await connectProducer(ctx);
  const inputDlq = new DeadLetterQueue(producer, config.topics.dlq, ctx.name);
  const sinkDlq = new DeadLetterQueue(producer, settings.dlqTopic, ctx.name);
  const consumer = await connectConsumer(ctx, groupId);
  await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });

  let running = true;
  let lastError: string | undefined;
  const totals = { results: 0, delivered: 0, failed: 0 };

  const decode = async (payload: EachMessagePayload): Promise<Result | undefined> => {
    const { topic, partition, message } = payload;
    const context = { topic, partition, offset: message.offset };
    try {
      const schemaId = readSchemaId(message.value, context);
      if (!decoder.has(schemaId)) await decoder.ensure(schemaId);
      return decoder.decode(message.value, context);
    } catch (err) {
      const tapioError = findTapioError(err);
      if (tapioError === undefined || isRetriable(err)) throw err;
      const placed = tapioError.withContext(context);
      await inputDlq.send(
        { topic, partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers },
        placed.code,
        placed.message,
      );
      undecodable.inc({ reason: placed.code });
      logger.warn({ code: placed.code, ...context }, placed.message);
      return undefined;
    }
  };

  /** Delivers with retries; returns the last failure reason, or undefined when delivered. */
  const deliver = async (sink: HttpSink, result: Result, payload: EachMessagePayload): Promise<string | undefined> => {
    const spec = sink.request(result);
    for (let n = 1; ; n++) {
      const outcome = await postOnce(sink.endpoint, spec.headers, spec.body, webhook.timeoutMs);
      if (outcome.kind === 'ok') return undefined;
      if (outcome.kind === 'fail' || n >= webhook.maxAttempts) return `${outcome.reason} after ${n} attempt(s)`;
      if (!running) {
        // Stopping: leave the offset unresolved so the result is delivered after the restart.
        throw new TapioError('DELIVERY_FAILED', `${sink.name}: stopping during retries of result ${result.id}`, {
          retriable: true,
        });
      }
      retries.inc({ sink: sink.name });
      const exp = Math.min(webhook.backoffMaxMs, webhook.backoffInitialMs * 2 ** (n - 1));
      const jittered = webhook.backoffInitialMs + Math.random() * Math.max(0, exp - webhook.backoffInitialMs);
      const waitMs = Math.min(webhook.backoffMaxMs, Math.max(jittered, outcome.retryAfterMs ?? 0));
      logger.debug({ sink: sink.name, resultId: result.id, attempt: n, reason: outcome.reason, waitMs }, 'retrying');
      await sleep(waitMs);
      await payload.heartbeat();
    }
  };

  const handle = async (payload: EachMessagePayload): Promise<void> => {
    const result = await decode(payload);
    if (result === undefined) return;
    totals.results++;
    if (settings.log) {
      logger.info({ result }, `result ${result.ruleId} ${result.severity} on ${result.entityKey}`);
      delivered.inc({ sink: 'log' });
    }
    for (const sink of httpSinks) {
      const failure = await deliver(sink, result, payload);
      if (failure === undefined) {
        delivered.inc({ sink: sink.name });
        totals.delivered++;
        continue;
      }
      const { topic, partition, message } = payload;
      const error = new TapioError('DELIVERY_FAILED', `${sink.name} did not take result ${result.id}: ${failure}`, {
        context: { topic, partition, offset: message.offset },
      });
      await sinkDlq.send(
        {
          topic,
          partition,
          offset: message.offset,
          key: message.key,
          value: message.value,
          headers: { ...message.headers, [ACTIONS_SINK_HEADER]: sink.name },
        },
        error.code,
        error.message,
      );
      failed.inc({ sink: sink.name });
      totals.failed++;
      logger.warn(
        { sink: sink.name, endpoint: sink.endpoint.shown, resultId: result.id, code: error.code },
        error.message,
      );
    }
  };

  await consumer.run({
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
  logger.info({ inputTopic, groupId, sinks: sinkNames, endpoints }, 'actions consuming');

  return {
    health: () => ({ ok: running, sinks: sinkNames, ...totals, lastError }),
    async stop() {
      running = false;
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}
