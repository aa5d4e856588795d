import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event } from '@tapio/events';
import { createEventSource } from '@tapio/scenarios';
import type { EventSourceOptions } from '@tapio/scenarios';
import { runChecks } from './rule-checks';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
const OPTIONS: EventSourceOptions = { seed: 17, startMs: START_MS, mix: { scenarios: 'all', noiseRatio: 0.8 } };

function take(options: EventSourceOptions, n: number) {
  const source = createEventSource(options);
  const events: Event[] = [];
  for (let i = 0; i < n; i++) events.push(source.next());
  return { source, events };
}

test('the source emits in timestamp order with unique ids and the requested noise share', () => {
  // One noise event a second, so 60 000 events span hours: long past the longest scenario (~35 min),
  // after which instances emit at their steady rate.
  const { source, events } = take({ ...OPTIONS, noiseIntervalMs: 1_000 }, 60_000);
  assert.equal(source.emitted, 60_000);
  assert.equal(new Set(events.map((e) => e.id)).size, events.length);
  for (let i = 1; i < events.length; i++) assert.ok(events[i - 1]!.timestamp <= events[i]!.timestamp);
  const steady = events.slice(30_000);
  const share = steady.filter((e) => e.id.startsWith('noise-')).length / steady.length;
  assert.ok(Math.abs(share - 0.8) < 0.05, `noise share ${share}`);
  assert.ok(source.instances > 100, `${source.instances} instances`);
});

test('takeExpected returns exactly the detections whose trigger was emitted', () => {
  const { source, events } = take(OPTIONS, 60_000);
  const expected = source.takeExpected();
  assert.ok(expected.length > 20);
  const key = (d: { ruleId: string; entityKey: string; severity: string; triggerEventId: string }) =>
    `${d.ruleId}|${d.entityKey}|${d.severity}|${d.triggerEventId}`;
  assert.deepEqual(runChecks(events).map(key).sort(), expected.map(key).sort());
  assert.deepEqual(source.takeExpected(), []);
  assert.equal(source.droppedExpected, 0);
});

test('unread expectations beyond the cap are dropped and counted', () => {
  const { source } = take({ ...OPTIONS, maxPendingExpected: 5 }, 30_000);
  assert.equal(source.takeExpected().length, 5);
  assert.ok(source.droppedExpected > 0);
});

test('the source is deterministic in the seed', () => {
  const a = take(OPTIONS, 3_000).events;
  assert.deepEqual(take(OPTIONS, 3_000).events, a);
  assert.notDeepEqual(take({ ...OPTIONS, seed: 18 }, 3_000).events, a);
});

test('noiseRatio 1 emits noise only; ratios outside (0, 1] are refused', () => {
  const { events } = take({ ...OPTIONS, mix: { scenarios: 'all', noiseRatio: 1 } }, 2_000);
  assert.ok(events.every((e) => e.id.startsWith('noise-')));
  assert.throws(() => createEventSource({ ...OPTIONS, mix: { scenarios: 'all', noiseRatio: 0 } }), RangeError);
});
