/**
 * The integrity harness (issue 11): the whole pipeline as separate processes (`node
 * services/<name>/dist/main.js`, as `tapio demo` starts them) on the local stack, isolated per run
 * by a topic prefix, its own consumer group ids (config `groups`), its own dedup key prefix and a
 * private redis-server on a free port. A generated stream with known expected detections is produced
 * at a steady rate (near real time, not a pre-loaded backlog: see the router's interleaving caveat in
 * the README of this folder), mixed with 1 % poison records, while one fault is applied. Afterwards
 * the topics are read back and checked against the delivery guarantees of ARCHITECTURE.md.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { join, resolve } from 'node:path';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { RESULT_SCHEMA, RegistryCodec, WireDecoder, sourceKey } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { DLQ_HEADERS, ROUTING_HEADERS, createKafka, ensureTopics, topicSpecs } from '@tapio/kafka';
import type { Admin, Kafka, Producer } from '@tapio/kafka';
import { ROUTING_CONTROL_KEY, defaultRoutingConfig } from '@tapio/routing';
import { fingerprint, routesFor } from '@tapio/rules';
import { ServiceProcesses, consumerLag, freePort } from '@tapio/runtime';
import { generateStream } from '@tapio/scenarios';
import type { ExpectedDetection } from '@tapio/scenarios';

export const repoRoot = resolve(__dirname, '../../..');

export type ServiceName = 'router' | 'correlator-v1' | 'correlator-v2' | 'dedup' | 'actions';
const SERVICES: readonly ServiceName[] = ['router', 'correlator-v1', 'correlator-v2', 'dedup', 'actions'];

export type FaultName =
  | 'none'
  | 'kill9-router'
  | 'kill9-v1'
  | 'kill9-v2'
  | 'kill9-dedup'
  | 'term-router'
  | 'term-v1'
  | 'term-v2'
  | 'term-dedup'
  | 'scale-v2'
  | 'redis-stop'
  | 'broker-stop';

export const ALL_FAULTS: readonly FaultName[] = [
  'none',
  'kill9-router',
  'kill9-v1',
  'kill9-v2',
  'kill9-dedup',
  'term-router',
  'term-v1',
  'term-v2',
  'term-dedup',
  'scale-v2',
  'redis-stop',
  'broker-stop',
];

export interface RunOptions {
  fault: FaultName;
  seed?: number;
  incidentsPerScenario: number;
  noiseEvents: number;
  /** Wall time over which the stream is produced. */
  produceSeconds: number;
  /** Share of poison records among the records produced. Default 0.01. */
  poisonShare?: number;
  /** Where in the production the fault starts, 0..1. Default 0.4. */
  faultAt?: number;
  /** Called with progress lines (the full form prints them). */
  log?: (line: string) => void;
}

export type PoisonKind =
  | 'random-bytes'
  | 'bad-magic'
  | 'unknown-schema-id'
  | 'truncated-avro'
  | 'wrong-schema'
  | 'oversized'
  | 'empty-id'
  | 'far-future';

/** The DLQ reasons each poison kind may carry (the codes of README.md's error table). */
export const POISON_REASONS: Record<PoisonKind, readonly string[]> = {
  'random-bytes': ['BAD_MAGIC_BYTE'],
  'bad-magic': ['BAD_MAGIC_BYTE'],
  'unknown-schema-id': ['UNKNOWN_SCHEMA_ID'],
  'truncated-avro': ['TRUNCATED_RECORD', 'MALFORMED_RECORD'],
  'wrong-schema': ['INCOMPATIBLE_SCHEMA', 'INVALID_EVENT', 'MALFORMED_RECORD'],
  oversized: ['MALFORMED_RECORD', 'TRUNCATED_RECORD', 'TRAILING_BYTES'],
  'empty-id': ['INVALID_EVENT'],
  'far-future': ['INVALID_EVENT'],
};

export interface MissingDetection {
  detection: ExpectedDetection;
  /** The engine whose topic carried the detection's scope key, when known. */
  engine: 'v1' | 'v2' | 'both' | 'unrouted';
  /** The incident's events were produced across the fault window on an engine the fault hit. */
  atFault: boolean;
  /** The same rule fired for the same key with another trigger event (found, but later). */
  otherTrigger: string | undefined;
}

export interface RunReport {
  fault: FaultName;
  prefix: string;
  eventsSent: number;
  poisonSent: number;
  farPastSent: number;
  expected: number;
  found: number;
  missing: MissingDetection[];
  /** Detections in tapio.results.deduped that no scenario expects (ruleId|entityKey|trigger). */
  unexpected: string[];
  /** Fingerprints that passed dedup with two or more different result ids. */
  fingerprintDuplicates: string[];
  /** Result ids forwarded by dedup that the webhook sink never accepted. */
  notDelivered: string[];
  /** Result ids the sink saw that dedup never forwarded. */
  deliveredUnknown: string[];
  /** Accepted deliveries (one per Idempotency-Key) and raw attempts (a retry after a crash may repeat). */
  acceptedDeliveries: number;
  rawDeliveries: number;
  /** Records on tapio.results (before dedup) and on tapio.results.deduped. */
  results: number;
  deduped: number;
  dlqByReason: Record<string, number>;
  /** Poison records not found in the DLQ, or found with a reason not expected for the kind. */
  poisonMissing: string[];
  poisonWrongReason: string[];
  /** events in = routed + dead-lettered + unrouted (no rule consumes the type). */
  counts: {
    onEventsTopic: number;
    routedSources: number;
    routerDeadLettered: number;
    unrouted: number;
    expectedRouted: number;
  };
  lateEvents: Record<string, number>;
  faultWindow: { fromMs: number; toMs: number } | undefined;
  wallSeconds: number;
  notes: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A private redis-server for one run (never the shared 6379, which other engineers use). */
export class PrivateRedis {
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.up();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const r = spawnSync('redis-server', [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--daemonize',
      'yes',
      '--save',
      '',
      '--appendonly',
      'no',
    ]);
    if (r.status !== 0) throw new Error(`redis-server on ${this.port} did not start: ${String(r.stderr)}`);
    for (let i = 0; i < 50; i++) {
      if (
        spawnSync('redis-cli', ['-p', String(this.port), 'ping'])
          .stdout?.toString()
          .trim() === 'PONG'
      )
        return;
      await sleep(100);
    }
    throw new Error(`redis-server on ${this.port} does not answer`);
  }

  down(): void {
    spawnSync('redis-cli', ['-p', String(this.port), 'shutdown', 'nosave']);
  }
}

/** An idempotent webhook receiver: accepts each Idempotency-Key once, counts every attempt. */
export class WebhookSink {
  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly attempts: Map<string, number>,
  ) {}

  static async start(): Promise<WebhookSink> {
    const attempts = new Map<string, number>();
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const key = req.headers['idempotency-key'];
        if (typeof key !== 'string' || key === '') {
          res.writeHead(400).end();
          return;
        }
        attempts.set(key, (attempts.get(key) ?? 0) + 1);
        // A repeated key is answered 200 like a real idempotent receiver, and not acted on again.
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    return new WebhookSink(server, `http://127.0.0.1:${port}/hook`, attempts);
  }

  get accepted(): number {
    return this.attempts.size;
  }

  get raw(): number {
    let n = 0;
    for (const v of this.attempts.values()) n += v;
    return n;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface ReadBack {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestampMs: number;
}

/** Reads a topic from the beginning up to its end offsets at call time. */
export async function readAll(kafka: Kafka, admin: Admin, topic: string, timeoutMs = 60_000): Promise<ReadBack[]> {
  const ends = await admin.fetchTopicOffsets(topic);
  const left = new Map(ends.filter((p) => Number(p.high) > Number(p.low)).map((p) => [p.partition, Number(p.high)]));
  const out: ReadBack[] = [];
  if (left.size === 0) return out;
  const groupId = `integrity-reader-${randomBytes(5).toString('hex')}`;
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1000, maxBytes: 20 << 20 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(
        () => rej(new Error(`readAll ${topic}: timed out with ${out.length} records`)),
        timeoutMs,
      );
      consumer
        .run({
          autoCommit: false,
          eachMessage: ({ partition, message }) => {
            const end = left.get(partition);
            if (end === undefined || Number(message.offset) >= end) return Promise.resolve();
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
            out.push({
              partition,
              offset: message.offset,
              key: message.key?.toString() ?? null,
              value: message.value,
              headers,
              timestampMs: Number(message.timestamp),
            });
            if (Number(message.offset) >= end - 1) {
              left.delete(partition);
              if (left.size === 0) {
                clearTimeout(timer);
                res();
              }
            }
            return Promise.resolve();
          },
        })
        .catch(rej);
    });
  } finally {
    await consumer.disconnect();
    await admin.deleteGroups([groupId]).catch(() => undefined);
  }
  return out;
}

const sha = (b: Buffer | null): string =>
  createHash('sha256')
    .update(b ?? Buffer.alloc(0))
    .digest('hex');

interface Item {
  key: string | null;
  value: Buffer;
  /** Index into the stream's events for a valid event, else the poison kind. */
  event?: Event;
  poison?: PoisonKind;
  producedAtMs: number;
}

/** The stopped-broker fault touches the SHARED broker: only with TAPIO_INTEGRITY_BROKER_FAULT=1. */
export const brokerFaultEnabled = (): boolean => process.env['TAPIO_INTEGRITY_BROKER_FAULT'] === '1';

function kafkaPid(): number | undefined {
  const file = join(repoRoot, '.stack', 'run', 'kafka.pid');
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** One run: topics, Redis, sink, services, stream with poison, the fault, drain, checks. */
export async function runIntegrity(options: RunOptions): Promise<RunReport> {
  const startedMs = Date.now();
  const log = options.log ?? ((): void => undefined);
  const notes: string[] = [];
  const prefix = `integ-${randomBytes(4).toString('hex')}`;
  const logDir = join(repoRoot, '.stack', 'logs', 'integrity', prefix);
  mkdirSync(logDir, { recursive: true });
  const redis = await PrivateRedis.start();
  const sink = await WebhookSink.start();
  const env: Record<string, string> = {
    TAPIO_TOPICS__EVENTS: `${prefix}.events`,
    TAPIO_TOPICS__EVENTSV1: `${prefix}.events.v1`,
    TAPIO_TOPICS__EVENTSV2: `${prefix}.events.v2`,
    TAPIO_TOPICS__EVENTSV2SHADOW: `${prefix}.events.v2.shadow`,
    TAPIO_TOPICS__RESULTS: `${prefix}.results`,
    TAPIO_TOPICS__RESULTSSHADOW: `${prefix}.results.shadow`,
    TAPIO_TOPICS__RESULTSDEDUPED: `${prefix}.results.deduped`,
    TAPIO_TOPICS__CONTROL: `${prefix}.control`,
    TAPIO_TOPICS__HEALTH: `${prefix}.health`,
    TAPIO_TOPICS__DLQ: `${prefix}.events.dlq`,
    TAPIO_TOPICS__EVENTPARTITIONS: '4',
    TAPIO_TOPICS__RESULTPARTITIONS: '2',
    TAPIO_ACTIONS__DLQTOPIC: `${prefix}.actions.dlq`,
    TAPIO_GROUPS__ROUTER: `${prefix}-router`,
    TAPIO_GROUPS__V1: `${prefix}-v1`,
    TAPIO_GROUPS__V2: `${prefix}-v2`,
    TAPIO_GROUPS__V2SHADOW: `${prefix}-v2-shadow`,
    TAPIO_GROUPS__DEDUP: `${prefix}-dedup`,
    TAPIO_GROUPS__ACTIONS: `${prefix}-actions`,
    TAPIO_GROUPS__COMPARATOR: `${prefix}-comparator`,
    TAPIO_DEDUP__KEYPREFIX: `${prefix}:dedup:`,
    // Longer than the run: any second id for a fingerprint in the output is a dedup failure.
    TAPIO_DEDUP__TTLMS: '3600000',
    TAPIO_REDIS__URL: redis.url,
    TAPIO_ACTIONS__LOG: 'false',
    TAPIO_ACTIONS__WEBHOOK__URL: sink.url,
    // A killed member is noticed in 10 s instead of 30 s (the broker's minimum is 6 s).
    TAPIO_KAFKA__SESSIONTIMEOUTMS: '10000',
    TAPIO_KAFKA__HEARTBEATINTERVALMS: '1000',
    TAPIO_KAFKA__CLIENTID: prefix,
    TAPIO_LOG__LEVEL: 'info',
  };
  const config: Readonly<TapioConfig> = loadConfig({ env: { ...process.env, ...env } });
  const kafka = createKafka(config, undefined, '-integrity');
  const admin = kafka.admin();
  await admin.connect();
  const pipeline = new ServiceProcesses({ root: repoRoot, env: { ...process.env, ...env }, logDir });
  let producer: Producer | undefined;
  try {
    await ensureTopics(admin, topicSpecs(config));
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
    // Half the keys to each engine so both work; no category pins; the breaker off, so poison
    // counted as V2 errors cannot move keys between engines mid-run (a route change is its own test).
    const routing = {
      ...defaultRoutingConfig(config),
      epoch: 1,
      strategy: 'percentage' as const,
      v2Percentage: 50,
      features: {},
      breaker: { ...defaultRoutingConfig(config).breaker, mode: 'disabled' as const },
    };
    await producer.send({
      topic: config.topics.control,
      acks: -1,
      messages: [{ key: ROUTING_CONTROL_KEY, value: JSON.stringify(routing) }],
    });

    for (const name of SERVICES) await pipeline.start(name);
    log(`${prefix}: services up (${((Date.now() - startedMs) / 1000).toFixed(1)} s)`);

    // --- the stream -------------------------------------------------------------------------------
    const durationMs = 2_400_000;
    const seed = options.seed ?? 11;
    // Event time ends at the start of production: every timestamp lies in the past, near now.
    const stream = generateStream({
      seed,
      startMs: Date.now() - durationMs,
      scenarios: 'all',
      incidentsPerScenario: options.incidentsPerScenario,
      noiseEvents: options.noiseEvents,
      durationMs,
    });
    const codec = new RegistryCodec({ url: config.registry.url });
    const eventSchemaId = await codec.registerEvent(config.topics.events);
    const resultSchemaId = await codec.registerResult(`${prefix}.poison`);
    const items: Item[] = stream.events.map((event) => ({
      key: sourceKey(event),
      value: codec.encode(eventSchemaId, event),
      event,
      producedAtMs: 0,
    }));
    // Far-future and far-past clones of the first event of some incidents, just before it: same
    // entity and type, so the same scope keys. A far-future one must be dead-lettered (it would
    // poison the keys' watermarks); a far-past one is valid input that rules ignore as late.
    const firstOf = new Map<string, number>();
    items.forEach((it, i) => {
      const id = it.event?.id ?? '';
      const incident = id.slice(0, id.lastIndexOf('-'));
      if (stream.expected.some((d) => d.triggerEventId.startsWith(incident + '-')) && !firstOf.has(incident)) {
        firstOf.set(incident, i);
      }
    });
    const poisonCount = Math.max(8, Math.round(items.length * (options.poisonShare ?? 0.01)));
    const kinds: PoisonKind[] = [
      'random-bytes',
      'bad-magic',
      'unknown-schema-id',
      'truncated-avro',
      'wrong-schema',
      'oversized',
      'empty-id',
      'far-future',
    ];
    const rng = (n: number): number => randomBytes(4).readUInt32BE(0) % n;
    const template = stream.events[0] as Event;
    const inserts: { at: number; item: Item }[] = [];
    const incidents = [...firstOf.values()];
    let oversized = 0;
    for (let n = 0; n < poisonCount; n++) {
      let kind = kinds[n % kinds.length] as PoisonKind;
      if (kind === 'oversized' && oversized++ >= 2) kind = 'random-bytes';
      const tag = `${prefix}-poison-${n}`;
      let value: Buffer;
      let at = rng(items.length);
      switch (kind) {
        case 'random-bytes':
          value = randomBytes(16 + rng(200));
          if (value[0] === 0) value[0] = 0x5a;
          break;
        case 'bad-magic':
          value = codec.encode(eventSchemaId, { ...template, id: tag });
          value[0] = 1 + rng(255);
          break;
        case 'unknown-schema-id':
          value = codec.encode(eventSchemaId, { ...template, id: tag });
          value.writeUInt32BE(900_000_000 + rng(1000), 1);
          break;
        case 'truncated-avro': {
          const full = codec.encode(eventSchemaId, { ...template, id: tag });
          value = full.subarray(0, Math.max(6, Math.floor(full.length / 2)));
          break;
        }
        case 'wrong-schema': {
          const result: Result = {
            id: createHash('sha256').update(tag).digest('hex').slice(0, 32),
            ruleId: 'crash-loop',
            category: 'reliability',
            entityKey: 'pod/x/y',
            triggeredAt: Date.now(),
            triggerEventId: tag,
            severity: 'high',
            confidence: 0.7,
            evidence: [tag],
            engine: 'v1',
          };
          value = codec.encode(resultSchemaId, result);
          break;
        }
        case 'oversized':
          // 900 kB under the broker's default max.message.bytes (1 MB): a valid header, junk body.
          value = Buffer.concat([
            codec.encode(eventSchemaId, { ...template, id: tag }).subarray(0, 5),
            randomBytes(900_000),
          ]);
          break;
        case 'empty-id':
          value = codec.encode(eventSchemaId, { ...template, id: '', labels: { ...template.labels, poison: tag } });
          break;
        case 'far-future': {
          const target = incidents.length > 0 ? (incidents[n % incidents.length] as number) : at;
          const base = items[target]?.event ?? template;
          value = codec.encode(eventSchemaId, { ...base, id: tag, timestamp: Date.now() + 10 * 365 * 86_400_000 });
          at = target;
          break;
        }
      }
      inserts.push({ at, item: { key: tag, value, poison: kind, producedAtMs: 0 } });
    }
    let farPast = 0;
    for (const [i, target] of incidents.slice(0, 3).entries()) {
      const base = items[target]?.event;
      if (base === undefined) continue;
      const event: Event = { ...base, id: `${prefix}-past-${i}`, timestamp: 1_000_000 + i };
      inserts.push({
        at: target,
        item: { key: sourceKey(event), value: codec.encode(eventSchemaId, event), event, producedAtMs: 0 },
      });
      farPast++;
    }
    inserts.sort((a, b) => b.at - a.at);
    for (const { at, item } of inserts) items.splice(at, 0, item);

    // --- produce at a steady rate, with the fault ------------------------------------------------
    const rate = items.length / options.produceSeconds;
    const faultAt = options.faultAt ?? 0.4;
    let fault: Promise<{ fromMs: number; toMs: number } | undefined> = Promise.resolve(undefined);
    let faultStarted = false;
    const t0 = Date.now();
    let sent = 0;
    while (sent < items.length) {
      const due = Math.min(items.length, Math.floor(((Date.now() - t0) / 1000) * rate));
      if (due > sent) {
        const batch = items.slice(sent, due);
        // The oversized records go alone: a produce request holds one batch per partition.
        const big = batch.filter((b) => b.value.length > 100_000);
        const small = batch.filter((b) => b.value.length <= 100_000);
        // Like a collector, the test's producer waits out a broker outage (the broker fault) and
        // sends again: kafkajs's own retries give up after a few seconds of refused connections.
        const sendPersistently = async (messages: { key: string | null; value: Buffer }[]): Promise<void> => {
          for (let attempt = 0; ; attempt++) {
            try {
              await (producer as Producer).send({ topic: config.topics.events, acks: -1, messages });
              return;
            } catch (err) {
              if (attempt >= 60) throw err;
              await sleep(500);
            }
          }
        };
        if (small.length > 0) await sendPersistently(small.map((b) => ({ key: b.key, value: b.value })));
        for (const b of big) await sendPersistently([{ key: b.key, value: b.value }]);
        const now = Date.now();
        for (const b of batch) b.producedAtMs = now;
        sent = due;
      }
      if (!faultStarted && sent >= items.length * faultAt) {
        faultStarted = true;
        fault = applyFault(options.fault, pipeline, redis, log);
      }
      await sleep(50);
    }
    const faultWindow = await fault;
    log(`${prefix}: produced ${items.length} records in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // --- drain: every group has consumed everything, and nothing moves any more -----------------
    const groups: [string, string][] = [
      [config.groups.router, config.topics.events],
      [config.groups.v1, config.topics.eventsV1],
      [config.groups.v2, config.topics.eventsV2],
      [config.groups.dedup, config.topics.results],
      [config.groups.actions, config.topics.resultsDeduped],
    ];
    const drainDeadline = Date.now() + 180_000;
    let quiet = 0;
    for (;;) {
      let total = 0;
      for (const [g, t] of groups) total += await consumerLag(admin, g, t);
      quiet = total === 0 ? quiet + 1 : 0;
      if (quiet >= 3) break;
      if (Date.now() > drainDeadline) {
        notes.push(`not drained within 180 s (lag ${total})`);
        break;
      }
      await sleep(1000);
    }
    const lateEvents = await pipeline.metric('tapio_late_events_total', 'engine');

    // --- read back and check ---------------------------------------------------------------------
    const [onEvents, v1, v2, results, deduped, dlq] = await Promise.all([
      admin.fetchTopicOffsets(config.topics.events),
      readAll(kafka, admin, config.topics.eventsV1),
      readAll(kafka, admin, config.topics.eventsV2),
      readAll(kafka, admin, config.topics.results),
      readAll(kafka, admin, config.topics.resultsDeduped),
      readAll(kafka, admin, config.topics.dlq),
    ]);
    const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
    await decoder.prepare(deduped.map((r) => r.value));
    const out = deduped.map((r) => decoder.decode(r.value, { topic: config.topics.resultsDeduped }));

    const byTriple = new Set(out.map((r) => `${r.ruleId}|${r.entityKey}|${r.triggerEventId}`));
    const byFingerprint = new Map<string, Set<string>>();
    const triggersOf = new Map<string, Set<string>>();
    for (const r of out) {
      const f = fingerprint(r.ruleId, r.entityKey);
      if (!byFingerprint.has(f)) byFingerprint.set(f, new Set());
      byFingerprint.get(f)?.add(r.id);
      if (!triggersOf.has(f)) triggersOf.set(f, new Set());
      triggersOf.get(f)?.add(r.triggerEventId);
    }
    const keysV1 = new Set(v1.map((r) => r.key));
    const keysV2 = new Set(v2.map((r) => r.key));
    const producedAt = new Map<string, number>();
    for (const it of items) if (it.event !== undefined) producedAt.set(it.event.id, it.producedAtMs);
    const hitEngines = faultEngines(options.fault);
    const missing: MissingDetection[] = [];
    for (const d of stream.expected) {
      if (byTriple.has(`${d.ruleId}|${d.entityKey}|${d.triggerEventId}`)) continue;
      const engine = keysV1.has(d.entityKey)
        ? keysV2.has(d.entityKey)
          ? 'both'
          : 'v1'
        : keysV2.has(d.entityKey)
          ? 'v2'
          : 'unrouted';
      const incident = d.triggerEventId.slice(0, d.triggerEventId.lastIndexOf('-') + 1);
      const span = items.filter((it) => it.event?.id.startsWith(incident) === true).map((it) => it.producedAtMs);
      const first = Math.min(...span);
      const last = Math.max(...span);
      const atFault =
        faultWindow !== undefined &&
        (hitEngines.includes(engine as 'v1' | 'v2') || engine === 'both') &&
        first <= faultWindow.toMs &&
        last >= faultWindow.fromMs;
      const others = [...(triggersOf.get(fingerprint(d.ruleId, d.entityKey)) ?? [])];
      missing.push({ detection: d, engine, atFault, otherTrigger: others[0] });
    }
    const expectedTriples = new Set(stream.expected.map((d) => `${d.ruleId}|${d.entityKey}|${d.triggerEventId}`));
    // A detection of an at-fault incident that fired on a later trigger is the same loss, not a new one.
    const lateFired = new Set(
      missing.filter((m) => m.atFault).map((m) => `${m.detection.ruleId}|${m.detection.entityKey}|`),
    );
    const unexpected = [...byTriple].filter(
      (t) => !expectedTriples.has(t) && ![...lateFired].some((f) => t.startsWith(f)),
    );
    const fingerprintDuplicates = [...byFingerprint].filter(([, ids]) => ids.size > 1).map(([f]) => f);
    const dedupedIds = new Set(out.map((r) => r.id));
    const notDelivered = [...dedupedIds].filter((id) => !sink.attempts.has(id));
    const deliveredUnknown = [...sink.attempts.keys()].filter((id) => !dedupedIds.has(id));

    const dlqByReason: Record<string, number> = {};
    const dlqReasons = new Map<string, Set<string>>();
    let routerDeadLettered = 0;
    const routerDeadSources = new Set<string>();
    for (const r of dlq) {
      const reason = r.headers[DLQ_HEADERS.reason] ?? '(none)';
      dlqByReason[reason] = (dlqByReason[reason] ?? 0) + 1;
      const h = sha(r.value);
      if (!dlqReasons.has(h)) dlqReasons.set(h, new Set());
      dlqReasons.get(h)?.add(reason);
      const source = r.headers[DLQ_HEADERS.source] ?? '';
      if (source.startsWith(`${config.topics.events}/`) && !routerDeadSources.has(source)) {
        routerDeadSources.add(source);
        routerDeadLettered++;
      }
    }
    const poisonMissing: string[] = [];
    const poisonWrongReason: string[] = [];
    for (const it of items) {
      if (it.poison === undefined) continue;
      const reasons = dlqReasons.get(sha(it.value));
      if (reasons === undefined) poisonMissing.push(`${it.poison} ${it.key ?? ''}`);
      else if (![...reasons].some((r) => POISON_REASONS[it.poison as PoisonKind].includes(r))) {
        poisonWrongReason.push(`${it.poison}: ${[...reasons].join(',')}`);
      }
    }
    const routedSources = new Set([...v1, ...v2].map((r) => r.headers[ROUTING_HEADERS.source] ?? ''));
    routedSources.delete('');
    const valid = items.filter((it) => it.event !== undefined);
    const expectedRouted = valid.filter((it) => routesFor(it.event as Event).length > 0).length;
    const onEventsTopic = onEvents.reduce((a, p) => a + Number(p.high) - Number(p.low), 0);

    return {
      fault: options.fault,
      prefix,
      eventsSent: valid.length,
      poisonSent: items.length - valid.length,
      farPastSent: farPast,
      expected: stream.expected.length,
      found: stream.expected.length - missing.length,
      missing,
      unexpected,
      fingerprintDuplicates,
      notDelivered,
      deliveredUnknown,
      acceptedDeliveries: sink.accepted,
      rawDeliveries: sink.raw,
      results: results.length,
      deduped: deduped.length,
      dlqByReason,
      poisonMissing,
      poisonWrongReason,
      counts: {
        onEventsTopic,
        routedSources: routedSources.size,
        routerDeadLettered,
        unrouted: valid.length - expectedRouted,
        expectedRouted,
      },
      lateEvents,
      faultWindow,
      wallSeconds: (Date.now() - startedMs) / 1000,
      notes,
    };
  } finally {
    const bad = await pipeline.stopAll();
    if (bad.length > 0) notes.push(`not stopped cleanly: ${bad.join(', ')}`);
    await producer?.disconnect().catch(() => undefined);
    redis.down();
    await sink.close();
    const topics = topicSpecs(config).map((s) => s.topic);
    await admin.deleteTopics({ topics: [...topics, `${prefix}.actions.dlq`] }).catch(() => undefined);
    await admin.deleteGroups(Object.values(config.groups)).catch(() => undefined);
    await admin.disconnect();
  }
}

/** The engines whose in-memory window state a fault can lose. */
function faultEngines(fault: FaultName): ('v1' | 'v2')[] {
  switch (fault) {
    case 'kill9-v1':
    case 'term-v1':
      return ['v1'];
    case 'kill9-v2':
    case 'term-v2':
    case 'scale-v2':
      return ['v2'];
    // A router restart replays a backlog from several source partitions, which the router merges by
    // event time (align.ts): it may lose nothing. A broker outage can still move engine partitions.
    case 'broker-stop':
      return ['v1', 'v2'];
    default:
      return [];
  }
}

const SERVICE_OF: Partial<Record<FaultName, ServiceName>> = {
  'kill9-router': 'router',
  'kill9-v1': 'correlator-v1',
  'kill9-v2': 'correlator-v2',
  'kill9-dedup': 'dedup',
  'term-router': 'router',
  'term-v1': 'correlator-v1',
  'term-v2': 'correlator-v2',
  'term-dedup': 'dedup',
};

/** Applies the fault; resolves with its wall-time window once the pipeline is whole again. */
async function applyFault(
  fault: FaultName,
  pipeline: ServiceProcesses,
  redis: PrivateRedis,
  log: (line: string) => void,
): Promise<{ fromMs: number; toMs: number } | undefined> {
  const fromMs = Date.now();
  const service = SERVICE_OF[fault];
  if (service !== undefined) {
    const [proc] = pipeline.live(service);
    if (proc === undefined) throw new Error(`no live ${service} to fault`);
    const code = await pipeline.kill(proc, fault.startsWith('kill9') ? 'SIGKILL' : 'SIGTERM');
    log(`${fault}: ${service} exited ${code} after ${Date.now() - fromMs} ms; restarting`);
    if (fault.startsWith('term') && code !== 0) throw new Error(`${service} did not stop cleanly on SIGTERM (${code})`);
    await pipeline.start(service);
    return { fromMs, toMs: Date.now() };
  }
  switch (fault) {
    case 'scale-v2': {
      const extra = [await pipeline.start('correlator-v2'), await pipeline.start('correlator-v2')];
      log(`scale-v2: 3 members`);
      await sleep(10_000);
      for (const p of extra) await pipeline.kill(p, 'SIGTERM');
      log(`scale-v2: back to 1 member`);
      return { fromMs, toMs: Date.now() };
    }
    case 'redis-stop':
      redis.down();
      log('redis-stop: private redis down for 10 s');
      await sleep(10_000);
      await redis.up();
      return { fromMs, toMs: Date.now() };
    case 'broker-stop': {
      // Stops the SHARED local broker (other engineers' tests see it too): opt-in only.
      if (!brokerFaultEnabled()) throw new Error('broker-stop needs TAPIO_INTEGRITY_BROKER_FAULT=1');
      const pid = kafkaPid();
      if (pid === undefined) throw new Error('broker pid not found under .stack/');
      process.kill(pid, 'SIGTERM');
      log('broker-stop: shared broker stopped for 10 s');
      await sleep(10_000);
      const r = spawnSync('bash', [join(repoRoot, 'infra', 'stack.sh'), 'up'], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error('infra/stack.sh up failed after the broker fault');
      return { fromMs, toMs: Date.now() };
    }
    default:
      return undefined;
  }
}

/** One line of the full form's table. */
export function tableRow(r: RunReport): string[] {
  const dlq = Object.entries(r.dlqByReason)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  const atFault = r.missing.filter((m) => m.atFault).length;
  return [
    r.fault,
    String(r.eventsSent + r.poisonSent),
    String(r.expected),
    `${r.found}${r.missing.length > 0 ? ` (-${r.missing.length}: ${atFault} at fault, ${r.missing.filter((m) => m.otherTrigger !== undefined).length} other trigger)` : ''}`,
    `fp ${r.fingerprintDuplicates.length} / raw ${r.rawDeliveries - r.acceptedDeliveries}`,
    `${r.poisonSent - r.poisonMissing.length}/${r.poisonSent} ${dlq}`,
    `v1 ${r.lateEvents['v1'] ?? 0} v2 ${r.lateEvents['v2'] ?? 0}`,
    `${r.wallSeconds.toFixed(0)} s`,
  ];
}

export const TABLE_HEADER = [
  'fault',
  'records sent',
  'expected',
  'found',
  'duplicates (fingerprint / raw webhook)',
  'poison in DLQ (by reason)',
  'late',
  'wall',
];
