/**
 * End-to-end benchmark through the real local broker (issue 10). One generated stream is loaded
 * into temp topics (12 partitions, like the real event topics): raw, as `tapio produce` would, and
 * routed, the records the router emits (routesFor() per event: one record per scope key, keyed by
 * it, with the rules and scope-key headers), in the stream's delivery order. Running the real
 * router over the pre-loaded raw topic (--via-router) gives the same records in another order: it
 * drains the backlog partition batch by partition batch, so the events of one scope key that come
 * from different source partitions reach the engines minutes of event time apart, beyond the
 * allowed lateness, and some detections are lost to lateness (on the quick stream 18 of 24).
 * Then, one after
 * another, each draining the same records from the start with a fresh group:
 *   bare    a kafkajs eachBatch consumer that does nothing (the ceiling for a Node consumer here),
 *   v1      the V1 correlator service in-process,
 *   v2      the V2 correlator service in-process,
 *   router  the router service alone (raw events in, routed records out),
 * then end-to-end latency (event produced -> its result in the results topic) through router + V2 at
 * half of V2's measured capacity, and a check that V1 and V2 produced the same results.
 *
 * Throughput is records/s from the first record processed to the last (the count already done
 * when the first is seen is left out, as bench/dedup.ts does); the progress comes from the
 * services' health() (engine events, routed records), polled every few ms.
 *
 * Usage: npm run bench [-- --quick] [-- --only v2] [-- --via-router] [-- --rate N]
 *   --quick   a ~20k-event stream and a short latency run (CI, under a minute)
 *   --only    comma list of bare,v1,v2,router,latency (e.g. for `node --cpu-prof`)
 *   --via-router  build the routed topic by running the router on the raw topic (default: routesFor()
 *             in delivery order; see below why)
 *   --rate N  latency run's offered load in events/s (default: half of V2's measured capacity)
 *   --profile DIR  CPU-profile each throughput phase alone (inspector) into DIR/<phase>.cpuprofile;
 *             summarise with `node bench/dist/cpu-profile.js DIR/v2.cpuprofile`
 * Needs `npm run stack:up`. Writes bench/results/e2e.json (e2e-quick.json with --quick).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { Presets, SingleBar } from 'cli-progress';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { RegistryCodec } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { EventSink, produceAtRate } from '@tapio/ingest';
import { ROUTING_HEADERS, createKafka, createTopicsReady } from '@tapio/kafka';
import type { Admin, Kafka } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { defaultRoutingConfig, writeRoutingConfig } from '@tapio/routing';
import { routesFor } from '@tapio/rules';
import { startService } from '@tapio/runtime';
import type { StartedService } from '@tapio/runtime';
import { generateStream, listScenarios } from '@tapio/scenarios';
import type { StreamOptions } from '@tapio/scenarios';
// The benchmark runs the services in-process exactly as the integration tests do (own groups, own topics).
// eslint-disable-next-line no-restricted-imports
import { startCorrelatorV1 } from '@tapio/service-correlator-v1';
// eslint-disable-next-line no-restricted-imports
import { startCorrelatorV2 } from '@tapio/service-correlator-v2';
// eslint-disable-next-line no-restricted-imports
import { startRouter } from '@tapio/service-router';
import { engineStream } from './engine-stream';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(name);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = flag('--quick');
const PHASES = ['bare', 'v1', 'v2', 'router', 'latency'] as const;
type PhaseName = (typeof PHASES)[number];
const only = new Set<PhaseName>(
  (option('--only')?.split(',') ?? PHASES).map((p) => {
    if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: unknown phase ${p} (${PHASES.join(',')})`);
    return p as PhaseName;
  }),
);
const direct = !flag('--via-router');
const rateOption = option('--rate');
const profileDir = option('--profile');

const PARTITIONS = 12;
const RESULT_PARTITIONS = 6;
/** bench/engine.ts's stream (the quick form with less noise). */
const STREAM: StreamOptions = { ...engineStream(quick), noiseEvents: quick ? 20_000 : 300_000 };
/** Latency stream: scenario-heavy, so detections come at a modest rate (about one per 50 events). */
const LATENCY_NOISE_SHARE = 0.5;
const LATENCY_SECONDS = quick ? 6 : 20;
/**
 * Produced before the measured window, results left out: the services run in fresh processes, and a
 * deployed service is warm (JIT-compiled code paths, connections, metadata).
 */
const LATENCY_WARMUP_SECONDS = quick ? 2 : 5;
/** A phase that makes no progress for this long is reported as stuck. */
const STALL_MS = 60_000;
const POLL_MS = 5;

const tag = randomBytes(4).toString('hex');
const topic = (what: string): string => `bench-e2e-${what}-${tag}`;

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

const round = (x: number, digits = 0): number => Math.round(x * 10 ** digits) / 10 ** digits;

interface Throughput {
  /** Records counted (routed records; for the router, routed records produced). */
  records: number;
  seconds: number;
  recordsPerSecond: number;
  results: number;
}

/**
 * Polls `progress()` until it reaches `total`; the rate is measured from the first poll that saw
 * progress to the one that saw the total, leaving out what was already done at the first.
 */
async function drain(
  bar: SingleBar,
  total: number,
  progress: () => number,
): Promise<{ seconds: number; rate: number }> {
  let firstAt = 0;
  let firstCount = 0;
  let lastChange = performance.now();
  let last = 0;
  for (;;) {
    const n = progress();
    const now = performance.now();
    if (n !== last) {
      last = n;
      lastChange = now;
      bar.update(n);
    }
    if (firstAt === 0 && n > 0) {
      firstAt = now;
      firstCount = n;
    }
    if (n >= total) {
      bar.update(n);
      const seconds = (now - firstAt) / 1000;
      return { seconds, rate: seconds > 0 ? (n - firstCount) / seconds : NaN };
    }
    if (now - lastChange > STALL_MS) throw new Error(`stuck at ${n}/${total} for ${STALL_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

/** Reads exactly n records of a topic from the beginning and decodes them as results. */
async function readResults(kafka: Kafka, codec: RegistryCodec, topicName: string, n: number): Promise<Result[]> {
  const out: Result[] = [];
  if (n === 0) return out;
  const consumer = kafka.consumer({ groupId: `bench-read-${randomBytes(4).toString('hex')}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: topicName, fromBeginning: true });
    const values: Buffer[] = [];
    await consumer.run({
      eachBatch: ({ batch }) => {
        for (const m of batch.messages) if (m.value !== null) values.push(m.value);
        return Promise.resolve();
      },
    });
    const deadline = Date.now() + 60_000;
    while (values.length < n) {
      if (Date.now() > deadline) throw new Error(`${topicName}: ${values.length}/${n} results after 60 s`);
      await sleep(20);
    }
    for (const v of values) out.push(await codec.decode<Result>(v));
  } finally {
    await consumer.disconnect();
  }
  return out;
}

function resultKey(r: Result): string {
  return JSON.stringify([r.ruleId, r.entityKey, r.triggerEventId, r.severity, r.confidence, r.evidence]);
}

async function createTopics(admin: Admin, topics: { name: string; partitions: number }[]): Promise<void> {
  await createTopicsReady(
    admin,
    topics.map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: 1 })),
  );
}

/** Waits until every group is Stable with at least one member (so the latency run does not time the joins). */
async function waitStable(admin: Admin, groupIds: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { groups } = await admin.describeGroups(groupIds);
    if (groups.every((g) => g.state === 'Stable' && g.members.length > 0)) return;
    if (Date.now() > deadline)
      throw new Error(`groups not stable: ${groups.map((g) => `${g.groupId}=${g.state}`).join(', ')}`);
    await sleep(100);
  }
}

/** With --profile: a CPU profile of the process while `run` lasts (the service under test runs in-process). */
async function profiled<T>(phase: string, run: () => Promise<T>): Promise<T> {
  if (profileDir === undefined) return run();
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) =>
      session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    mkdirSync(profileDir, { recursive: true });
    writeFileSync(join(profileDir, `${phase}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

/** One bar per phase (phases run one after another); on a terminal only, cli-progress prints nothing else. */
function startBar(phase: string, total: number): SingleBar {
  if (!process.stderr.isTTY) process.stderr.write(`${phase}: ${total}\n`);
  const bar = new SingleBar(
    { format: `${phase.padEnd(28)} [{bar}] {value}/{total} {percentage}% {duration}s`, hideCursor: true },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}

/** A service running as its own process (its own event loop), as deployed; `health()` reads its /healthz. */
interface ChildService {
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

const REPO = resolve(__dirname, '..', '..');

/**
 * Starts `services/<dir>/dist/main.js` with the config in TAPIO_* variables (packages/config) and
 * waits for its "started" log line, which carries its /healthz address (http.port 0: a free port).
 */
async function spawnService(name: string, dir: string, env: Record<string, string>): Promise<ChildService> {
  const child: ChildProcess = spawn(process.execPath, [join(REPO, 'services', dir, 'dist', 'main.js')], {
    env: { ...process.env, TAPIO_HTTP__PORT: '0', TAPIO_LOG__LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const healthUrl = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not started within 60 s\n${stderr}`)), 60_000);
    void exited.then((code) => reject(new Error(`${name} exited (${code}) before starting\n${stderr}`)));
    lines.on('line', (line) => {
      if (!line.includes('"health"')) return;
      try {
        const { health } = JSON.parse(line) as { health?: string };
        if (health !== undefined) {
          clearTimeout(timer);
          resolveUrl(health);
        }
      } catch {
        // not a JSON log line
      }
    });
  });
  // Keep draining its log (a full pipe would block the child); warnings and errors go to our stderr.
  lines.on('line', (line) => {
    if (/"level":(40|50|60)/.test(line)) process.stderr.write(`[${name}] ${line}\n`);
  });
  return {
    async health() {
      const res = await fetch(healthUrl);
      return (await res.json()) as Record<string, unknown>;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(30_000).then(() => 'timeout' as const)]);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        throw new Error(`${name}: no clean stop within 30 s`);
      }
      if (code !== 0) throw new Error(`${name} stopped with code ${String(code)}\n${stderr}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Phases

interface Context {
  config: Readonly<TapioConfig>;
  kafka: Kafka;
  admin: Admin;
  codec: RegistryCodec;
  /** Temp topics the router writes where nothing should arrive (V1 and shadow targets). */
  v1Sink: string;
  shadowSink: string;
  controlTopic: string;
}

function serviceOptions(ctx: Context, name: string): Parameters<typeof startService>[2] {
  return { config: ctx.config, logger: createLogger(name, 'silent') };
}

/** Produces raw events into `topicName` (Avro, keyed by source entity, like `tapio produce`). */
async function loadRaw(ctx: Context, events: readonly Event[], topicName: string, label: string): Promise<void> {
  const sink = new EventSink(ctx.config, ctx.kafka, topicName);
  await sink.open();
  const bar = startBar(label, events.length);
  const BATCH = 2000;
  try {
    // One send at a time: two concurrent sends on the same producer can land in a partition in either
    // order, which reordered one source's events (142 scenario events late, 20 of 24 detections via
    // the router on the quick stream). A collector sends in order; so does this.
    for (let i = 0; i < events.length; i += BATCH) {
      await sink.send(events.slice(i, i + BATCH));
      bar.increment(Math.min(BATCH, events.length - i));
    }
  } finally {
    bar.stop();
    await sink.close();
  }
}

/** The routed topic built without the router: per event and scope key, the record the router emits. */
async function loadRoutedDirect(
  ctx: Context,
  events: readonly Event[],
  topicName: string,
  total: number,
): Promise<void> {
  const schemaId = await ctx.codec.registerEvent(topicName);
  const producer = ctx.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const bar = startBar('load routed (direct)', total);
  try {
    let messages: { key: string; value: Buffer; headers: Record<string, string> }[] = [];
    const flush = async (): Promise<void> => {
      if (messages.length === 0) return;
      await producer.send({ topic: topicName, acks: -1, messages });
      bar.increment(messages.length);
      messages = [];
    };
    for (const event of events) {
      const routes = routesFor(event);
      if (routes.length === 0) continue;
      const value = ctx.codec.encode(schemaId, event);
      for (const r of routes) {
        messages.push({
          key: r.scopeKey,
          value,
          headers: { [ROUTING_HEADERS.rules]: r.ruleIds.join(','), [ROUTING_HEADERS.scopeKey]: r.scopeKey },
        });
      }
      if (messages.length >= 2000) await flush();
    }
    await flush();
  } finally {
    bar.stop();
    await producer.disconnect();
  }
}

/** Runs the router from `input` to `output` until it has routed `routed` records. */
async function runRouter(
  ctx: Context,
  input: string,
  output: string,
  routed: number,
  label: string,
): Promise<Throughput & { v1Records: number }> {
  const groupId = `bench-router-${randomBytes(4).toString('hex')}`;
  const started = await startService(
    'router',
    (c) =>
      startRouter(c, {
        inputTopic: input,
        v2Topic: output,
        v1Topic: ctx.v1Sink,
        shadowTopic: ctx.shadowSink,
        controlTopic: ctx.controlTopic,
        groupId,
      }),
    serviceOptions(ctx, 'router'),
  );
  const bar = startBar(label, routed);
  try {
    const progress = (): number => Number(started.service.health()['routed']);
    const { seconds, rate } = await profiled(label === 'router alone' ? 'router' : 'router-preload', () =>
      drain(bar, routed, progress),
    );
    const v1Records = await topicSize(ctx.admin, ctx.v1Sink);
    return { records: progress(), seconds, recordsPerSecond: rate, results: 0, v1Records };
  } finally {
    bar.stop();
    await started.shutdown('bench done');
    await ctx.admin.deleteGroups([groupId]).catch(() => undefined);
  }
}

async function topicSize(admin: Admin, topicName: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topicName);
  return offsets.reduce((s, p) => s + Number(p.high) - Number(p.low), 0);
}

async function runBare(ctx: Context, input: string, total: number): Promise<Throughput> {
  const groupId = `bench-bare-${randomBytes(4).toString('hex')}`;
  const consumer = ctx.kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic: input, fromBeginning: true });
  let count = 0;
  const bar = startBar('bare eachBatch', total);
  try {
    await consumer.run({
      eachBatch: ({ batch }) => {
        count += batch.messages.length;
        return Promise.resolve();
      },
    });
    const { seconds, rate } = await profiled('bare', () => drain(bar, total, () => count));
    return { records: count, seconds, recordsPerSecond: rate, results: 0 };
  } finally {
    bar.stop();
    await consumer.disconnect();
    await ctx.admin.deleteGroups([groupId]).catch(() => undefined);
  }
}

async function runCorrelator(
  ctx: Context,
  engine: 'v1' | 'v2',
  input: string,
  output: string,
  total: number,
): Promise<Throughput & { output: Result[]; errors: Record<string, number> }> {
  const groupId = `bench-${engine}-${randomBytes(4).toString('hex')}`;
  const name = `correlator-${engine}`;
  const started: StartedService = await startService(
    name,
    (c) =>
      engine === 'v1'
        ? startCorrelatorV1(c, { inputTopic: input, outputTopic: output, groupId })
        : startCorrelatorV2(c, { inputTopic: input, outputTopic: output, groupId }),
    serviceOptions(ctx, name),
  );
  const bar = startBar(`${engine.toUpperCase()} correlator`, total);
  let measured: { seconds: number; rate: number };
  let results: number;
  const errors: Record<string, number> = {};
  try {
    measured = await profiled(engine, () => drain(bar, total, () => Number(started.service.health()['events'])));
    results = Number(started.service.health()['results']);
    // Rule timeouts (wall clock, config.correlation.ruleTimeoutMs) drop results on a loaded machine.
    const metric = await started.ctx.metrics.getSingleMetric('tapio_errors_total')?.get();
    for (const v of metric?.values ?? []) errors[String(v.labels['type'] ?? v.labels['kind'] ?? 'error')] = v.value;
  } finally {
    bar.stop();
    // stop() waits for the last batch's produce and commit.
    await started.shutdown('bench done');
    await ctx.admin.deleteGroups([groupId]).catch(() => undefined);
  }
  const produced = await readResults(ctx.kafka, ctx.codec, output, results);
  return {
    records: total,
    seconds: measured.seconds,
    recordsPerSecond: measured.rate,
    results: produced.length,
    output: produced,
    errors,
  };
}

interface Stage {
  p50: number;
  p99: number;
}

interface LatencyReport {
  offeredEventsPerSecond: number;
  achievedEventsPerSecond: number;
  seconds: number;
  events: number;
  routedRecords: number;
  results: number;
  matched: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * Where the time goes, p50 / p99 per stage, from record timestamps (CreateTime, same clock):
   * trigger produced -> its routed record produced by the router -> result produced by V2 -> result read.
   */
  stagesMs: { router: Stage; v2: Stage; read: Stage };
  /** Seconds produced before the measured window (their results are left out). */
  warmupSeconds: number;
  maxMsBySecond: number[];
}

/** Router + V2 on fresh topics; events produced at `rate`; per result, trigger produce -> result arrival. */
async function runLatency(ctx: Context, rate: number, eventsPerInstance: number): Promise<LatencyReport> {
  const needed = Math.ceil(rate * (LATENCY_WARMUP_SECONDS + LATENCY_SECONDS) * 1.1) + 1000;
  const instances = Math.max(
    1,
    Math.ceil((needed * (1 - LATENCY_NOISE_SHARE)) / eventsPerInstance / listScenarios().length),
  );
  const stream = generateStream({
    ...STREAM,
    seed: STREAM.seed + 1,
    incidentsPerScenario: instances,
    noiseEvents: Math.round(needed * LATENCY_NOISE_SHARE),
  });
  const raw = topic('lat-events');
  const routedTopic = topic('lat-routed');
  const results = topic('lat-results');
  await createTopics(ctx.admin, [
    { name: raw, partitions: PARTITIONS },
    { name: routedTopic, partitions: PARTITIONS },
    { name: results, partitions: RESULT_PARTITIONS },
  ]);
  const routerGroup = `bench-lat-router-${tag}`;
  const v2Group = `bench-lat-v2-${tag}`;
  const readerGroup = `bench-lat-reader-${tag}`;
  const sentAt = new Map<string, number>();
  const arrivals: { at: number; producedAt: number; value: Buffer }[] = [];

  // Diagnostic: when the router produced each trigger's first routed record (its CreateTime).
  const routedAt = new Map<string, number>();
  const routedValues: { at: number; value: Buffer }[] = [];
  // The readers commit nothing: kafkajs with autoCommit commits after every batch, which would
  // hold up their next fetch (a reader with a commit per batch adds ~70 ms, single-hop harness).
  const routedReader = ctx.kafka.consumer({ groupId: `${readerGroup}-routed` });
  await routedReader.connect();
  await routedReader.subscribe({ topic: routedTopic, fromBeginning: true });
  await routedReader.run({
    autoCommit: false,
    eachBatch: ({ batch }) => {
      for (const m of batch.messages)
        if (m.value !== null) routedValues.push({ at: Number(m.timestamp), value: m.value });
      return Promise.resolve();
    },
  });
  const reader = ctx.kafka.consumer({ groupId: readerGroup });
  await reader.connect();
  await reader.subscribe({ topic: results, fromBeginning: true });
  await reader.run({
    autoCommit: false,
    eachBatch: ({ batch }) => {
      const at = Date.now();
      for (const m of batch.messages) {
        if (m.value !== null) arrivals.push({ at, producedAt: Number(m.timestamp), value: m.value });
      }
      return Promise.resolve();
    },
  });
  // Router and V2 each in its own process, configured as deployed (TAPIO_* variables), so neither
  // shares an event loop with the other, with the producer or with the readers.
  const common = {
    TAPIO_TOPICS__CONTROL: ctx.controlTopic,
    TAPIO_TOPICS__HEALTH: ctx.config.topics.health,
    TAPIO_TOPICS__DLQ: ctx.config.topics.dlq,
  };
  const started: ChildService[] = [];
  const spawnTracked = async (name: string, env: Record<string, string>): Promise<ChildService> => {
    const child = await spawnService(name, name, { ...common, ...env });
    started.push(child);
    return child;
  };
  const sink = new EventSink(ctx.config, ctx.kafka, raw);
  await sink.open();
  const bar = startBar('latency run (router + V2)', Math.round(rate * (LATENCY_WARMUP_SECONDS + LATENCY_SECONDS)));
  let summary;
  let routedRecords = 0;
  let measureFrom = Infinity;
  try {
    const [, v2] = await Promise.all([
      spawnTracked('router', {
        TAPIO_TOPICS__EVENTS: raw,
        TAPIO_TOPICS__EVENTSV2: routedTopic,
        TAPIO_TOPICS__EVENTSV1: ctx.v1Sink,
        TAPIO_TOPICS__EVENTSV2SHADOW: ctx.shadowSink,
        TAPIO_GROUPS__ROUTER: routerGroup,
      }),
      spawnTracked('correlator-v2', {
        TAPIO_CORRELATOR__ROLE: 'primary',
        TAPIO_TOPICS__EVENTSV2: routedTopic,
        TAPIO_TOPICS__RESULTS: results,
        TAPIO_GROUPS__V2: v2Group,
      }),
    ]);
    await waitStable(ctx.admin, [routerGroup, v2Group, readerGroup, `${readerGroup}-routed`]);
    let i = 0;
    const events = stream.events;
    measureFrom = Date.now() + LATENCY_WARMUP_SECONDS * 1000;
    summary = await produceAtRate(
      () => {
        const e = events[i++];
        if (e === undefined) throw new Error(`latency stream exhausted after ${events.length} events`);
        return e;
      },
      {
        send: (batch: readonly Event[]) => {
          const now = Date.now();
          for (const e of batch) sentAt.set(e.id, now);
          return sink.send(batch);
        },
      },
      {
        rate,
        durationMs: (LATENCY_WARMUP_SECONDS + LATENCY_SECONDS) * 1000,
        maxBatch: 2000,
        ticksPerSecond: 100,
        onBatch: (_, total) => bar.update(total),
      },
    );
    for (let k = 0; k < summary.sent; k++) routedRecords += routesFor(events[k] as Event).length;
    // Drained: V2 has evaluated every routed record and its results have all arrived.
    let deadline = Date.now() + STALL_MS;
    let seen = -1;
    for (;;) {
      const h = await v2.health();
      if (Number(h['events']) >= routedRecords && arrivals.length >= Number(h['results'])) break;
      // A backlog (offered load above capacity) drains for as long as it makes progress.
      if (Number(h['events']) !== seen) {
        seen = Number(h['events']);
        deadline = Date.now() + STALL_MS;
      }
      if (Date.now() > deadline) throw new Error(`latency run not drained: V2 ${String(h['events'])}/${routedRecords}`);
      await sleep(50);
    }
  } finally {
    bar.stop();
    await sink.close();
    await Promise.all(started.map((c) => c.stop()));
    await reader.disconnect();
    await routedReader.disconnect();
    await ctx.admin.deleteGroups([routerGroup, v2Group, readerGroup, `${readerGroup}-routed`]).catch(() => undefined);
    await ctx.admin.deleteTopics({ topics: [raw, routedTopic, results] }).catch(() => undefined);
  }
  const latencies: number[] = [];
  const stageRouter: number[] = [];
  const stageV2: number[] = [];
  const stageRead: number[] = [];
  /** Per second of the measured window (by trigger send time): the slowest result's latency. */
  const timeline: number[] = [];
  for (const rv of routedValues) {
    const e = await ctx.codec.decode<Event>(rv.value);
    if (!routedAt.has(e.id)) routedAt.set(e.id, rv.at);
  }
  for (const a of arrivals) {
    const r = await ctx.codec.decode<Result>(a.value);
    const sent = sentAt.get(r.triggerEventId);
    if (sent === undefined || sent < measureFrom) continue;
    latencies.push(a.at - sent);
    const second = Math.floor((sent - measureFrom) / 1000);
    timeline[second] = Math.max(timeline[second] ?? 0, a.at - sent);
    const routed = routedAt.get(r.triggerEventId) ?? NaN;
    stageRouter.push(routed - sent);
    stageV2.push(a.producedAt - routed);
    stageRead.push(a.at - a.producedAt);
  }
  const numeric = (a: number, b: number): number => a - b;
  latencies.sort(numeric);
  const stage = (xs: number[]): Stage => {
    xs.sort(numeric);
    return { p50: percentile(xs, 50), p99: percentile(xs, 99) };
  };
  return {
    offeredEventsPerSecond: round(rate),
    achievedEventsPerSecond: round(summary.rate),
    seconds: round(summary.seconds, 1),
    events: summary.sent,
    routedRecords,
    results: arrivals.length,
    matched: latencies.length,
    p50Ms: percentile(latencies, 50),
    p90Ms: percentile(latencies, 90),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length > 0 ? (latencies[latencies.length - 1] as number) : NaN,
    stagesMs: { router: stage(stageRouter), v2: stage(stageV2), read: stage(stageRead) },
    warmupSeconds: LATENCY_WARMUP_SECONDS,
    maxMsBySecond: Array.from(timeline, (x) => x ?? 0),
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const config = loadConfig({
    env: process.env,
    overrides: { http: { port: 0 }, log: { level: 'silent' }, topics: { health: topic('health'), dlq: topic('dlq') } },
  });
  const kafka = createKafka(config, undefined, '-bench');
  const admin = kafka.admin();
  await admin.connect();
  const codec = new RegistryCodec({ url: config.registry.url });
  const ctx: Context = {
    config,
    kafka,
    admin,
    codec,
    v1Sink: topic('v1-sink'),
    shadowSink: topic('shadow-sink'),
    controlTopic: topic('control'),
  };
  const raw = topic('events');
  const routed = topic('routed');
  const routerOut = topic('router-out');
  const resultsV1 = topic('results-v1');
  const resultsV2 = topic('results-v2');
  const created = [
    { name: raw, partitions: PARTITIONS },
    { name: routed, partitions: PARTITIONS },
    { name: routerOut, partitions: PARTITIONS },
    { name: ctx.v1Sink, partitions: PARTITIONS },
    { name: ctx.shadowSink, partitions: PARTITIONS },
    { name: resultsV1, partitions: RESULT_PARTITIONS },
    { name: resultsV2, partitions: RESULT_PARTITIONS },
    { name: ctx.controlTopic, partitions: 1 },
    { name: config.topics.health, partitions: 1 },
    { name: config.topics.dlq, partitions: 1 },
  ];
  await createTopics(admin, created);

  try {
    // Every scope key to V2 from the first event on (no earlier routing, so no handoff), breaker off:
    // the run measures the data path, not routing decisions.
    const control = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await control.connect();
    const base = defaultRoutingConfig(config);
    await writeRoutingConfig(control, ctx.controlTopic, {
      ...base,
      strategy: 'percentage',
      v2Percentage: 100,
      features: {},
      breaker: { ...base.breaker, mode: 'disabled' },
    });
    await control.disconnect();

    // The stream lives only while it is loaded: the latency runs share this process's heap with the
    // readers, and a major GC over a heap holding ~300k events stalls them for 100+ ms.
    const { eventCount, expectedCount, routedTotal, scopeKeys, preload } = await (async () => {
      const stream = generateStream(STREAM);
      const events = stream.events;
      let routedTotal = 0;
      const keys = new Set<string>();
      for (const e of events) {
        for (const r of routesFor(e)) {
          routedTotal++;
          keys.add(r.scopeKey);
        }
      }
      const mix =
        `generateStream({ scenarios: 'all' (${listScenarios().length}), incidentsPerScenario: ${STREAM.incidentsPerScenario}, ` +
        `noiseEvents: ${STREAM.noiseEvents}, outOfOrderMs: ${STREAM.outOfOrderMs}, lateShare: ${STREAM.lateShare}, seed: ${STREAM.seed} })`;
      process.stdout.write(
        `stream: ${mix}\n  ${events.length} events -> ${routedTotal} routed records over ${keys.size} scope keys; ` +
          `${stream.expected.length} expected detections; ${PARTITIONS} partitions\n`,
      );

      await loadRaw(ctx, events, raw, 'load raw events');
      let preload: (Throughput & { v1Records: number }) | undefined;
      if (direct) await loadRoutedDirect(ctx, events, routed, routedTotal);
      else preload = await runRouter(ctx, raw, routed, routedTotal, 'load routed (router)');
      return {
        eventCount: events.length,
        expectedCount: stream.expected.length,
        routedTotal,
        scopeKeys: keys.size,
        preload,
      };
    })();
    const routedSize = await topicSize(admin, routed);
    if (routedSize !== routedTotal)
      throw new Error(`routed topic holds ${routedSize} records, routesFor says ${routedTotal}`);

    const report: Record<string, unknown> = {
      when: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      machine: { cpus: cpus().length, memoryGiB: round(totalmem() / 2 ** 30, 1), node: process.version },
      stream: {
        ...STREAM,
        events: eventCount,
        routedRecords: routedTotal,
        scopeKeys,
        expectedDetections: expectedCount,
      },
      partitions: PARTITIONS,
      routedBy: direct ? 'routesFor (direct)' : 'the router service',
    };
    const throughput: Record<string, unknown> = {};
    if (preload !== undefined) throughput['routerPreload'] = preloadRow(preload, eventCount, routedTotal);

    let bare: Throughput | undefined;
    let v1: (Throughput & { output: Result[]; errors: Record<string, number> }) | undefined;
    let v2: (Throughput & { output: Result[]; errors: Record<string, number> }) | undefined;
    let router: (Throughput & { v1Records: number }) | undefined;
    if (only.has('bare')) bare = await runBare(ctx, routed, routedTotal);
    if (only.has('v1')) v1 = await runCorrelator(ctx, 'v1', routed, resultsV1, routedTotal);
    if (only.has('v2')) v2 = await runCorrelator(ctx, 'v2', routed, resultsV2, routedTotal);
    if (only.has('router')) router = await runRouter(ctx, raw, routerOut, routedTotal, 'router alone');

    const row = (t: Throughput): Record<string, number> => ({
      records: t.records,
      seconds: round(t.seconds, 2),
      recordsPerSecond: Math.round(t.recordsPerSecond),
      results: t.results,
    });
    if (bare) throughput['bare'] = row(bare);
    if (v1) throughput['v1'] = { ...row(v1), engineErrors: v1.errors };
    if (v2) throughput['v2'] = { ...row(v2), engineErrors: v2.errors };
    if (router) throughput['router'] = preloadRow(router, eventCount, routedTotal);
    report['throughput'] = throughput;

    let identical: { same: boolean; v1: number; v2: number; onlyV1: string[]; onlyV2: string[] } | undefined;
    if (v1 && v2) {
      const a = new Set(v1.output.map(resultKey));
      const b = new Set(v2.output.map(resultKey));
      const onlyV1 = [...a].filter((k) => !b.has(k));
      const onlyV2 = [...b].filter((k) => !a.has(k));
      identical = {
        same: onlyV1.length === 0 && onlyV2.length === 0 && v1.output.length === v2.output.length,
        v1: v1.output.length,
        v2: v2.output.length,
        onlyV1: onlyV1.slice(0, 10),
        onlyV2: onlyV2.slice(0, 10),
      };
      report['identicalResults'] = identical;
    }

    // The target's load is half of V2's capacity. The pipeline's bottleneck may be the router
    // instead; then a second run at half of the bottleneck shows the latency the pipeline can hold.
    const latencies: { basis: string; report: LatencyReport }[] = [];
    if (only.has('latency')) {
      const perEvent = routedTotal / eventCount;
      const v2Events = v2 ? v2.recordsPerSecond / perEvent : NaN;
      const routerEvents = router ? router.recordsPerSecond / perEvent : NaN;
      const runs: { basis: string; rate: number }[] = [];
      if (rateOption !== undefined) runs.push({ basis: `--rate ${rateOption}`, rate: Number(rateOption) });
      else {
        if (!(v2Events > 0)) throw new Error('latency: run V2 in the same run or give --rate <events/s>');
        // --quick (CI, under a minute): only the lower of the two, so that no backlog has to drain.
        if (!quick || !(routerEvents < v2Events)) runs.push({ basis: 'half of V2 capacity', rate: v2Events / 2 });
        if (routerEvents < v2Events) runs.push({ basis: 'half of router capacity', rate: routerEvents / 2 });
      }
      // Scenario events per instance in the main stream: sizes the latency stream's instance count.
      const perInstance =
        (eventCount - STREAM.noiseEvents) / ((STREAM.incidentsPerScenario ?? 1) * listScenarios().length);
      for (const run of runs) {
        if (!(run.rate > 0)) throw new Error(`latency: bad rate ${run.rate}`);
        latencies.push({ basis: run.basis, report: await runLatency(ctx, run.rate, perInstance) });
      }
      report['latency'] = latencies.map((l) => ({ basis: l.basis, ...l.report }));
    }

    // Targets (issue 10): checked here, never by tests.
    const targets: { name: string; pass: boolean; detail: string }[] = [];
    if (v1 && v2) {
      const r = v2.recordsPerSecond / v1.recordsPerSecond;
      targets.push({ name: 'V2 >= 3x V1', pass: r >= 3, detail: `${r.toFixed(2)}x` });
    }
    if (bare && v2) {
      const r = v2.recordsPerSecond / bare.recordsPerSecond;
      targets.push({ name: 'V2 >= 60 % of bare consumer', pass: r >= 0.6, detail: `${(r * 100).toFixed(0)} %` });
    }
    for (const { basis, report: l } of latencies) {
      targets.push({
        name: `e2e p99 < 100 ms at ${basis}`,
        pass: l.p99Ms < 100,
        detail: `p99 ${l.p99Ms} ms (${(l.p99Ms / 100).toFixed(2)}x the limit), p50 ${l.p50Ms} ms, ${l.offeredEventsPerSecond} events/s`,
      });
    }
    if (identical) {
      targets.push({
        name: 'V1 and V2 results identical',
        pass: identical.same,
        detail: `V1 ${identical.v1}, V2 ${identical.v2}, only V1 ${identical.onlyV1.length}, only V2 ${identical.onlyV2.length} (stream expects ${expectedCount})`,
      });
    }
    report['targets'] = targets;

    const lines: string[] = [
      '',
      `${'path'.padEnd(34)} ${'records'.padStart(8)} ${'seconds'.padStart(8)} ${'records/s'.padStart(10)} ${'results'.padStart(8)}`,
    ];
    const line = (name: string, t: Throughput, note = ''): void => {
      lines.push(
        `${name.padEnd(34)} ${String(t.records).padStart(8)} ${t.seconds.toFixed(2).padStart(8)} ` +
          `${String(Math.round(t.recordsPerSecond)).padStart(10)} ${String(t.results).padStart(8)}${note}`,
      );
    };
    if (preload)
      line(
        'router (pre-load pass)',
        preload,
        `  (${Math.round((preload.recordsPerSecond * eventCount) / routedTotal)} events/s)`,
      );
    if (bare) line('bare eachBatch consumer', bare);
    const errs = (e: Record<string, number>): string =>
      Object.keys(e).length === 0 ? '' : `  engine errors ${JSON.stringify(e)}`;
    if (v1) line('V1 correlator', v1, errs(v1.errors));
    if (v2) line('V2 correlator', v2, errs(v2.errors));
    if (router)
      line('router alone', router, `  (${Math.round((router.recordsPerSecond * eventCount) / routedTotal)} events/s)`);
    if (latencies.length > 0) lines.push('');
    for (const { basis, report: l } of latencies) {
      lines.push(
        `latency at ${basis} (router + V2, ${l.offeredEventsPerSecond} events/s offered, ${l.achievedEventsPerSecond} reached, ` +
          `${l.events} events, ${l.results} results, ${l.matched} matched after a ${l.warmupSeconds} s warm-up): ` +
          `p50 ${l.p50Ms} ms, p90 ${l.p90Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms; stages p50/p99: ` +
          `to router out ${l.stagesMs.router.p50}/${l.stagesMs.router.p99} ms, ` +
          `V2 ${l.stagesMs.v2.p50}/${l.stagesMs.v2.p99} ms, read ${l.stagesMs.read.p50}/${l.stagesMs.read.p99} ms`,
      );
    }
    lines.push('');
    for (const t of targets) lines.push(`${t.pass ? 'PASS' : 'MISS'}  ${t.name.padEnd(40)} ${t.detail}`);
    process.stdout.write(lines.join('\n') + '\n');

    const dir = join(__dirname, '..', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, quick ? 'e2e-quick.json' : only.size < PHASES.length ? 'e2e-partial.json' : 'e2e.json');
    writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(`wrote ${file}\n`);
  } finally {
    await admin.deleteTopics({ topics: created.map((t) => t.name) }).catch(() => undefined);
    await admin.disconnect();
  }
}

function preloadRow(t: Throughput & { v1Records: number }, events: number, routed: number): Record<string, number> {
  return {
    records: t.records,
    seconds: round(t.seconds, 2),
    recordsPerSecond: Math.round(t.recordsPerSecond),
    eventsPerSecond: Math.round((t.recordsPerSecond * events) / routed),
    recordsToV1: t.v1Records,
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
