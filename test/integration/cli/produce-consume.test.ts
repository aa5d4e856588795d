import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseEventLine } from '@tapio/events';
import { repoPath } from '../../helpers/paths';
import { admin, randomName, tempTopic } from '../../helpers/stack';
import { runTapio } from '../../helpers/cli';

const run = promisify(execFile);

const tapio = (args: string[]) => runTapio(args);

function eventLine(i: number): string {
  return JSON.stringify({
    id: `rt-${i}`,
    timestamp: 1_700_000_000_000 + i * 1000,
    source: 'kubernetes',
    type: 'pod.restart',
    severity: 'warning',
    entity: { namespace: 'shop', kind: 'pod', name: `web-${i % 4}`, node: 'node-1' },
    attributes: { restart_count: i, exit_code: 137 },
  });
}

test('tapio produce then tapio consume returns exactly what was produced; invalid lines reported by number', async (t) => {
  const topic = await tempTopic(t, 'cli-rt', 3);
  const dir = mkdtempSync(join(tmpdir(), 'tapio-cli-'));
  const file = join(dir, 'events.jsonl');
  const lines = Array.from({ length: 25 }, (_, i) => eventLine(i));
  lines.splice(5, 0, '{"id":"broken","type":"pod.restart","entity":{"kind":"pod","name":"x"}}'); // line 6: no timestamp
  lines.splice(12, 0, 'this is not json'); // line 13
  writeFileSync(file, lines.join('\n') + '\n');

  const strict = await tapio(['produce', file, '--topic', topic, '--no-progress']);
  assert.equal(strict.code, 1);
  assert.match(
    strict.stderr,
    /INVALID_EVENT: missing required field timestamp \(file .*events\.jsonl, line 6, field timestamp\)/,
  );
  assert.match(strict.stderr, /produced 5 events before the error/);

  const produced = await tapio([
    'produce',
    file,
    '--topic',
    topic,
    '--skip-invalid',
    '--batch-size',
    '7',
    '--no-progress',
  ]);
  assert.equal(produced.code, 0, produced.stderr);
  assert.match(produced.stderr, /line 6, field timestamp/);
  assert.match(produced.stderr, /INVALID_JSON: .*line 13/);
  assert.match(produced.stderr, /25 events to .* 2 invalid lines skipped/);

  const consumed = await tapio(['consume', topic, '--from-beginning', '--meta']);
  assert.equal(consumed.code, 0, consumed.stderr);
  const records = consumed.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { key: string; value: unknown });
  assert.equal(records.length, 30, 'the 5 from the strict run plus the 25 from the second');
  const expected = new Map(Array.from({ length: 25 }, (_, i) => [`rt-${i}`, parseEventLine(eventLine(i))]));
  for (const r of records) {
    const event = parseEventLine(JSON.stringify(r.value));
    assert.deepEqual(event, expected.get(event.id));
    assert.equal(r.key, `pod/shop/${event.entity.name}`);
  }
  assert.deepEqual(new Set(records.map((r) => (r.value as { id: string }).id)), new Set(expected.keys()));

  const limited = await tapio(['consume', topic, '--from-beginning', '--max', '3']);
  assert.equal(limited.stdout.trim().split('\n').length, 3);
});

test('tapio rejects a bad config with the key named, and bad flags with usage', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapio-cli-'));
  const config = join(dir, 'bad.yaml');
  writeFileSync(config, 'topics:\n  eventPartitions: -1\n');
  const bad = await tapio(['--config', config, 'topics', 'ensure']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /INVALID_CONFIG: .*topics\.eventPartitions = -1/);
  const usage = await tapio(['produce', '--batch-size', 'zero']);
  assert.notEqual(usage.code, 0);
  assert.match(usage.stderr, /--batch-size must be a positive integer/);
});

test('the installed tapio binary ensures topics idempotently', async (t) => {
  const prefix = randomName('bin');
  const env = {
    ...process.env,
    TAPIO_TOPICS__EVENTS: `${prefix}.events`,
    TAPIO_TOPICS__EVENTS_V1: `${prefix}.events.v1`,
  };
  // The two overrides above use keys that do not exist (EVENTS_V1): the binary must refuse them.
  const refused = await run(repoPath('node_modules/.bin/tapio'), ['topics', 'ensure'], { env }).catch(
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal((refused as { code: number }).code, 1);
  assert.match((refused as { stderr: string }).stderr, /unknown config key topics\.events_v1/);

  const names = [
    'events',
    'eventsV1',
    'eventsV2',
    'eventsV2Shadow',
    'results',
    'resultsShadow',
    'resultsDeduped',
    'control',
    'health',
    'dlq',
  ];
  const goodEnv: Record<string, string | undefined> = { ...process.env, TAPIO_TOPICS__EVENTPARTITIONS: '2' };
  for (const n of names) goodEnv[`TAPIO_TOPICS__${n.toUpperCase()}`] = `${prefix}.${n}`;
  t.after(async () => {
    const a = await admin(t);
    await a.deleteTopics({ topics: names.map((n) => `${prefix}.${n}`) }).catch(() => undefined);
  });
  const first = await run(repoPath('node_modules/.bin/tapio'), ['topics', 'ensure'], { env: goodEnv });
  assert.equal(first.stdout.match(/^created/gm)?.length, 10, first.stdout);
  const second = await run(repoPath('node_modules/.bin/tapio'), ['topics', 'ensure'], { env: goodEnv });
  assert.equal(second.stdout.match(/^exists/gm)?.length, 10, second.stdout);
});
