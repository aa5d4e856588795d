/**
 * `tapio verify`: the conformance check of ARCHITECTURE.md's "Pipeline guarantees". One JSON-lines
 * file goes through a real pipeline (routers and both correlators as processes, on topics and groups
 * of this run only) and through `tapio replay`; the results must be equal incident for incident
 * (@tapio/comparison compareIncidents). Exit 0: equal; 1: a difference; 2: bad input; 3: the run did
 * not complete (timeout, a service died, interrupted).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TapioConfig } from '@tapio/config';
import { loadConfig } from '@tapio/config';
import { compareIncidents } from '@tapio/comparison';
import type { IncidentComparison, IncidentDifference } from '@tapio/comparison';
import { RESULT_SCHEMA, RegistryCodec, WireDecoder } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { EventSink } from '@tapio/ingest';
import { DLQ_HEADERS, createKafka, ensureTopics, headerText, readTopicToEnd, topicSpecs } from '@tapio/kafka';
import type { Admin, Kafka } from '@tapio/kafka';
import { CATEGORIES, defaultRoutingConfig, patchRoutingConfig, writeRoutingConfig } from '@tapio/routing';
import type { Engine, RoutingConfig } from '@tapio/routing';
import { RULES } from '@tapio/rules';
import { ServiceProcesses, consumerLag } from '@tapio/runtime';
import { newRunId, privateRunEnv } from '../run';
import { repoRoot } from './demo';
import { engineFactory } from './replay';
import { categoryPlacement } from './route';

export const VERIFY_EXIT = { equal: 0, different: 1, badInput: 2, incomplete: 3 } as const;

export interface VerifyOptions {
  input: string;
  /** The events of the file, read and validated before anything is created. */
  events: readonly Event[];
  /** Default: the config's correlation.hybrid.v2_percentage. */
  v2Percentage?: number;
  categories: Partial<Record<string, Engine>>;
  routers: number;
  v1Consumers: number;
  v2Consumers: number;
  /** Partitions of the event topics; default the config's topics.eventPartitions. */
  partitions?: number;
  /** Produce the whole file first, then start the routers (they catch up on a backlog). */
  backlog: boolean;
  /** Events per second when producing live; undefined: as fast as the broker takes them. */
  rate?: number;
  replayEngines: readonly ('v1' | 'v2')[];
  /** The replay's config when it differs from the pipeline's (--replay-config). */
  replayConfig?: { file: string; config: Readonly<TapioConfig> };
  timeoutMs: number;
  /** Once every lag is 0, the results topic must not grow for this long. */
  quietMs: number;
  keep: boolean;
  /** The pipeline's config file (--config), handed to the services as TAPIO_CONFIG. */
  configFile?: string;
}

export interface VerifyIo {
  env: Readonly<Record<string, string | undefined>>;
  /** Progress lines (stderr). */
  progress: (line: string) => void;
  interrupted: Promise<void>;
}

export interface PendingLag {
  group: string;
  topic: string;
  lag: number;
}

export interface VerifyReport {
  runId: string;
  input: string;
  events: number;
  topicPrefix: string;
  setup: {
    routers: number;
    v1Consumers: number;
    v2Consumers: number;
    eventPartitions: number;
    mode: 'live' | 'backlog';
    ratePerSecond: number | null;
    routing: { epoch: number; v2Percentage: number; placement: Record<string, string> };
  };
  produced: number;
  produceSeconds: number;
  /** From the last event produced to the pipeline's quiet end. */
  drainSeconds: number;
  /** Null when the run completed; else why not, with what was still pending. */
  incomplete: { reason: string; pending: PendingLag[] } | null;
  found: { records: number; v1: number; v2: number; unreadable: number };
  replay: {
    config: string | null;
    allowedLatenessMs: number;
    runs: { engine: 'v1' | 'v2'; results: number; lateEvents: number }[];
    /** V1's replay against V2's, when both ran. */
    enginesDisagree: IncidentComparison | null;
  };
  pipeline: {
    allowedLatenessMs: number;
    lateEvents: Record<string, number>;
    alignmentForced: number;
    deadLettered: Record<string, number>;
    deadLetterSamples: string[];
  };
  comparison: IncidentComparison;
  logDir: string | null;
  exitCode: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Incomplete extends Error {}

/** The routing document of the run: a fixed split, nothing that moves keys while it runs. */
export function verifyRouting(
  config: Pick<TapioConfig, 'correlation'>,
  v2Percentage: number | undefined,
  categories: Partial<Record<string, Engine>>,
): RoutingConfig {
  // Percentage is the only strategy whose split does not depend on a controller, load or the clock;
  // the breaker and shadow are off, so no route change happens during the run.
  return patchRoutingConfig(defaultRoutingConfig(config), {
    strategy: 'percentage',
    ...(v2Percentage === undefined ? {} : { v2Percentage }),
    categoryOverrides: categories,
    shadow: { enabled: false, percentage: 0 },
    breaker: { mode: 'disabled' },
  });
}

/** Every group of the run consumed its topic to the end (committed), by group. */
async function lags(admin: Admin, pairs: readonly [string, string][]): Promise<PendingLag[]> {
  return Promise.all(
    pairs.map(async ([group, topic]) => ({ group, topic, lag: await consumerLag(admin, group, topic) })),
  );
}

const sum = (values: Record<string, number>): number => Object.values(values).reduce((a, b) => a + b, 0);

async function writeRouting(kafka: Kafka, topic: string, doc: RoutingConfig): Promise<RoutingConfig> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    return await writeRoutingConfig(producer, topic, doc);
  } finally {
    await producer.disconnect();
  }
}

async function topicSize(admin: Admin, topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
}

async function waitForGroups(
  admin: Admin,
  groups: readonly [string, number][],
  check: () => void,
  deadline: number,
): Promise<void> {
  for (;;) {
    check();
    const { groups: described } = await admin.describeGroups(groups.map(([g]) => g));
    const waiting = groups.filter(([g, n]) => {
      const d = described.find((x) => x.groupId === g);
      return d === undefined || d.state !== 'Stable' || d.members.length !== n;
    });
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      throw new Incomplete(`consumer groups not stable in time: ${waiting.map(([g, n]) => `${g} (${n})`).join(', ')}`);
    }
    await sleep(250);
  }
}

async function produceEvents(
  sink: EventSink,
  events: readonly Event[],
  rate: number | undefined,
  check: () => void,
): Promise<number> {
  const batch = 1000;
  let sent = 0;
  const started = performance.now();
  while (sent < events.length) {
    check();
    const due =
      rate === undefined
        ? events.length
        : Math.min(events.length, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) {
      const end = Math.min(due, sent + batch);
      await sink.send(events.slice(sent, end));
      sent = end;
    }
    if (sent < events.length) await sleep(50);
  }
  return sent;
}

async function readResults(
  kafka: Kafka,
  registryUrl: string,
  topic: string,
): Promise<{ results: Result[]; unreadable: number }> {
  const values: (Buffer | null)[] = [];
  await readTopicToEnd(kafka, topic, (m) => values.push(m.value), { timeoutMs: 60_000, groupPrefix: 'tapio-verify' });
  const decoder = new WireDecoder<Result>(new RegistryCodec({ url: registryUrl }), RESULT_SCHEMA);
  await decoder.prepare(values);
  const results: Result[] = [];
  let unreadable = 0;
  for (const v of values) {
    try {
      results.push(decoder.decode(v, { topic }));
    } catch {
      unreadable++;
    }
  }
  return { results, unreadable };
}

async function readDeadLetters(
  kafka: Kafka,
  topic: string,
): Promise<{ reasons: Record<string, number>; samples: string[] }> {
  const reasons: Record<string, number> = {};
  const samples: string[] = [];
  await readTopicToEnd(
    kafka,
    topic,
    (m) => {
      const reason = headerText(m.headers, DLQ_HEADERS.reason) ?? '(none)';
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (samples.length < 3) samples.push(`${reason}: ${headerText(m.headers, DLQ_HEADERS.message) ?? ''}`);
    },
    { timeoutMs: 60_000, groupPrefix: 'tapio-verify' },
  );
  return { reasons, samples };
}

/** Runs the file through a private pipeline and the replay; never throws for a difference. */
export async function runVerify(
  base: Readonly<TapioConfig>,
  options: VerifyOptions,
  io: VerifyIo,
): Promise<VerifyReport> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  let interrupted = false;
  void io.interrupted.then(() => (interrupted = true));

  // --- the replay: offline, same file, same order ---------------------------------------------
  const replayCorrelation = (options.replayConfig?.config ?? base).correlation;
  const replays = options.replayEngines.map((engine) => {
    const make = engineFactory(engine);
    const e = make(replayCorrelation);
    const results: Result[] = [];
    for (const event of options.events) for (const r of e.process(event)) results.push(r);
    return { engine, results, lateEvents: e.stats.lateEvents };
  });
  const [primary, second] = replays;
  if (primary === undefined) throw new Error('no replay engine');
  const enginesDisagree = second === undefined ? null : compareIncidents(primary.results, second.results);

  // --- the run's topics, groups and routing ------------------------------------------------------
  const runId = newRunId();
  const runEnv: Record<string, string> = {
    ...privateRunEnv(base, 'verify', runId),
    ...(options.partitions === undefined ? {} : { TAPIO_TOPICS__EVENTPARTITIONS: String(options.partitions) }),
  };
  const env = {
    ...io.env,
    ...(options.configFile === undefined ? {} : { TAPIO_CONFIG: options.configFile }),
    ...runEnv,
  };
  const config = loadConfig({ env });
  const topics = config.topics;
  const logDir = join(tmpdir(), `tapio-verify-${runId}`);
  mkdirSync(logDir, { recursive: true });
  const kafka = createKafka(config, undefined, '-verify');
  const admin = kafka.admin();
  await admin.connect();
  const services = new ServiceProcesses({ root: repoRoot(), env, logDir });
  const routing = verifyRouting(config, options.v2Percentage, options.categories);
  const check = (): void => {
    if (interrupted) throw new Incomplete('interrupted');
    const dead = services.ended();
    if (dead.length > 0) {
      const d = dead[0] as (typeof dead)[number];
      throw new Incomplete(
        `${d.name}#${d.instance} exited ${d.child.exitCode ?? d.child.signalCode}; see ${d.logFile}`,
      );
    }
    if (Date.now() > deadline) throw new Incomplete(`timed out after ${options.timeoutMs / 1000} s`);
  };
  const groupsOf: [string, string][] = [
    [config.groups.router, topics.events],
    [config.groups.v1, topics.eventsV1],
    [config.groups.v2, topics.eventsV2],
  ];
  let produced = 0;
  let produceSeconds = 0;
  let producedAt = Date.now();
  let incomplete: VerifyReport['incomplete'] = null;
  let lateEvents: Record<string, number> = {};
  let alignmentForced = 0;
  let written = routing;
  let found: { results: Result[]; unreadable: number } = { results: [], unreadable: 0 };
  let dead: { reasons: Record<string, number>; samples: string[] } = { reasons: {}, samples: [] };
  let drainSeconds = 0;
  try {
    try {
      await ensureTopics(admin, topicSpecs(config));
      written = await writeRouting(kafka, topics.control, routing);
      io.progress(
        `tapio verify: run ${runId}: topics verify.${runId}.*, ${options.routers} router(s), ` +
          `${options.v1Consumers} v1 and ${options.v2Consumers} v2 consumer(s), logs in ${logDir}`,
      );
      const sink = new EventSink(config, createKafka(config, undefined, '-verify-produce'), topics.events);
      await sink.open();
      try {
        const startAll = (name: string, n: number): Promise<unknown[]> =>
          Promise.all(Array.from({ length: n }, () => services.start(name))).catch((err: unknown) => {
            throw new Incomplete((err as Error).message);
          });
        const produce = async (): Promise<void> => {
          const t0 = performance.now();
          produced = await produceEvents(sink, options.events, options.backlog ? undefined : options.rate, check);
          produceSeconds = (performance.now() - t0) / 1000;
          producedAt = Date.now();
          io.progress(`tapio verify: produced ${produced} events in ${produceSeconds.toFixed(1)} s`);
        };
        // Correlators first and settled: a partition that moves between members mid-run loses its
        // window state (README, known limits), which is not what this check is about.
        await Promise.all([
          startAll('correlator-v1', options.v1Consumers),
          startAll('correlator-v2', options.v2Consumers),
        ]);
        await waitForGroups(
          admin,
          [
            [config.groups.v1, options.v1Consumers],
            [config.groups.v2, options.v2Consumers],
          ],
          check,
          deadline,
        );
        io.progress(`tapio verify: correlators up and settled (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        if (options.backlog) {
          await produce();
          await startAll('router', options.routers);
        } else {
          await startAll('router', options.routers);
          await waitForGroups(admin, [[config.groups.router, options.routers]], check, deadline);
          io.progress(`tapio verify: routers up and settled (${((Date.now() - started) / 1000).toFixed(1)} s)`);
          await produce();
        }
      } finally {
        await sink.close();
      }

      // Done: every group at the end of its topic, then no new result for quietMs.
      let lastResults = -1;
      let quietSince = Date.now();
      for (;;) {
        check();
        const pending = (await lags(admin, groupsOf)).filter((p) => p.lag > 0);
        const results = await topicSize(admin, topics.results);
        if (pending.length > 0 || results !== lastResults) {
          quietSince = Date.now();
          lastResults = results;
        } else if (Date.now() - quietSince >= options.quietMs) {
          break;
        }
        await sleep(500);
      }
      drainSeconds = (Date.now() - producedAt) / 1000;
      io.progress(`tapio verify: pipeline drained ${drainSeconds.toFixed(1)} s after the last event`);
    } catch (err) {
      if (!(err instanceof Incomplete)) throw err;
      const pending = (await lags(admin, groupsOf).catch(() => [])).filter((p) => p.lag > 0);
      incomplete = { reason: err.message, pending };
    } finally {
      lateEvents = await services.metric('tapio_late_events_total', 'engine');
      alignmentForced = sum(await services.metric('tapio_router_alignment_forced_total', ''));
      const bad = await services.stopAll();
      if (bad.length > 0) io.progress(`tapio verify: not stopped cleanly: ${bad.join(', ')}`);
    }
    found = await readResults(kafka, config.registry.url, topics.results);
    dead = await readDeadLetters(kafka, topics.dlq);
  } finally {
    if (!options.keep) {
      await admin.deleteTopics({ topics: topicSpecs(config).map((s) => s.topic) }).catch((err: unknown) => {
        io.progress(`tapio verify: could not delete the run's topics verify.${runId}.*: ${(err as Error).message}`);
      });
    }
    await admin.deleteGroups(groupsOf.map(([g]) => g)).catch(() => undefined);
    await admin.disconnect();
  }

  const comparison = compareIncidents(primary.results, found.results);
  const different = !comparison.equal || found.unreadable > 0 || (enginesDisagree !== null && !enginesDisagree.equal);
  const exitCode = incomplete !== null ? VERIFY_EXIT.incomplete : different ? VERIFY_EXIT.different : VERIFY_EXIT.equal;
  const keepLogs = options.keep || exitCode !== VERIFY_EXIT.equal;
  if (!keepLogs) rmSync(logDir, { recursive: true, force: true });
  const placement: Record<string, string> = {};
  for (const c of CATEGORIES) placement[c] = categoryPlacement(written, c);
  return {
    runId,
    input: options.input,
    events: options.events.length,
    topicPrefix: `verify.${runId}.`,
    setup: {
      routers: options.routers,
      v1Consumers: options.v1Consumers,
      v2Consumers: options.v2Consumers,
      eventPartitions: config.topics.eventPartitions,
      mode: options.backlog ? 'backlog' : 'live',
      ratePerSecond: options.backlog ? null : (options.rate ?? null),
      routing: { epoch: written.epoch, v2Percentage: written.v2Percentage, placement },
    },
    produced,
    produceSeconds,
    drainSeconds,
    incomplete,
    found: {
      records: found.results.length,
      v1: found.results.filter((r) => r.engine === 'v1').length,
      v2: found.results.filter((r) => r.engine === 'v2').length,
      unreadable: found.unreadable,
    },
    replay: {
      config: options.replayConfig?.file ?? null,
      allowedLatenessMs: replayCorrelation.allowedLatenessMs,
      runs: replays.map((r) => ({ engine: r.engine, results: r.results.length, lateEvents: r.lateEvents })),
      enginesDisagree,
    },
    pipeline: {
      allowedLatenessMs: config.correlation.allowedLatenessMs,
      lateEvents,
      alignmentForced,
      deadLettered: dead.reasons,
      deadLetterSamples: dead.samples,
    },
    comparison,
    logDir: keepLogs ? logDir : null,
    exitCode,
  };
}

// --- the printed report ---------------------------------------------------------------------------

const RULE_ORDER = new Map(RULES.map((r, i) => [r.id, i]));

function describeDifference(d: IncidentDifference): string {
  const at = `${new Date(d.triggeredAt).toISOString()} (${d.triggeredAt})`;
  const severity =
    d.kind === 'differing'
      ? `severity ${d.expectedSeverity} in the replay, ${d.foundSeverity} in the pipeline`
      : `severity ${d.kind === 'missing' ? d.expectedSeverity : d.foundSeverity}`;
  const trigger = `${d.kind === 'missing' ? 'replay' : 'pipeline'} trigger ${d.triggerEventId}`;
  return `  ${d.kind.padEnd(9)} ${d.ruleId} ${d.entityKey} at ${at}, ${severity}, ${trigger}`;
}

function table(c: IncidentComparison): string[] {
  const head = ['rule', 'expected', 'found', 'missing', 'extra', 'differing', 'duplicates'];
  const rows = [...c.rules]
    .sort((a, b) => (RULE_ORDER.get(a.ruleId) ?? 99) - (RULE_ORDER.get(b.ruleId) ?? 99))
    .map((t) => [t.ruleId, t.expected, t.found, t.missing, t.extra, t.differing, t.duplicates].map(String));
  const t = c.total;
  rows.push([t.ruleId, t.expected, t.found, t.missing, t.extra, t.differing, t.duplicates].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join('  ');
  return [line(head), ...rows.map(line)];
}

/** The report as text: setup, what was produced and found, the per-rule table, the verdict. */
export function formatVerifyReport(r: VerifyReport, show: number): string {
  const s = r.setup;
  const out: string[] = [];
  out.push(`input      ${r.input}: ${r.events} events`);
  out.push(
    `pipeline   ${s.routers} router(s), ${s.v1Consumers} v1 and ${s.v2Consumers} v2 consumer(s), ` +
      `${s.eventPartitions} event partitions, ${s.mode}` +
      (s.mode === 'live'
        ? s.ratePerSecond === null
          ? ', as fast as possible'
          : `, ${s.ratePerSecond} events/s`
        : '') +
      `; topics ${r.topicPrefix}*`,
  );
  out.push(`routing    epoch ${s.routing.epoch}, breaker disabled, shadow off`);
  for (const [category, where] of Object.entries(s.routing.placement)) out.push(`  ${category.padEnd(12)} ${where}`);
  out.push(
    `produced   ${r.produced} events in ${r.produceSeconds.toFixed(1)} s` +
      (r.incomplete === null ? `; drained ${r.drainSeconds.toFixed(1)} s after the last one` : ''),
  );
  const f = r.found;
  out.push(
    `found      ${f.records} result records (v1 ${f.v1}, v2 ${f.v2}), ${r.comparison.total.duplicates} redeliveries collapsed` +
      (f.unreadable > 0 ? `, ${f.unreadable} UNREADABLE` : ''),
  );
  const late = Object.entries(r.pipeline.lateEvents)
    .map(([engine, n]) => `${engine} ${n}`)
    .join(', ');
  const replayLate = r.replay.runs.map((x) => `${x.engine} ${x.lateEvents}`).join(', ');
  out.push(
    `           late (event, rule, key) ignored: ${late === '' ? 'none' : late} (replay: ${replayLate}); ` +
      `router alignment forced: ${r.pipeline.alignmentForced}`,
  );
  const dl = Object.entries(r.pipeline.deadLettered);
  if (dl.length > 0) {
    out.push(`           dead-lettered: ${dl.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const sample of r.pipeline.deadLetterSamples) out.push(`             ${sample}`);
  }
  const rep = r.replay;
  out.push(
    `replay     ${rep.runs.map((x) => `${x.engine} ${x.results} results`).join(', ')}` +
      (rep.config === null ? '' : `; config ${rep.config}`) +
      (rep.allowedLatenessMs !== r.pipeline.allowedLatenessMs
        ? ` (allowed lateness ${rep.allowedLatenessMs} ms, the pipeline's ${r.pipeline.allowedLatenessMs} ms)`
        : '') +
      (rep.enginesDisagree === null
        ? ''
        : rep.enginesDisagree.equal
          ? ': the engines agree'
          : ': THE ENGINES DISAGREE'),
  );
  out.push('');
  out.push(...table(r.comparison));
  out.push('');
  const t = r.comparison.total;
  if (t.otherTrigger > 0) {
    out.push(`${t.otherTrigger} matched incident(s) fired on another event of the same timestamp (allowed)`);
  }
  if (rep.enginesDisagree !== null && !rep.enginesDisagree.equal) {
    const d = rep.enginesDisagree;
    out.push(
      `the replay's engines disagree (v1 as expected, v2 as found): ${d.total.missing} missing, ${d.total.extra} extra, ${d.total.differing} differing`,
    );
    for (const x of d.differences.slice(0, show)) out.push(describeDifference(x));
  }
  if (r.incomplete !== null) {
    out.push(`INCOMPLETE: ${r.incomplete.reason}`);
    for (const p of r.incomplete.pending)
      out.push(`  pending: group ${p.group} is ${p.lag} records behind on ${p.topic}`);
    if (r.incomplete.pending.length === 0)
      out.push('  no group was behind: it ended while waiting for results to stop coming');
    out.push('  the table compares what reached the results topic until then');
  }
  const diffs = r.comparison.differences;
  if (diffs.length > 0) {
    out.push(
      (r.incomplete === null ? "DIFFERENT: the pipeline's results are not the replay's: " : 'differences so far: ') +
        `${t.missing} missing, ${t.extra} extra, ${t.differing} differing` +
        (diffs.length > show ? ` (the first ${show} of ${diffs.length})` : ''),
    );
    for (const d of diffs.slice(0, show)) out.push(describeDifference(d));
  } else if (r.exitCode === VERIFY_EXIT.equal) {
    out.push("OK: the pipeline's results equal the replay of the same file, incident for incident");
  }
  if (r.logDir !== null) out.push(`service logs: ${r.logDir}`);
  return out.join('\n');
}
