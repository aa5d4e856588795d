// Differential parity: V2 must return V1's results, field for field (engine aside), in V1's order.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import type { V1EngineOptions } from '@tapio/engine-v1';
import { V2Engine } from '@tapio/engine-v2';
import { RULES_BY_ID, routesFor } from '@tapio/rules';
import { Rng, deriveSeed, generateStream } from '@tapio/scenarios';
import { withRedeliveries } from '../../helpers/redeliver';
import { fuzzStream } from './fuzz';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
/** Generous budget: a GC pause must not discard a result in one engine and not the other. */
const NO_TIMEOUT = { ruleTimeoutMs: 60_000 };

function asV1(results: readonly Result[]): Result[] {
  return results.map((r) => ({ ...r, engine: 'v1' }));
}

function assertSameResults(v2: readonly Result[], v1: readonly Result[], what: string): void {
  assert.ok(
    v2.every((r) => r.engine === 'v2'),
    `${what}: V2 results carry engine v2`,
  );
  assert.equal(v2.length, v1.length, `${what}: result count`);
  for (let i = 0; i < v1.length; i++) assert.deepEqual(asV1([v2[i]!])[0], v1[i], `${what}: result #${i}`);
}

function replayBoth(events: readonly Event[], options: V1EngineOptions = {}) {
  const v1 = new V1Engine({ ...NO_TIMEOUT, ...options });
  const v2 = new V2Engine({ ...NO_TIMEOUT, ...options });
  const r1: Result[] = [];
  const r2: Result[] = [];
  for (const e of events) {
    r1.push(...v1.process(e));
    r2.push(...v2.process(e));
  }
  return { v1, v2, r1, r2 };
}

interface Routed {
  event: Event;
  scopeKey: string;
  ruleIds: string[];
}

/** The router's records: one per (event, scope key), rule ids shuffled (engines use catalogue order). */
function routedRecords(events: readonly Event[], seed: number): Routed[] {
  const rng = new Rng(deriveSeed(seed, 'rule-order'));
  const out: Routed[] = [];
  for (const event of events) {
    for (const r of routesFor(event)) out.push({ event, scopeKey: r.scopeKey, ruleIds: rng.shuffled(r.ruleIds) });
  }
  return out;
}

/**
 * Routed parity three ways: V1 routed vs V2 batch; and a split run where each (scope key, category)
 * goes to V1 or V2 by a per-seed hash, as the router's category routing does, against V1 alone.
 */
function checkRouted(events: readonly Event[], seed: number, what: string): number {
  const records = routedRecords(events, seed);
  const v1 = new V1Engine(NO_TIMEOUT);
  const r1: Result[] = [];
  for (const r of records) r1.push(...v1.processRouted(r.event, r.scopeKey, r.ruleIds));
  const v2 = new V2Engine(NO_TIMEOUT);
  const r2: Result[] = [];
  v2.processBatch(records, r2);
  assertSameResults(r2, r1, `${what} routed`);
  assert.equal(v2.stats.skippedRules, v1.stats.skippedRules);

  const splitV1 = new V1Engine(NO_TIMEOUT);
  const splitV2 = new V2Engine(NO_TIMEOUT);
  const split: Result[] = [];
  const toV2 = new Map<string, boolean>();
  for (const r of records) {
    const mine: string[] = [];
    const theirs: string[] = [];
    for (const id of r.ruleIds) {
      const cat = RULES_BY_ID.get(id)!.category;
      const k = `${r.scopeKey}|${cat}`;
      let v = toV2.get(k);
      if (v === undefined) {
        v = (deriveSeed(seed, k) & 1) === 1;
        toV2.set(k, v);
      }
      (v ? mine : theirs).push(id);
    }
    const here: Result[] = [];
    if (theirs.length > 0) here.push(...splitV1.processRouted(r.event, r.scopeKey, theirs));
    if (mine.length > 0) here.push(...asV1(splitV2.processRouted(r.event, r.scopeKey, mine)));
    // Within one record the two engines' results interleave by catalogue order.
    here.sort((a, b) => order(a.ruleId) - order(b.ruleId));
    split.push(...here);
  }
  assert.deepEqual(split, r1, `${what} split by category`);
  return records.length;
}

const CATALOGUE_ORDER = new Map([...RULES_BY_ID.keys()].map((id, i) => [id, i]));
function order(ruleId: string): number {
  return CATALOGUE_ORDER.get(ruleId) ?? -1;
}

let compared = 0;

describe('V2 equals V1 on generated streams (scenarios + noise, out of order, late)', () => {
  const configs = [
    { seed: 1, outOfOrderMs: 0, lateShare: 0 },
    { seed: 2, outOfOrderMs: 60_000, lateShare: 0.02 },
    { seed: 3, outOfOrderMs: 30_000, lateShare: 0.05 },
    { seed: 4, outOfOrderMs: 5_000, lateShare: 0.01 },
  ];
  for (const c of configs) {
    test(`seed ${c.seed}, outOfOrderMs ${c.outOfOrderMs}, lateShare ${c.lateShare}`, () => {
      const stream = generateStream({
        seed: c.seed,
        startMs: START_MS,
        scenarios: 'all',
        incidentsPerScenario: 3,
        noiseEvents: 30_000,
        outOfOrderMs: c.outOfOrderMs,
        lateShare: c.lateShare,
      });
      const { v1, v2, r1, r2 } = replayBoth(stream.events);
      assertSameResults(r2, r1, `seed ${c.seed}`);
      assert.equal(r1.length, stream.expected.length, 'every incident detected once');
      assert.equal(v2.stats.lateEvents, v1.stats.lateEvents);
      assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
      assert.equal(v2.stats.keys, v1.stats.keys);
      if (c.lateShare > 0) assert.ok(v1.stats.lateEvents > 0, 'late events exercised');
      compared += stream.events.length;
      compared += checkRouted(stream.events, c.seed, `seed ${c.seed}`);
    });
  }
});

describe('V2 equals V1 on dense fuzz streams (every rule fires often)', () => {
  const configs = [
    { seed: 11, events: 60_000, outOfOrderMs: 0, lateShare: 0, keyIdleMs: undefined },
    { seed: 12, events: 60_000, outOfOrderMs: 60_000, lateShare: 0.03, keyIdleMs: undefined },
    { seed: 13, events: 60_000, outOfOrderMs: 20_000, lateShare: 0.01, keyIdleMs: undefined },
    // Idle keys freed often: both engines must forget the same state at the same time.
    { seed: 14, events: 60_000, outOfOrderMs: 40_000, lateShare: 0.02, keyIdleMs: 240_000 },
  ];
  for (const c of configs) {
    test(`seed ${c.seed}, outOfOrderMs ${c.outOfOrderMs}, lateShare ${c.lateShare}, keyIdleMs ${c.keyIdleMs ?? 'default'}`, () => {
      const events = fuzzStream(c);
      const options = c.keyIdleMs === undefined ? {} : { keyIdleMs: c.keyIdleMs };
      const { v1, v2, r1, r2 } = replayBoth(events, options);
      assertSameResults(r2, r1, `fuzz seed ${c.seed}`);
      const fired = new Set(r1.map((r) => r.ruleId));
      assert.equal(fired.size, 12, `every rule fires (${[...fired].join(', ')})`);
      assert.ok(
        r1.some((r) => r.evidence.length === 50),
        'evidence cap exercised',
      );
      assert.equal(v2.stats.lateEvents, v1.stats.lateEvents);
      assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
      assert.equal(v2.stats.keysFreed, v1.stats.keysFreed);
      if (c.keyIdleMs !== undefined) assert.ok(v1.stats.keysFreed > 0, 'idle keys freed');
      for (const [id, s] of Object.entries(v1.stats.rules)) {
        assert.equal(v2.stats.rules[id]!.evaluations, s.evaluations, `${id} evaluations`);
        assert.equal(v2.stats.rules[id]!.lateEvents, s.lateEvents, `${id} late events`);
      }
      compared += events.length;
      if (c.keyIdleMs === undefined) compared += checkRouted(events, c.seed, `fuzz seed ${c.seed}`);
    });
  }
});

describe('V2 equals V1 when events are delivered twice (some 1-4 records after their first delivery)', () => {
  test('generated stream, out of order and late: process, routed, and split by category', () => {
    const stream = generateStream({
      seed: 5,
      startMs: START_MS,
      scenarios: 'all',
      incidentsPerScenario: 3,
      noiseEvents: 30_000,
      outOfOrderMs: 30_000,
      lateShare: 0.02,
    });
    const { events, redelivered } = withRedeliveries(stream.events, 5);
    const { v1, v2, r1, r2 } = replayBoth(events);
    assertSameResults(r2, r1, 'redelivered');
    assert.equal(r1.length, stream.expected.length, 'every incident detected once');
    assert.ok(v1.stats.duplicateEvents > redelivered, 'redeliveries exercised');
    assert.equal(v2.stats.duplicateEvents, v1.stats.duplicateEvents);
    assert.equal(v2.stats.lateEvents, v1.stats.lateEvents);
    assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
    compared += events.length;
    // Split by category, each engine sees only its rules' records: per rule, the same redeliveries.
    compared += checkRouted(events, 5, 'redelivered');
  });

  test('dense fuzz stream with idle keys freed often', () => {
    const { events } = withRedeliveries(
      fuzzStream({ seed: 15, events: 60_000, outOfOrderMs: 40_000, lateShare: 0.02 }),
      15,
      0.05,
    );
    const { v1, v2, r1, r2 } = replayBoth(events, { keyIdleMs: 240_000 });
    assertSameResults(r2, r1, 'fuzz redelivered');
    assert.ok(v1.stats.keysFreed > 0, 'idle keys freed');
    assert.equal(v2.stats.duplicateEvents, v1.stats.duplicateEvents);
    assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
    for (const [id, s] of Object.entries(v1.stats.rules)) {
      assert.ok(s.duplicateEvents > 0, `${id} ignored redeliveries`);
      assert.equal(v2.stats.rules[id]!.duplicateEvents, s.duplicateEvents, `${id} duplicate events`);
      assert.equal(v2.stats.rules[id]!.evaluations, s.evaluations, `${id} evaluations`);
    }
    compared += events.length;
  });
});

test('events compared', () => {
  // Not a speed check: a record that the suite's size did not shrink by accident.
  assert.ok(compared >= 300_000, `only ${compared} events compared`);
});
