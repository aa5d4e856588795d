/**
 * The benchmarks' short forms, so CI runs them (their speed targets are reported, never asserted:
 * BENCHMARKS.md). What is checked is that they run to the end on the real stack and that the engines
 * agree: V1 and V2 find the same detections, equal to the generated stream's expectations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths';

function runBench(script: string, args: string[]): string {
  const root = repoRoot();
  const run = spawnSync(process.execPath, [join(root, 'bench', 'dist', script), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, CI: 'true' },
  });
  assert.equal(run.status, 0, `${script} ${args.join(' ')} exited ${run.status}:\n${run.stdout}\n${run.stderr}`);
  return run.stdout;
}

interface Target {
  name: string;
  pass: boolean;
  detail: string;
}

test('bench:engines --quick runs; V1 and V2 agree offline', () => {
  runBench('engine.js', ['--quick']);
  const report = JSON.parse(readFileSync(join(repoRoot(), 'bench', 'results', 'engine-quick.json'), 'utf8')) as {
    results: { v1: number; v2: number };
    stream: { expectedDetections: number };
    eventsPerSecond: { decodeOnly: number; v1: number; v2: number };
  };
  assert.equal(report.results.v1, report.stream.expectedDetections);
  assert.equal(report.results.v2, report.stream.expectedDetections);
  for (const [path, rate] of Object.entries(report.eventsPerSecond)) {
    if (typeof rate === 'number') assert.ok(rate > 0, `${path} measured`);
  }
});

test("bench:quick --via-router runs through the broker; V1 and V2 find the stream's detections", () => {
  runBench('e2e.js', ['--quick', '--via-router']);
  const report = JSON.parse(readFileSync(join(repoRoot(), 'bench', 'results', 'e2e-quick.json'), 'utf8')) as {
    targets: Target[];
    identicalResults: { same: boolean; v1: number; v2: number };
    stream: { expectedDetections: number };
    latency?: unknown;
  };
  const identical = report.targets.find((t) => t.name === 'V1 and V2 results identical');
  assert.ok(identical?.pass, `results identical: ${identical?.detail ?? 'missing'}`);
  assert.equal(report.identicalResults.v1, report.stream.expectedDetections, 'V1 found every expected detection');
  assert.ok(report.latency !== undefined, 'the latency phase ran');
});
