/**
 * Offline evaluation, no Kafka: `tapio replay` and `tapio migrate test-rule`. Events are read in
 * order and evaluated as the routed pipeline would (scope keys derived by `routesFor`).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { TapioError } from '@tapio/errors';
import { readEventLines, resultToJsonLine } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import { V2Engine } from '@tapio/engine-v2';
import { RULES_BY_ID } from '@tapio/rules';
import { generateScenario, listScenarios } from '@tapio/scenarios';
import type { ExpectedDetection } from '@tapio/scenarios';

export interface OfflineEngine {
  process(event: Event): Result[];
  /** (event, rule, key) triples ignored as late, as the services count them. */
  readonly stats: { readonly lateEvents: number };
}

export interface EngineOptions {
  allowedLatenessMs: number;
  ruleTimeoutMs: number;
}

/** The engines this build can run offline, by name. */
export const ENGINES: Record<string, ((o: EngineOptions) => OfflineEngine) | undefined> = {
  v1: (o) => new V1Engine(o),
  v2: (o) => new V2Engine(o),
};

export function engineFactory(name: string): (o: EngineOptions) => OfflineEngine {
  const factory = ENGINES[name];
  if (factory === undefined) {
    if (name in ENGINES) {
      throw new TapioError('NOT_SUPPORTED', `engine ${name} is not available in this build yet; use --engine v1`);
    }
    throw new TapioError('NOT_SUPPORTED', `unknown engine '${name}' (known: ${Object.keys(ENGINES).join(', ')})`);
  }
  return factory;
}

export async function readEvents(
  file: string | undefined,
  skipInvalid: boolean,
  stderr: NodeJS.WritableStream,
): Promise<Event[]> {
  const input = file === undefined || file === '-' ? process.stdin : createReadStream(file);
  const events: Event[] = [];
  for await (const { event } of readEventLines(input, {
    skipInvalid,
    file: file ?? 'stdin',
    onInvalid: (err) => stderr.write(`tapio: skipped: ${err.code}: ${err.message}\n`),
  })) {
    events.push(event);
  }
  return events;
}

export interface ReplaySummary {
  events: number;
  results: number;
  seconds: number;
}

export async function replayToLines(
  engine: OfflineEngine,
  events: readonly Event[],
  out: NodeJS.WritableStream,
): Promise<ReplaySummary> {
  const started = process.hrtime.bigint();
  let results = 0;
  for (const event of events) {
    for (const r of engine.process(event)) {
      results++;
      if (!out.write(resultToJsonLine(r) + '\n')) await once(out, 'drain');
    }
  }
  return { events: events.length, results, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

export async function writeTo(
  file: string | undefined,
  stdout: NodeJS.WritableStream,
  fn: (out: NodeJS.WritableStream) => Promise<ReplaySummary>,
): Promise<ReplaySummary> {
  if (file === undefined || file === '-') return fn(stdout);
  const out = createWriteStream(file);
  const summary = await fn(out);
  out.end();
  await once(out, 'finish');
  return summary;
}

interface Detection {
  ruleId: string;
  entityKey: string;
  triggerEventId: string;
  severity: string;
}

const detectionKey = (d: Detection): string => `${d.ruleId} ${d.entityKey} ${d.triggerEventId} ${d.severity}`;

export interface TestRuleReport {
  ok: boolean;
  lines: string[];
}

/**
 * `tapio migrate test-rule`: the rule's own scenarios (or the given events) through every available
 * engine; prints what each detected and every difference (between engines, and from the scenario's
 * expectation).
 */
export function testRule(ruleId: string, options: EngineOptions, events?: readonly Event[]): TestRuleReport {
  if (RULES_BY_ID.get(ruleId) === undefined) {
    throw new TapioError('NOT_SUPPORTED', `unknown rule '${ruleId}' (known: ${[...RULES_BY_ID.keys()].join(', ')})`);
  }
  const engines = Object.entries(ENGINES).filter(
    (e): e is [string, (o: EngineOptions) => OfflineEngine] => e[1] !== undefined,
  );
  const cases: { name: string; events: readonly Event[]; expected?: ExpectedDetection[] }[] =
    events !== undefined
      ? [{ name: 'input', events }]
      : listScenarios()
          .filter((s) => s.ruleId === ruleId)
          .map((s) => {
            const g = generateScenario(s.name, { seed: 1, startMs: 1_767_225_600_000 });
            return { name: s.name, events: g.events, expected: g.expected };
          });
  const lines: string[] = [];
  let ok = true;
  const unavailable = Object.entries(ENGINES)
    .filter(([, f]) => f === undefined)
    .map(([n]) => n);
  if (unavailable.length > 0) lines.push(`engines not available in this build: ${unavailable.join(', ')}`);
  for (const c of cases) {
    const perEngine = engines.map(([name, make]) => {
      const engine = make(options);
      const found: Detection[] = [];
      for (const e of c.events) for (const r of engine.process(e)) if (r.ruleId === ruleId) found.push(r);
      return { name, found: new Set(found.map(detectionKey)) };
    });
    lines.push(`${c.name}: ${c.events.length} events`);
    for (const { name, found } of perEngine) {
      lines.push(`  ${name}: ${found.size === 0 ? 'no detection' : [...found].join('; ')}`);
    }
    if (c.expected !== undefined) {
      const want = new Set(c.expected.map(detectionKey));
      for (const { name, found } of perEngine) {
        const missing = [...want].filter((k) => !found.has(k));
        const extra = [...found].filter((k) => !want.has(k));
        if (missing.length + extra.length > 0) {
          ok = false;
          for (const m of missing) lines.push(`  DIFF ${name} missed expected: ${m}`);
          for (const x of extra) lines.push(`  DIFF ${name} detected unexpected: ${x}`);
        }
      }
    }
    const [first, ...rest] = perEngine;
    for (const other of rest) {
      if (first === undefined) break;
      const onlyFirst = [...first.found].filter((k) => !other.found.has(k));
      const onlyOther = [...other.found].filter((k) => !first.found.has(k));
      if (onlyFirst.length + onlyOther.length > 0) {
        ok = false;
        for (const k of onlyFirst) lines.push(`  DIFF only ${first.name}: ${k}`);
        for (const k of onlyOther) lines.push(`  DIFF only ${other.name}: ${k}`);
      }
    }
  }
  lines.push(
    ok
      ? `${ruleId}: all engines agree${events === undefined ? ' and match every scenario' : ''}`
      : `${ruleId}: DIFFERENCES FOUND`,
  );
  return { ok, lines };
}
