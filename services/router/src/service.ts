/**
 * The router (ARCHITECTURE.md, "re-keying by correlation scope", "Routing", "Delivery guarantees"):
 * `eachBatch` on tapio.events in group tapio-router; decodes only the routing fields with a projected
 * WireDecoder; for each planned route produces one record keyed by the scope key, with the ORIGINAL
 * value bytes, to tapio.events.v1 / .v2 / .v2.shadow. Input records first pass through a
 * PartitionAligner (@tapio/routing, align.ts), which releases them merged by event time across the router's partitions,
 * so a backlog read batch by batch does not reach the engines minutes out of order. A chunk's records
 * are produced together (idempotent producer, acks=all); an input offset is committed only after every
 * record it caused is acknowledged, so a committed offset never covers an unrouted event. Undecodable
 * input goes to the DLQ; the router goes on.
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
import type { Consumer, EachBatchPayload, KafkaMessage } from '@tapio/kafka';
import {
  BREAKER_GAUGE,
  CircuitBreaker,
  PartitionAligner,
  ROUTING_CONTROL_KEY,
  RoutingTable,
  defaultRoutingConfig,
  encodeRouterFrontier,
  healthRecordKind,
  healthSnapshotOf,
  parseRouterFrontier,
  parseRoutingConfig,
} from '@tapio/routing';
import type { AlignEntry, RouteTarget, Taken } from '@tapio/routing';
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
  /** Records routed per produce round (a heartbeat is sent after each). Default config.router.chunkSize. */
  chunkSize?: number;
  /** How long start-up waits to read the control topic up to its end. Default 15 s. */
  controlCatchUpMs?: number;
  /** V1 health snapshots older than this no longer count towards V1 lag. Default 60 s. */
  healthStaleMs?: number;
}

/** The fields routing reads (RULES.md scope keys: entity and the `destination` label). */
export const ROUTING_PROJECTION = ['id', 'timestamp', 'type', 'entity', 'labels'] as const;

/** One input record held by the aligner: decoded routing fields, or why it goes to the DLQ. */
interface Pending {
  message: KafkaMessage;
  event: Event | null;
  error: TapioError | null;
}

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
  const chunkSize = options.chunkSize ?? config.router.chunkSize;
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
  /** Other routers of this group: their frontier (event time) and when it was read (wall clock). */
  const peers = new Map<string, { frontier: number; readAtMs: number }>();
  const onHealth = (value: unknown, nowMs: number): void => {
    const kind = healthRecordKind(value);
    if (kind === 'comparison') return; // the comparator's, for the rollout controller
    if (kind === 'router-frontier') {
      const f = parseRouterFrontier(value);
      if (f.group === groupId && f.instance !== instance) {
        peers.set(f.instance, { frontier: f.frontier ?? Infinity, readAtMs: nowMs });
      }
      return;
    }
    const snapshot = healthSnapshotOf(value);
    if (snapshot.engine === 'v1') v1Lags.set(snapshot.instance, { lag: snapshot.lag, at: nowMs });
    else breaker.record(snapshot, nowMs);
  };
  await health.run({
    autoCommit: false,
    eachMessage: ({ message }) => {
      const nowMs = Date.now();
      try {
        let value: unknown;
        try {
          value = JSON.parse((message.value ?? '').toString());
        } catch (cause) {
          throw new TapioError('INVALID_JSON', `health record is not valid JSON: ${(cause as Error).message}`, {
            cause,
          });
        }
        onHealth(value, nowMs);
      } catch (err) {
        badHealth.inc();
        logger.warn(
          { offset: message.offset, code: errorCode(err) },
          `health record skipped: ${(err as Error).message}`,
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

  // --- the event stream: ingest → align → route → acknowledge → commit -------------------------
  const alignOn = config.router.alignPartitions;
  const maxBuffered = config.router.maxBufferedPerPartition;
  const commitIntervalMs = config.kafka.commitIntervalMs;
  const aligner = new PartitionAligner<Pending>({
    // Off (maxHoldMs 0): nothing holds a partition back; records still leave oldest head first among those buffered.
    maxHoldMs: alignOn ? config.router.alignMaxHoldMs : 0,
    slackMs: config.router.reorderSlackMs,
    idleFetches: alignOn ? 2 : 0,
  });
  const paused = new Set<number>();
  const committed = new Map<number, string>();
  // Routers of one group hold back what runs more than this far ahead of the slowest one (event time).
  const peerSlackMs = config.router.peerSlackMs;
  const peerStaleMs = config.router.peerStaleMs;
  /** Release nothing newer than this: the lowest fresh peer frontier plus the slack. */
  const peerLimit = (nowMs: number): number => {
    let lowest = Infinity;
    for (const [id, peer] of peers) {
      if (nowMs - peer.readAtMs > peerStaleMs) peers.delete(id);
      else if (peer.frontier < lowest) lowest = peer.frontier;
    }
    return lowest + peerSlackMs;
  };
  let generation = 0;
  let rebalancing = false;
  let lastCommitMs = Date.now();
  let forcedSeen = 0;
  let outOfOrderSeen = 0;

  const consumer: Consumer = ctx.kafka.consumer({
    groupId,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxBytesPerPartition: config.router.fetchMaxBytesPerPartition,
    // Never truncate a fetch: a partition left out of one would look idle to the aligner.
    maxBytes: Math.max(10 * 1024 * 1024, config.router.fetchMaxBytesPerPartition * 64),
  });
  new Gauge({
    name: 'tapio_router_buffered_records',
    help: 'Input records read but not yet routed (held for event-time alignment across partitions)',
    registers,
    collect() {
      this.set(aligner.totalBuffered());
    },
  });
  new Gauge({
    name: 'tapio_router_paused_partitions',
    help: 'Input partitions paused because their alignment buffer is full',
    registers,
    collect() {
      this.set(paused.size);
    },
  });
  const outOfOrder = new Counter({
    name: 'tapio_events_out_of_order_total',
    help: 'Events read after a newer one was already passed on: their order is not guaranteed (later than router.reorderSlackMs)',
    labelNames: ['stage'],
    registers,
  }).labels('router');
  const forcedReleases = new Counter({
    name: 'tapio_router_alignment_forced_total',
    help: 'Records routed before a dry partition caught up, because it held the others back for router.alignMaxHoldMs',
    registers,
  });

  const resumeAll = (): void => {
    if (paused.size === 0) return;
    consumer.resume([{ topic: inputTopic, partitions: [...paused] }]);
    paused.clear();
  };
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    generation++;
    rebalancing = false;
    const assignment = e.payload.memberAssignment[inputTopic] ?? [];
    aligner.assign(assignment, Date.now());
    committed.clear();
    resumeAll();
    logger.info({ partitions: assignment, generation }, 'router assigned input partitions');
  });
  consumer.on(consumer.events.REBALANCING, () => {
    rebalancing = true;
  });
  consumer.on(consumer.events.FETCH_START, () => {
    aligner.fetchStarted();
    if (running && aligner.totalBuffered() > 0) void pump().catch(() => undefined);
  });

  const COMPARED = Buffer.from('1');
  /** The `tapio-rules` header value per distinct rule list (a handful of lists: bounded). */
  const rulesHeaders = new Map<string, Buffer>();
  const rulesHeader = (ruleIds: readonly string[]): Buffer => {
    const text = ruleIds.join(',');
    let bytes = rulesHeaders.get(text);
    if (bytes === undefined) {
      if (rulesHeaders.size >= 4096) rulesHeaders.clear();
      rulesHeaders.set(text, (bytes = Buffer.from(text)));
    }
    return bytes;
  };

  /** Routes one chunk of released records; resolves once every routed and dead-lettered record is acknowledged. */
  const routeChunk = async (taken: readonly Taken<Pending>[], nowMs: number): Promise<void> => {
    const started = process.hrtime.bigint();
    syncBreaker(nowMs);
    // Header values and keys as Buffers made once (kafkajs would make one per record from a string):
    // the epoch per chunk, the rule list per distinct list, the scope key once for key and header.
    const epoch = Buffer.from(String(table.current.epoch));
    const byTopic = new Map<string, { key: Buffer; value: Buffer | null; headers: Record<string, Buffer> }[]>();
    const counts: Record<RouteTarget, number> = { v1: 0, v2: 0, 'v2-shadow': 0 };
    for (const { partition, entry } of taken) {
      const { message, event } = entry.item;
      if (event === null) continue;
      const source = Buffer.from(`${inputTopic}/${partition}@${message.offset}`);
      for (const route of table.plan(event, nowMs)) {
        const scopeKey = Buffer.from(route.scopeKey);
        const headers: Record<string, Buffer> = {
          [ROUTING_HEADERS.rules]: rulesHeader(route.ruleIds),
          [ROUTING_HEADERS.scopeKey]: scopeKey,
          [ROUTING_HEADERS.epoch]: epoch,
          [ROUTING_HEADERS.source]: source,
        };
        if (route.suppressUntilMs !== null) {
          headers[ROUTING_HEADERS.suppressUntil] = Buffer.from(String(route.suppressUntilMs));
        }
        if (route.compared) headers[ROUTING_HEADERS.compared] = COMPARED;
        const out = targets[route.target];
        let list = byTopic.get(out);
        if (list === undefined) byTopic.set(out, (list = []));
        list.push({ key: scopeKey, value: message.value, headers });
        counts[route.target]++;
      }
    }
    if (byTopic.size > 0) {
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([t, messages]) => ({ topic: t, messages })),
      });
    }
    for (const { partition, entry } of taken) {
      const { message, error } = entry.item;
      if (error === null) continue;
      await dlq.send(
        {
          topic: inputTopic,
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
      logger.warn({ code: error.code, topic: inputTopic, partition, offset: message.offset }, error.message);
    }
    for (const target of Object.keys(counts) as RouteTarget[]) {
      if (counts[target] > 0) selections.inc({ engine: target }, counts[target]);
    }
    routedTotal += counts.v1 + counts.v2 + counts['v2-shadow'];
    routingLatencyMs.observe(Number(process.hrtime.bigint() - started) / 1e6);
  };

  /** Commits the acknowledged offsets that moved, at most every commitIntervalMs unless forced. */
  let committing: Promise<void> | null = null;
  let commitsClosed = false;
  let commitDirty = false;
  /**
   * A commit now, in the background, one at a time (one more after it if asked meanwhile). The
   * engines count a re-routed event twice (at least once), so after a crash the window of routed
   * but uncommitted records should be as small as a commit round trip, without waiting on it.
   */
  const commitSoon = (): void => {
    if (committing !== null) {
      commitDirty = true;
      return;
    }
    commitDirty = false;
    void commit(true).then(() => {
      if (commitDirty && running) commitSoon();
    });
  };
  /** kafkajs binds a batch payload's commit to the consumer group, not to the batch: kept from the last batch. */
  let commitOffsets: EachBatchPayload['commitOffsetsIfNecessary'] | undefined;
  const commit = async (force: boolean): Promise<void> => {
    while (committing !== null) await committing;
    // After the final commit of stop(): a kafkajs commit retried past disconnect() would reconnect.
    if (commitsClosed) return;
    committing = commitNow(force);
    try {
      await committing;
    } finally {
      committing = null;
    }
  };
  const commitNow = async (force: boolean): Promise<void> => {
    if (!force && Date.now() - lastCommitMs < commitIntervalMs) return;
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    for (const [partition, offset] of aligner.ackedOffsets()) {
      if (committed.get(partition) !== offset) offsets.push({ topic: inputTopic, partition, offset });
    }
    lastCommitMs = Date.now();
    if (offsets.length === 0) return;
    const gen = generation;
    const commitFn = commitOffsets;
    if (commitFn === undefined) return;
    try {
      // The batch payload's commit, not consumer.commitOffsets: that one retries through a rebalance,
      // holding this commit (and stop()) for the whole retry budget.
      await commitFn({
        topics: [{ topic: inputTopic, partitions: offsets.map(({ partition, offset }) => ({ partition, offset })) }],
      });
      if (gen === generation) for (const o of offsets) committed.set(o.partition, o.offset);
    } catch (err) {
      // A rebalance in progress: the next owner starts from the last commit; records routed since are routed again.
      logger.warn({ code: errorCode(err), offsets }, `offset commit failed: ${(err as Error).message}`);
    }
  };

  /**
   * Routes every releasable record, chunk by chunk; then resumes drained partitions. Commits happen
   * off this path (alignTick, stop): a commit retried through a rebalance must not hold up the batch
   * that kafkajs waits for before it can rejoin.
   */
  const pumpOnce = async (heartbeat?: () => Promise<void>): Promise<void> => {
    const gen = generation;
    const taken: Taken<Pending>[] = [];
    while (running && !rebalancing && gen === generation) {
      taken.length = 0;
      const nowMs = Date.now();
      if (aligner.take(chunkSize, nowMs, taken, alignOn ? peerLimit(nowMs) : Infinity) === 0) break;
      await routeChunk(taken, nowMs);
      if (gen !== generation) return; // reassigned meanwhile: the buffers are gone, nothing to acknowledge
      aligner.ack(taken);
      if (running) commitSoon();
      if (heartbeat !== undefined) await heartbeat();
    }
    if (aligner.forced > forcedSeen) {
      forcedReleases.inc(aligner.forced - forcedSeen);
      forcedSeen = aligner.forced;
    }
    if (aligner.outOfOrder > outOfOrderSeen) {
      outOfOrder.inc(aligner.outOfOrder - outOfOrderSeen);
      outOfOrderSeen = aligner.outOfOrder;
    }
    const resume = [...paused].filter((p) => aligner.buffered(p) <= maxBuffered / 2);
    if (resume.length > 0) {
      consumer.resume([{ topic: inputTopic, partitions: resume }]);
      for (const p of resume) {
        paused.delete(p);
        aligner.setPaused(p, false);
      }
    }
  };

  let pumping: Promise<void> | null = null;
  let pumpAgain = false;
  /** One pump at a time; a call while one runs makes it go round once more and waits for it. */
  const pump = (heartbeat?: () => Promise<void>): Promise<void> => {
    if (pumping !== null) {
      pumpAgain = true;
      return pumping;
    }
    pumping = (async () => {
      try {
        do {
          pumpAgain = false;
          await pumpOnce(heartbeat);
        } while (pumpAgain && running);
      } catch (err) {
        // A routed record was not acknowledged: fetch again from the last acknowledged offsets.
        lastError = `${errorCode(err)}: ${(err as Error).message}`;
        const restart = aligner.restartOffsets();
        logger.error(
          { code: errorCode(err), restart: Object.fromEntries(restart) },
          `routing failed, reading again from the last acknowledged offsets: ${(err as Error).message}`,
        );
        aligner.reset(Date.now());
        resumeAll();
        for (const [partition, offset] of restart) consumer.seek({ topic: inputTopic, partition, offset });
        throw err;
      } finally {
        pumping = null;
      }
    })();
    return pumping;
  };
  // Dry partitions stop holding the others back with time alone; the last routed offsets get committed.
  const alignTick = setInterval(() => {
    if (rebalancing || !running) return;
    if (committing === null) void commit(false);
    if (pumping === null && aligner.totalBuffered() > 0) void pump().catch(() => undefined);
  }, 100);
  alignTick.unref();

  // This router's frontier, for the other routers of the group: on change, and at least every second.
  const frontierKey = `router-frontier/${groupId}/${instance}`;
  let published: number | null | undefined;
  let publishedAtMs = 0;
  let publishing: Promise<void> | null = null;
  const publishFrontier = (force: boolean): Promise<void> => {
    if (!alignOn || publishing !== null || generation === 0) return publishing ?? Promise.resolve();
    const nowMs = Date.now();
    const f = aligner.frontier(nowMs);
    const frontier = f === Infinity ? null : f === -Infinity ? Number.MIN_SAFE_INTEGER : Math.floor(f);
    if (!force && frontier === published && nowMs - publishedAtMs < 1000) return Promise.resolve();
    publishing = (async () => {
      try {
        await producer.send({
          topic: healthTopic,
          acks: -1,
          messages: [
            {
              key: frontierKey,
              value: encodeRouterFrontier({ kind: 'router-frontier', group: groupId, instance, at: nowMs, frontier }),
            },
          ],
        });
        published = frontier;
        publishedAtMs = nowMs;
      } catch (err) {
        logger.warn({ code: errorCode(err) }, `router frontier not published: ${(err as Error).message}`);
      } finally {
        publishing = null;
      }
    })();
    return publishing;
  };
  const frontierTick = setInterval(() => void publishFrontier(false), config.router.frontierIntervalMs);
  frontierTick.unref();

  await consumer.connect();
  await consumer.subscribe({ topic: inputTopic, fromBeginning: options.fromBeginning ?? true });
  await consumer.run({
    partitionsConsumedConcurrently: config.router.partitionsConsumedConcurrently,
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async (payload) => {
      const { batch } = payload;
      const { topic, partition } = batch;
      commitOffsets = (offsets) => payload.commitOffsetsIfNecessary(offsets);
      await decoder.prepare(batch.messages.map((m) => m.value));
      const nowMs = Date.now();
      const entries: AlignEntry<Pending>[] = [];
      let ts = aligner.lastTs(partition);
      for (const message of batch.messages) {
        const context = { topic, partition, offset: message.offset };
        let event: Event;
        try {
          event = await decode(message, context);
        } catch (err) {
          const tapioError = findTapioError(err);
          // A registry outage is retried (the batch is fetched again: nothing of it was ingested).
          if (tapioError === undefined || isRetriable(err)) {
            lastError = `${errorCode(err)}: ${(err as Error).message}`;
            throw err;
          }
          entries.push({
            ts,
            offset: message.offset,
            item: { message, event: null, error: tapioError.withContext(context) },
          });
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
          entries.push({ ts, offset: message.offset, item: { message, event: null, error } });
          continue;
        }
        ts = event.timestamp;
        entries.push({ ts, offset: message.offset, item: { message, event, error: null } });
      }
      const caughtUp = BigInt(batch.lastOffset()) + 1n >= BigInt(batch.highWatermark);
      aligner.ingest(partition, entries, caughtUp, nowMs);
      eventsIn.inc(batch.messages.length);
      // Fetch on: from here the records are the aligner's; offsets are committed as they are routed.
      payload.resolveOffset(batch.lastOffset());
      if (aligner.buffered(partition) > maxBuffered && !paused.has(partition)) {
        paused.add(partition);
        aligner.setPaused(partition, true);
        consumer.pause([{ topic, partitions: [partition] }]);
      }
      await pump(() => payload.heartbeat());
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
      buffered: aligner.totalBuffered(),
      forcedReleases: aligner.forced,
      lastError,
    }),
    async stop() {
      running = false;
      clearInterval(tick);
      clearInterval(alignTick);
      clearInterval(frontierTick);
      // Whatever was routed and acknowledged is committed; what is still buffered is read again by the next owner.
      await pumping?.catch(() => undefined);
      await commit(true);
      commitsClosed = true;
      await consumer.disconnect();
      // Leaving: this router holds nobody back any more.
      await publishing;
      aligner.assign([], Date.now());
      await publishFrontier(true);
      await Promise.all([control.disconnect(), health.disconnect()]);
      await producer.disconnect();
      // The side groups are this instance's alone: remove them rather than leave them behind.
      await admin.deleteGroups([controlGroup, healthGroup]).catch(() => undefined);
      await admin.disconnect();
    },
  };
}
