/**
 * The router (ARCHITECTURE.md, "re-keying by correlation scope", "Routing", "Delivery guarantees"):
 * `eachBatch` on tapio.events in group tapio-router; decodes only the routing fields with a projected
 * WireDecoder; for each planned route produces one record keyed by the scope key, with the ORIGINAL
 * value bytes, to tapio.events.v1 / .v2 / .v2.shadow. A chunk's records are produced together
 * (idempotent producer, acks=all) and its offsets are resolved only after they are acknowledged, so a
 * committed offset never covers an unrouted event. Undecodable input goes to the DLQ; the router goes on.
 *
 * Two side consumers, each in a group unique to this instance: the control topic from the beginning
 * (the routing config under key `routing`; a newer epoch is applied as soon as it is read, an older
 * or equal one is ignored, an invalid one is rejected with its reason and the last good stays) and
 * the health topic from its end (V2 snapshots feed the circuit breaker, V1 lag feeds the load strategy).
 */
import { randomBytes } from 'node:crypto';
import { Counter, Gauge, Histogram } from 'prom-client';
import { TapioError, errorCode, findTapioError, isRetriable } from '@tapio/errors';
import { EVENT_SCHEMA, RegistryCodec, WireDecoder, readSchemaId, toEvent } from '@tapio/events';
import type { Event } from '@tapio/events';
import { DeadLetterQueue, ROUTING_HEADERS } from '@tapio/kafka';
import type { Consumer, KafkaMessage } from '@tapio/kafka';
import {
  BREAKER_GAUGE,
  CircuitBreaker,
  ROUTING_CONTROL_KEY,
  RoutingTable,
  defaultRoutingConfig,
  parseHealthSnapshot,
  parseRoutingConfig,
} from '@tapio/routing';
import type { RouteTarget } from '@tapio/routing';
import { connectProducer } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';

export interface RouterOptions {
  /** Default: config.topics.events. */
  inputTopic?: string;
  /** Defaults: config.topics.eventsV1 / eventsV2 / eventsV2Shadow / control / health. */
  v1Topic?: string;
  v2Topic?: string;
  shadowTopic?: string;
  controlTopic?: string;
  healthTopic?: string;
  /** Default: config.groups.router (tapio-router). */
  groupId?: string;
  fromBeginning?: boolean;
  /** Default: `routing`. */
  controlKey?: string;
  /** Records routed per produce round (offsets are resolved and a heartbeat sent after each). Default 500. */
  chunkSize?: number;
  /** How long start-up waits to read the control topic up to its end. Default 15 s. */
  controlCatchUpMs?: number;
  /** V1 health snapshots older than this no longer count towards V1 lag. Default 60 s. */
  healthStaleMs?: number;
}

/** The fields routing reads (RULES.md scope keys: entity and the `destination` label). */
export const ROUTING_PROJECTION = ['id', 'timestamp', 'type', 'entity', 'labels'] as const;

export async function startRouter(ctx: ServiceContext, options: RouterOptions = {}): Promise<RunningService> {
  const { config, logger } = ctx;
  const inputTopic = options.inputTopic ?? config.topics.events;
  const targets: Record<RouteTarget, string> = {
    v1: options.v1Topic ?? config.topics.eventsV1,
    v2: options.v2Topic ?? config.topics.eventsV2,
    'v2-shadow': options.shadowTopic ?? config.topics.eventsV2Shadow,
  };
  const controlTopic = options.controlTopic ?? config.topics.control;
  const healthTopic = options.healthTopic ?? config.topics.health;
  const groupId = options.groupId ?? config.groups.router;
  const controlKey = options.controlKey ?? ROUTING_CONTROL_KEY;
  const chunkSize = options.chunkSize ?? 500;
  const healthStaleMs = options.healthStaleMs ?? 60_000;
  const maxFutureSkewMs = config.correlation.maxFutureSkewMs;
  const instance = randomBytes(5).toString('hex');

  const registers = [ctx.metrics];
  const selections = new Counter({
    name: 'tapio_engine_selection_count',
    help: 'Routed records produced, by target engine (v1, v2, v2-shadow)',
    labelNames: ['engine'],
    registers,
  });
  const routingLatencyMs = new Histogram({
    name: 'tapio_routing_latency_ms',
    help: 'Time to route one chunk of a batch: decode, plan, produce until acknowledged, ms',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
    registers,
  });
  const epochGauge = new Gauge({
    name: 'tapio_routing_config_epoch',
    help: 'Epoch of the routing config in force',
    registers,
  });
  const breakerGauge = new Gauge({
    name: 'tapio_breaker_state',
    help: 'V2 circuit breaker: 0 closed, 1 half-open, 2 open',
    registers,
  });
  const rejected = new Counter({
    name: 'tapio_routing_config_rejected_total',
    help: 'Routing config records not applied, by reason (an error code, or STALE_EPOCH)',
    labelNames: ['reason'],
    registers,
  });
  const eventsIn = new Counter({ name: 'tapio_router_events_total', help: 'Events read by the router', registers });
  const deadLettered = new Counter({
    name: 'tapio_router_dlq_total',
    help: 'Events dead-lettered by the router, by reason',
    labelNames: ['reason'],
    registers,
  });
  const badHealth = new Counter({
    name: 'tapio_router_health_invalid_total',
    help: 'Health snapshots that could not be read',
    registers,
  });

  const table = new RoutingTable(defaultRoutingConfig(config));
  const breaker = new CircuitBreaker(table.current.breaker);
  epochGauge.set(table.current.epoch);
  breakerGauge.set(BREAKER_GAUGE.closed);
  let configAppliedAtMs: number | null = null;
  const v1Lags = new Map<string, { lag: number; at: number }>();

  const syncBreaker = (nowMs: number): void => {
    const state = breaker.state(nowMs);
    if (state === table.breakerState) return;
    const was = table.breakerState;
    table.setBreaker(state, nowMs);
    breakerGauge.set(BREAKER_GAUGE[state]);
    logger.warn({ from: was, to: state, ...breaker.status(nowMs) }, 'V2 circuit breaker changed state');
  };

  const codec = new RegistryCodec({ url: config.registry.url });
  const decoder = new WireDecoder<unknown>(codec, EVENT_SCHEMA, { projection: ROUTING_PROJECTION });

  const producer = await connectProducer(ctx);
  const dlq = new DeadLetterQueue(producer, config.topics.dlq, ctx.name);

  // --- control topic: the routing config -------------------------------------------------------
  const controlGroup = `${groupId}-control-${instance}`;
  const healthGroup = `${groupId}-health-${instance}`;
  const admin = ctx.kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(controlTopic);
  const catchUp = new Map(ends.filter((p) => p.high !== p.low).map((p) => [p.partition, BigInt(p.high) - 1n]));
  let caughtUp!: () => void;
  const caught = new Promise<void>((resolve) => (caughtUp = resolve));
  if (catchUp.size === 0) caughtUp();

  const onControl = (message: KafkaMessage): void => {
    if (message.key?.toString() !== controlKey) return;
    let doc;
    try {
      doc = parseRoutingConfig(message.value);
    } catch (err) {
      const code = errorCode(err);
      rejected.inc({ reason: code });
      logger.error(
        { code, offset: message.offset, field: findTapioError(err)?.context.field, epoch: table.current.epoch },
        `routing config rejected, keeping epoch ${table.current.epoch}: ${(err as Error).message}`,
      );
      return;
    }
    const outcome = table.apply(doc, Number(message.timestamp));
    if (!outcome.applied) {
      rejected.inc({ reason: 'STALE_EPOCH' });
      logger.warn({ offset: message.offset, epoch: doc.epoch }, `routing config ignored: ${outcome.reason ?? ''}`);
      return;
    }
    breaker.configure(doc.breaker);
    syncBreaker(Date.now());
    epochGauge.set(doc.epoch);
    configAppliedAtMs = Date.now();
    logger.info(
      { epoch: doc.epoch, strategy: doc.strategy, v2Percentage: doc.v2Percentage, offset: message.offset },
      'routing config applied',
    );
  };

  const control = ctx.kafka.consumer({
    groupId: controlGroup,
    // The config must reach the router within a second (ARCHITECTURE.md, "Routing").
    maxWaitTimeInMs: 100,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
  });
  await control.connect();
  await control.subscribe({ topic: controlTopic, fromBeginning: true });
  await control.run({
    autoCommit: false,
    eachMessage: ({ partition, message }) => {
      onControl(message);
      const end = catchUp.get(partition);
      if (end !== undefined && BigInt(message.offset) >= end) {
        catchUp.delete(partition);
        if (catchUp.size === 0) caughtUp();
      }
      return Promise.resolve();
    },
  });
  const catchUpMs = options.controlCatchUpMs ?? 15_000;
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([
    caught.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), catchUpMs))),
  ]);
  clearTimeout(timer);
  if (!inTime) logger.warn({ controlTopic, catchUpMs }, 'control topic not read to its end in time; routing anyway');

  // --- health topic: the breaker and V1 lag ----------------------------------------------------
  const health = ctx.kafka.consumer({
    groupId: healthGroup,
    maxWaitTimeInMs: 500,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
  });
  await health.connect();
  // From the end: old snapshots say nothing about V2 now.
  await health.subscribe({ topic: healthTopic, fromBeginning: false });
  const updateLag = (nowMs: number): void => {
    let lag = 0;
    for (const [name, s] of v1Lags) {
      if (nowMs - s.at > healthStaleMs) v1Lags.delete(name);
      else lag += s.lag;
    }
    table.setV1Lag(lag, nowMs);
  };
  await health.run({
    autoCommit: false,
    eachMessage: ({ message }) => {
      const nowMs = Date.now();
      try {
        const snapshot = parseHealthSnapshot(message.value);
        if (snapshot.engine === 'v1') v1Lags.set(snapshot.instance, { lag: snapshot.lag, at: nowMs });
        else breaker.record(snapshot, nowMs);
      } catch (err) {
        badHealth.inc();
        logger.warn(
          { offset: message.offset, code: errorCode(err) },
          `health snapshot skipped: ${(err as Error).message}`,
        );
      }
      updateLag(nowMs);
      syncBreaker(nowMs);
      return Promise.resolve();
    },
  });
  // open → half-open happens with time alone.
  const tick = setInterval(() => {
    const nowMs = Date.now();
    updateLag(nowMs);
    syncBreaker(nowMs);
  }, 1000);
  tick.unref();

  // --- the event stream ------------------------------------------------------------------------
  let running = true;
  let lastError: string | undefined;
  let routedTotal = 0;

  const decode = async (message: KafkaMessage, context: { topic: string; partition: number; offset: string }) => {
    try {
      return toEvent(decoder.decode(message.value, context));
    } catch (err) {
      const first = findTapioError(err);
      if (first?.code !== 'UNKNOWN_SCHEMA_ID') throw err;
      // prepare() swallows fetch failures: ask again so an outage surfaces as retriable, not as poison.
      await decoder.ensure(readSchemaId(message.value, context)).catch((e: unknown) => {
        throw findTapioError(e)?.withContext(context) ?? e;
      });
      return toEvent(decoder.decode(message.value, context));
    }
  };

  const consumer: Consumer = ctx.kafka.consumer({
    groupId,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });
  await consumer.run({
    partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
    autoCommit: true,
    autoCommitInterval: 1000,
    eachBatchAutoResolve: false,
    eachBatch: async (payload) => {
      const { batch } = payload;
      const { topic, partition } = batch;
      await decoder.prepare(batch.messages.map((m) => m.value));
      for (let start = 0; start < batch.messages.length; start += chunkSize) {
        if (!payload.isRunning() || payload.isStale()) return;
        const started = process.hrtime.bigint();
        const chunk = batch.messages.slice(start, start + chunkSize);
        const nowMs = Date.now();
        syncBreaker(nowMs);
        const epoch = String(table.current.epoch);
        const byTopic = new Map<string, { key: string; value: Buffer | null; headers: Record<string, string> }[]>();
        const counts: Record<RouteTarget, number> = { v1: 0, v2: 0, 'v2-shadow': 0 };
        const dead: { message: KafkaMessage; error: TapioError }[] = [];
        for (const message of chunk) {
          const context = { topic, partition, offset: message.offset };
          let event: Event;
          try {
            event = await decode(message, context);
          } catch (err) {
            const tapioError = findTapioError(err);
            // A registry outage is retried (the batch is redelivered from the last resolved offset).
            if (tapioError === undefined || isRetriable(err)) {
              lastError = `${errorCode(err)}: ${(err as Error).message}`;
              throw err;
            }
            dead.push({ message, error: tapioError.withContext(context) });
            continue;
          }
          // RULES.md: a key's watermark is the largest timestamp seen. One event far in the future
          // would make every later event of its scope keys late and silence their rules for good
          // (found by the integrity suite), so it is bad input, not an event to correlate.
          if (event.timestamp > nowMs + maxFutureSkewMs) {
            const error = new TapioError(
              'INVALID_EVENT',
              `timestamp ${event.timestamp} is more than correlation.maxFutureSkewMs (${maxFutureSkewMs} ms) ahead of the clock`,
              { context: { ...context, field: 'timestamp' } },
            );
            dead.push({ message, error });
            continue;
          }
          const source = `${topic}/${partition}@${message.offset}`;
          for (const route of table.plan(event, nowMs)) {
            const headers: Record<string, string> = {
              [ROUTING_HEADERS.rules]: route.ruleIds.join(','),
              [ROUTING_HEADERS.scopeKey]: route.scopeKey,
              [ROUTING_HEADERS.epoch]: epoch,
              [ROUTING_HEADERS.source]: source,
            };
            if (route.suppressUntilMs !== null) headers[ROUTING_HEADERS.suppressUntil] = String(route.suppressUntilMs);
            const out = targets[route.target];
            let list = byTopic.get(out);
            if (list === undefined) byTopic.set(out, (list = []));
            list.push({ key: route.scopeKey, value: message.value, headers });
            counts[route.target]++;
          }
        }
        if (byTopic.size > 0) {
          await producer.sendBatch({
            acks: -1,
            topicMessages: [...byTopic].map(([t, messages]) => ({ topic: t, messages })),
          });
        }
        for (const { message, error } of dead) {
          await dlq.send(
            {
              topic,
              partition,
              offset: message.offset,
              key: message.key,
              value: message.value,
              headers: message.headers,
            },
            error.code,
            error.message,
          );
          deadLettered.inc({ reason: error.code });
          logger.warn({ code: error.code, topic, partition, offset: message.offset }, error.message);
        }
        // Every record this chunk caused is acknowledged: now its offsets may be committed.
        for (const message of chunk) payload.resolveOffset(message.offset);
        eventsIn.inc(chunk.length);
        for (const target of Object.keys(counts) as RouteTarget[]) {
          if (counts[target] > 0) selections.inc({ engine: target }, counts[target]);
        }
        routedTotal += counts.v1 + counts.v2 + counts['v2-shadow'];
        routingLatencyMs.observe(Number(process.hrtime.bigint() - started) / 1e6);
        await payload.commitOffsetsIfNecessary();
        await payload.heartbeat();
      }
    },
  });
  logger.info({ inputTopic, targets, groupId, epoch: table.current.epoch }, 'router consuming');

  return {
    health: () => ({
      ok: running,
      epoch: table.current.epoch,
      strategy: table.current.strategy,
      breaker: table.breakerState,
      handoffs: table.state.handoffs.length,
      configAppliedAtMs,
      routed: routedTotal,
      lastError,
    }),
    async stop() {
      running = false;
      clearInterval(tick);
      // disconnect() lets the running batch finish, commits resolved offsets and leaves the group.
      await consumer.disconnect();
      await Promise.all([control.disconnect(), health.disconnect()]);
      await producer.disconnect();
      // The side groups are this instance's alone: remove them rather than leave them behind.
      await admin.deleteGroups([controlGroup, healthGroup]).catch(() => undefined);
      await admin.disconnect();
    },
  };
}
