import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventToJsonLine } from '@tapio/events';
import { RULES } from '@tapio/rules';
import { generateStream } from '@tapio/scenarios';
import { runTapio } from '../../helpers/cli';
import { withRedeliveries } from '../../helpers/redeliver';

const tapio = (args: string[]) => runTapio(args, {});

const dir = mkdtempSync(join(tmpdir(), 'tapio-replay-'));

test('tapio replay over every scenario mixed with noise detects exactly the expected set, byte-identically', async () => {
  const stream = generateStream({
    seed: 7,
    startMs: 1_767_225_600_000,
    scenarios: 'all',
    incidentsPerScenario: 2,
    noiseEvents: 20_000,
    outOfOrderMs: 30_000,
    lateShare: 0.01,
  });
  const input = join(dir, 'events.jsonl');
  writeFileSync(input, stream.events.map(eventToJsonLine).join('\n') + '\n');

  const first = await tapio(['replay', '--engine', 'v1', '--input', input, '--output', join(dir, 'r1.jsonl')]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /engine v1, \d+ events, \d+ results/);
  const second = await tapio(['replay', '--input', input]);
  assert.equal(second.code, 0, second.stderr);
  const text = readFileSync(join(dir, 'r1.jsonl'), 'utf8');
  assert.equal(second.stdout, text, 'same input, byte-identical output');

  const results = text
    .trim()
    .split('\n')
    .map(
      (l) =>
        JSON.parse(l) as {
          ruleId: string;
          entityKey: string;
          triggerEventId: string;
          severity: string;
          engine: string;
        },
    );
  const key = (d: { ruleId: string; entityKey: string; triggerEventId: string; severity: string }): string =>
    `${d.ruleId}|${d.entityKey}|${d.triggerEventId}|${d.severity}`;
  assert.ok(stream.expected.length >= RULES.length * 2, `every rule has incidents (${stream.expected.length})`);
  assert.deepEqual(results.map(key).sort(), stream.expected.map(key).sort());
  assert.ok(results.every((r) => r.engine === 'v1'));

  const v2 = await tapio(['replay', '--engine', 'v2', '--input', input]);
  assert.equal(v2.code, 0, v2.stderr);
  assert.equal(v2.stdout, text.replaceAll('"engine":"v1"', '"engine":"v2"'), 'V2 replays to the same results');
  // Fields in the contract's order.
  assert.ok(text.startsWith('{"id":"'), text.slice(0, 40));
  assert.deepEqual(Object.keys(JSON.parse(text.split('\n')[0]!) as object), [
    'id',
    'ruleId',
    'category',
    'entityKey',
    'triggeredAt',
    'triggerEventId',
    'severity',
    'confidence',
    'evidence',
    'engine',
  ]);
});

test('tapio replay of a file with lines repeated 1-4 lines later (redeliveries) prints what it prints without them', async () => {
  const stream = generateStream({
    seed: 8,
    startMs: 1_767_225_600_000,
    scenarios: 'all',
    incidentsPerScenario: 2,
    noiseEvents: 20_000,
    outOfOrderMs: 30_000,
    lateShare: 0.01,
  });
  const once = join(dir, 'once.jsonl');
  writeFileSync(once, stream.events.map(eventToJsonLine).join('\n') + '\n');
  const { events, redelivered } = withRedeliveries(stream.events, 8);
  assert.ok(redelivered > 500, `${redelivered} lines repeated`);
  const twice = join(dir, 'twice.jsonl');
  writeFileSync(twice, events.map(eventToJsonLine).join('\n') + '\n');
  for (const engine of ['v1', 'v2']) {
    const a = await tapio(['replay', '--engine', engine, '--input', once]);
    assert.equal(a.code, 0, a.stderr);
    const b = await tapio(['replay', '--engine', engine, '--input', twice]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, new RegExp(`engine ${engine}, ${events.length} events, ${stream.expected.length} results`));
    assert.equal(b.stdout, a.stdout, `${engine}: the same results, byte for byte`);
  }
});

test('tapio replay names the line and field of invalid input, or skips it when asked', async () => {
  const input = join(dir, 'bad.jsonl');
  writeFileSync(
    input,
    '{"id":"a","timestamp":1,"type":"pod.restart","entity":{"kind":"pod","name":"p"}}\n{"id":"b","type":"x"}\n',
  );
  const strict = await tapio(['replay', '--input', input]);
  assert.equal(strict.code, 1);
  assert.match(
    strict.stderr,
    /INVALID_EVENT: missing required field timestamp \(file .*bad\.jsonl, line 2, field timestamp\)/,
  );
  const lenient = await tapio(['replay', '--input', input, '--skip-invalid']);
  assert.equal(lenient.code, 0);
  assert.match(lenient.stderr, /skipped: INVALID_EVENT/);
  assert.match(lenient.stderr, /1 events, 0 results/);
  const unknown = await tapio(['replay', '--input', input, '--engine', 'v9']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /NOT_SUPPORTED: unknown engine 'v9'/);
});

test('tapio migrate test-rule runs each rule through every engine and agrees with its scenarios', async () => {
  for (const rule of RULES) {
    const r = await tapio(['migrate', 'test-rule', rule.id]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`${rule.id}:incident: \\d+ events\\n  v1: ${rule.id} .*\\n  v2: ${rule.id} `));
    assert.match(r.stdout, new RegExp(`${rule.id}: all engines agree and match every scenario`));
  }
  const unknown = await tapio(['migrate', 'test-rule', 'no-such-rule']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown rule 'no-such-rule'/);
});

test('tapio migrate test-rule --input reports what each engine found in the given events', async () => {
  const input = join(dir, 'crash.jsonl');
  const restarts = [0, 20, 40].map((s, i) =>
    JSON.stringify({
      id: `r${i}`,
      timestamp: 1_767_225_600_000 + s * 1000,
      type: 'pod.restart',
      entity: { kind: 'pod', name: 'web', namespace: 'shop' },
    }),
  );
  writeFileSync(input, restarts.join('\n') + '\n');
  const r = await tapio(['migrate', 'test-rule', 'crash-loop', '--input', input]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /v1: crash-loop pod\/shop\/web r2 critical/);
});

test('tapio compare runs the same records through both engines and finds no mismatch', async () => {
  const r = await tapio(['compare', '--scenario', 'crash-loop,disk-pressure', '--events', '3000', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as {
    events: number;
    runs: { engine: string; results: number; eventsPerSecond: number; p99Us: number }[];
    mismatches: { matched: number; missing: number; extra: number; differing: number };
  };
  assert.deepEqual(
    report.runs.map((x) => x.engine),
    ['v1', 'v2'],
  );
  assert.ok(report.mismatches.matched > 0);
  assert.equal(report.mismatches.missing + report.mismatches.extra + report.mismatches.differing, 0);
  assert.equal(report.runs[0]!.results, report.runs[1]!.results);
  const table = await tapio(['compare', '--scenario', 'crash-loop', '--events', '100']);
  assert.match(table.stdout, /engine +events\/s +p50 us +p99 us/);
  assert.match(table.stdout, /V2\/V1 throughput: \d+\.\d\dx/);
  const neither = await tapio(['compare']);
  assert.equal(neither.code, 2);
  assert.match(neither.stderr, /exactly one of --input or --scenario/);
});
