import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event } from '@tapio/events';
import { ALLOWED_LATENESS_MS, generateStream, listScenarios } from '@tapio/scenarios';
import type { ExpectedDetection } from '@tapio/scenarios';
import { runChecks } from './rule-checks';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
const isNoise = (e: Event) => e.id.startsWith('noise-');
const fingerprint = (
  d: ExpectedDetection | { ruleId: string; entityKey: string; severity: string; triggerEventId: string },
) => `${d.ruleId}|${d.entityKey}|${d.severity}|${d.triggerEventId}`;

/** For each event: how much newer the newest event delivered before it is. */
function lags(events: readonly Event[]): number[] {
  let newest = Number.NEGATIVE_INFINITY;
  return events.map((e) => {
    const lag = Math.max(0, newest - e.timestamp);
    newest = Math.max(newest, e.timestamp);
    return lag;
  });
}

const stream = generateStream({
  seed: 31,
  startMs: START_MS,
  scenarios: 'all',
  incidentsPerScenario: 2,
  noiseEvents: 20_000,
  outOfOrderMs: 5_000,
  lateShare: 0.02,
});

test('expected is the union of the incidents and equals what the rules see in delivery order', () => {
  const incidents = listScenarios().filter((s) => s.kind === 'incident').length;
  assert.equal(stream.expected.length, incidents * 2);
  const ids = new Set(stream.events.map((e) => e.id));
  for (const d of stream.expected) assert.ok(ids.has(d.triggerEventId), d.triggerEventId);
  const fired = runChecks(stream.events).map(fingerprint).sort();
  assert.deepEqual(fired, stream.expected.map(fingerprint).sort());
  assert.equal(new Set(stream.expected.map((d) => d.entityKey)).size, stream.expected.length);
});

test('event ids are unique and every scenario instance is present', () => {
  assert.equal(new Set(stream.events.map((e) => e.id)).size, stream.events.length);
  assert.equal(stream.events.filter(isNoise).length, 20_000);
  const prefixes = new Set(stream.events.filter((e) => !isNoise(e)).map((e) => e.id.replace(/-\d+$/, '')));
  assert.equal(prefixes.size, listScenarios().length * 2);
});

test('scenario events are delivered in timestamp order, after every older event', () => {
  const lag = lags(stream.events);
  stream.events.forEach((e, i) => {
    if (!isNoise(e)) assert.equal(lag[i], 0, e.id);
  });
});

test('late noise: about lateShare of it is delivered more than the allowed lateness late', () => {
  const lag = lags(stream.events);
  const late = stream.events.filter((e, i) => lag[i]! > ALLOWED_LATENESS_MS);
  assert.ok(late.every(isNoise));
  assert.ok(late.length > 20_000 * 0.01 && late.length < 20_000 * 0.03, `${late.length} late events`);
  const displaced = stream.events.filter((e, i) => lag[i]! > 5_000 && lag[i]! <= ALLOWED_LATENESS_MS);
  assert.ok(displaced.length < late.length, 'displacement beyond outOfOrderMs comes only from late events');
});

test('without late events, displacement is bounded by outOfOrderMs and does happen', () => {
  const s = generateStream({ seed: 8, startMs: START_MS, scenarios: 'all', noiseEvents: 10_000, outOfOrderMs: 3_000 });
  const lag = lags(s.events);
  const max = Math.max(...lag);
  assert.ok(max <= 3_000, `lag ${max}`);
  assert.ok(max > 1_000, 'nothing was displaced');
  assert.deepEqual(runChecks(s.events).map(fingerprint).sort(), s.expected.map(fingerprint).sort());
});

test('in order by default, deterministic in the seed', () => {
  const opts = {
    seed: 4,
    startMs: START_MS,
    scenarios: ['crash-loop:incident', 'disk-pressure:under-bar'],
    noiseEvents: 2_000,
  };
  const a = generateStream(opts);
  assert.ok(lags(a.events).every((l) => l === 0));
  assert.equal(a.expected.length, 1);
  assert.deepEqual(generateStream(opts), a);
  assert.notDeepEqual(generateStream({ ...opts, seed: 5 }), a);
});

test('options outside their range are refused', () => {
  const base = { seed: 1, startMs: START_MS, scenarios: 'all' as const, noiseEvents: 10 };
  assert.throws(() => generateStream({ ...base, outOfOrderMs: ALLOWED_LATENESS_MS + 1 }), RangeError);
  assert.throws(() => generateStream({ ...base, lateShare: 1.5 }), RangeError);
  assert.throws(() => generateStream({ ...base, scenarios: ['nope'] }), RangeError);
});
