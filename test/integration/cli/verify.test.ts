/**
 * `tapio verify` against the real stack: a generated corpus through a private pipeline (routers and
 * correlators as processes) must equal the replay, on 6 event partitions (a node's events come from
 * many of them: the router's event-time order is what makes this hold); a replay under another config
 * must be reported as a difference; an invalid file stops before anything is created. Several routers
 * are not covered: they order only their own partitions (README, known limits).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventToJsonLine } from '@tapio/events';
import type { Event } from '@tapio/events';
import { generateStream } from '@tapio/scenarios';
import { runTapio } from '../../helpers/cli';
import { admin } from '../../helpers/stack';

interface Report {
  runId: string;
  exitCode: number;
  incomplete: unknown;
  found: { records: number; v1: number; v2: number; unreadable: number };
  replay: { runs: { engine: string; results: number }[]; enginesDisagree: { equal: boolean } | null };
  comparison: {
    equal: boolean;
    total: { expected: number; found: number; missing: number; extra: number; differing: number; duplicates: number };
    differences: unknown[];
  };
}

const dir = mkdtempSync(join(tmpdir(), 'tapio-verify-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const durationMs = 3_600_000;
// Event time ends an hour ago: in the past, as the router requires (correlation.maxFutureSkewMs).
const stream = generateStream({
  seed: 7,
  startMs: Date.now() - 2 * durationMs,
  scenarios: 'all',
  incidentsPerScenario: 2,
  noiseEvents: 1500,
  durationMs,
  // Producers' skew within the guarantee's slack (router.reorderSlackMs, 2 s).
  outOfOrderMs: 1_500,
});

function writeEvents(name: string, events: readonly Event[], extra: string[] = []): string {
  const file = join(dir, name);
  writeFileSync(file, [...events.map(eventToJsonLine), ...extra].join('\n') + '\n');
  return file;
}

const corpus = writeEvents('corpus.jsonl', stream.events);
const SMALL = ['--partitions', '6', '--routers', '1', '--v1-consumers', '1', '--v2-consumers', '1'];

async function verifyJson(args: string[]): Promise<{ code: number; report: Report; stderr: string }> {
  const run = await runTapio(['verify', ...SMALL, ...args, '--json']);
  assert.ok(run.stdout.length > 0, `no report; stderr: ${run.stderr}`);
  return { code: run.code, report: JSON.parse(run.stdout) as Report, stderr: run.stderr };
}

function assertClean(r: Report): void {
  assert.equal(r.incomplete, null);
  assert.equal(r.comparison.equal, true, JSON.stringify(r.comparison.differences.slice(0, 5)));
  assert.deepEqual([r.comparison.total.missing, r.comparison.total.extra, r.comparison.total.differing], [0, 0, 0]);
  // Not vacuous: every detection the generator planted is expected, and found.
  assert.equal(r.comparison.total.expected, stream.expected.length);
  assert.equal(r.comparison.total.found, stream.expected.length);
  assert.equal(r.replay.enginesDisagree?.equal, true);
  assert.equal(r.found.unreadable, 0);
}

test('tapio verify: every key on V1 (V2 share 0 %), the pipeline equals the replay, exit 0', async () => {
  const { code, report, stderr } = await verifyJson([
    '--input',
    corpus,
    '--v2-percentage',
    '0',
    '--category',
    'resource=v1',
  ]);
  assertClean(report);
  assert.equal(report.found.v2, 0, 'the run routed nothing to V2');
  assert.equal(code, 0, stderr);
});

test('tapio verify: every key on V2 (100 %), the pipeline equals the replay, exit 0 and a clean table', async (t) => {
  const run = await runTapio(['verify', ...SMALL, '--input', corpus, '--v2-percentage', '100']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const n = stream.expected.length;
  assert.match(run.stdout, new RegExp(`found +${n} result records \\(v1 0, v2 ${n}\\)`));
  assert.match(run.stdout, /replay +v1 \d+ results, v2 \d+ results: the engines agree/);
  assert.match(run.stdout, new RegExp(`^total +${n} +${n} +0 +0 +0 +\\d+$`, 'm'));
  assert.match(run.stdout, /^crash-loop +\d+ +\d+ +0 +0 +0 +\d+$/m);
  assert.match(run.stdout, /OK: the pipeline's results equal the replay of the same file, incident for incident/);
  const runId = /run (\S+): topics verify\./.exec(run.stderr)?.[1];
  assert.ok(runId, run.stderr);
  const a = await admin(t);
  const left = (await a.listTopics()).filter((name) => name.startsWith(`verify.${runId}.`));
  assert.deepEqual(left, [], "the run's topics are deleted without --keep");
});

test('tapio verify: half on V2, network pinned to V2, three V2 consumers: equal to the replay', async () => {
  const { code, report, stderr } = await verifyJson([
    '--input',
    corpus,
    '--v2-percentage',
    '50',
    '--category',
    'network=v2',
    '--v2-consumers',
    '3',
  ]);
  assertClean(report);
  assert.ok(report.found.v1 > 0 && report.found.v2 > 0, 'both engines found incidents');
  assert.equal(code, 0, stderr);
});

test('tapio verify: a backlog (produced first, services started after) equals the replay', async () => {
  const { code, report, stderr } = await verifyJson(['--input', corpus, '--v2-percentage', '50', '--backlog']);
  assertClean(report);
  assert.equal(code, 0, stderr);
});

test('tapio verify: an incident the pipeline cannot see is reported: exit 1, named', async () => {
  // A disk at 92 % stamped two days ahead of the clock: the router dead-letters it
  // (correlation.maxFutureSkewMs, one day), the replay has no clock and fires on it.
  const node = 'verify-future-node';
  const future = Date.now() + 2 * 86_400_000;
  const disk = JSON.stringify({
    id: 'future-disk',
    timestamp: future,
    source: 'metrics',
    type: 'disk.usage',
    severity: 'info',
    entity: { kind: 'node', name: node },
    attributes: { usage_ratio: 0.92, inode_ratio: 0.1 },
  });
  const file = writeEvents('future.jsonl', stream.events, [disk]);

  const run = await runTapio(['verify', ...SMALL, '--input', file]);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  // A run that is not clean keeps its service logs for the operator; this one was meant to differ.
  const logs = /^service logs: (.+)$/m.exec(run.stdout)?.[1];
  if (logs !== undefined) rmSync(logs, { recursive: true, force: true });
  assert.match(run.stdout, /^disk-pressure +\d+ +\d+ +1 +0 +0 +\d+$/m);
  assert.match(run.stdout, /DIFFERENT: the pipeline's results are not the replay's: 1 missing, 0 extra, 0 differing/);
  assert.match(
    run.stdout,
    new RegExp(
      `missing +disk-pressure node/${node} at ${new Date(future).toISOString()} \\(${future}\\), severity high, replay trigger future-disk`,
    ),
  );
});

test('tapio verify: an invalid file stops with line and field, exit 2, nothing created or produced', async (t) => {
  const lines = stream.events.slice(0, 10).map(eventToJsonLine);
  lines.splice(6, 0, JSON.stringify({ id: 'bad', timestamp: 1, type: 'pod.restart', entity: { name: 'x' } }));
  const file = join(dir, 'invalid.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  const a = await admin(t);
  const before = new Set((await a.listTopics()).filter((name) => name.startsWith('verify.')));

  const run = await runTapio(['verify', ...SMALL, '--input', file]);
  assert.equal(run.code, 2);
  assert.match(
    run.stderr,
    /INVALID_EVENT: missing required field entity\.kind \(file .*invalid\.jsonl, line 7, field entity\.kind\)/,
  );
  assert.match(run.stderr, /nothing produced/);
  assert.equal(run.stdout, '');
  const created = (await a.listTopics()).filter((name) => name.startsWith('verify.') && !before.has(name));
  assert.deepEqual(created, []);

  const missing = await runTapio(['verify', '--input', join(dir, 'no-such-file.jsonl')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read .*no-such-file\.jsonl/);
});
