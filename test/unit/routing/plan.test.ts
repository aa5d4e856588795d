import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResultJoiner } from '@tapio/comparison';
import type { Comparison } from '@tapio/comparison';
import { loadConfig } from '@tapio/config';
import { V1Engine } from '@tapio/engine-v1';
import type { Event, Result } from '@tapio/events';
import { RoutingTable, defaultRoutingConfig, patchRoutingConfig, planRoutes } from '@tapio/routing';
import type { PlannedRoute, RoutingConfig } from '@tapio/routing';
import { RULES_BY_ID, routesFor } from '@tapio/rules';
import { generateStream } from '@tapio/scenarios';
import { EventsBuilder, at } from '../../helpers/events-builder';

const base = defaultRoutingConfig(loadConfig({ env: {} }));
const cfg = (patch: Record<string, unknown>, epoch = base.epoch): RoutingConfig =>
  patchRoutingConfig({ ...base, epoch }, { features: {}, ...patch });
const NOW = Date.UTC(2025, 0, 1, 12);

test('one record per (engine, scope key) with the rule ids routed there', () => {
  const b = new EventsBuilder();
  // A pod restart feeds R1 (node, resource), R7 (pod, reliability), R9 (service, network).
  const e = b.pod('pod.restart', 0, { service: 'checkout', attributes: { restart_count: 1, exit_code: 1 } });
  const state = { config: cfg({ categoryOverrides: { resource: 'v2' } }), v1Lag: 0, handoffs: [] };
  const plan = planRoutes(e, state, 'closed', NOW);
  const routes = routesFor(e);
  assert.deepEqual(
    plan.map((p) => [p.target, p.scopeKey, p.ruleIds.join(','), p.suppressUntilMs]),
    routes.map((r) => [
      RULES_BY_ID.get(r.ruleIds[0]!)!.category === 'resource' ? 'v2' : 'v1',
      r.scopeKey,
      r.ruleIds.join(','),
      null,
    ]),
  );
  assert.ok(plan.length >= 3);
  // Breaker open: everything to V1, whatever the config says.
  const open = planRoutes(e, state, 'open', NOW);
  assert.ok(open.every((p) => p.target === 'v1'));
  // An event type no rule reads: nothing.
  assert.deepEqual(planRoutes(b.pod('something.else', 0), state, 'closed', NOW), []);
});

test('shadow: V1 records are copied to the shadow topic for a sticky sample of keys, none while open', () => {
  const b = new EventsBuilder();
  const events = Array.from({ length: 4000 }, (_, i) =>
    b.pod('pod.restart', i, { name: `p-${i}`, namespace: `ns-${i % 13}` }),
  );
  const state = (pct: number, enabled = true) => ({
    config: cfg({ v2Percentage: 50, shadow: { enabled, percentage: pct } }),
    v1Lag: 0,
    handoffs: [],
  });
  const shadowKeys = (pct: number, breaker: 'closed' | 'open' = 'closed', enabled = true) => {
    const keys = new Set<string>();
    let v1 = 0;
    for (const e of events) {
      for (const p of planRoutes(e, state(pct, enabled), breaker, NOW)) {
        if (p.target === 'v1') v1++;
        if (p.target === 'v2-shadow') {
          keys.add(p.scopeKey);
          assert.ok(p.scopeKey.startsWith('pod/') || p.scopeKey.startsWith('node/'));
        }
      }
    }
    return { keys, v1 };
  };
  const twenty = shadowKeys(20);
  const share = twenty.keys.size / [...new Set(events.flatMap((e) => routesFor(e).map((r) => r.scopeKey)))].length;
  assert.ok(share > 0.05 && share < 0.2, `about 20% of the V1 half: ${share}`);
  // Shadow copies only of V1 records: no shadow key is a V2 key.
  for (const e of events) {
    const plan = planRoutes(e, state(20), 'closed', NOW);
    for (const s of plan.filter((p) => p.target === 'v2-shadow')) {
      const primary = plan.find((p) => p.scopeKey === s.scopeKey && p.target === 'v1');
      assert.ok(primary, 'a shadow copy has its V1 record');
      assert.deepEqual(s.ruleIds, primary.ruleIds);
    }
  }
  // Sticky and monotone in the percentage.
  const forty = shadowKeys(40);
  for (const k of twenty.keys) assert.ok(forty.keys.has(k));
  assert.equal(shadowKeys(100).keys.size > forty.keys.size, true);
  assert.equal(shadowKeys(100, 'closed', false).keys.size, 0, 'disabled');
  assert.equal(shadowKeys(100, 'open').keys.size, 0, 'dropped while the breaker is open');
});

/** Feeds planned records to one V1Engine per target; keeps results whose trigger record was not suppressed. */
class Harness {
  readonly engines = { v1: new V1Engine(), v2: new V1Engine() };
  readonly published: Result[] = [];
  readonly suppressed: Result[] = [];
  feed(e: Event, plan: PlannedRoute[]): void {
    for (const p of plan) {
      if (p.target === 'v2-shadow') continue;
      for (const r of this.engines[p.target].processRouted(e, p.scopeKey, p.ruleIds)) {
        if (p.suppressUntilMs !== null && r.triggeredAt < p.suppressUntilMs) this.suppressed.push(r);
        else this.published.push(r);
      }
    }
  }
}

test('handoff: an incident spanning a route change is published by the old engine; the new one is suppressed until warm', () => {
  const b = new EventsBuilder();
  const c0 = cfg({ categoryOverrides: { reliability: 'v1' } }, 1);
  const c1 = cfg({ categoryOverrides: { reliability: 'v2' } }, 2);
  const table = new RoutingTable(c0);
  const h = new Harness();
  const naive = new Harness(); // switches at once, no handoff
  const restart = (s: number, id: string) =>
    b.pod('pod.restart', s, { id, name: 'web-7', attributes: { restart_count: 1, exit_code: 1 } });
  const route = (e: Event) => {
    const plan = table.plan(e, NOW);
    h.feed(e, plan);
    naive.feed(
      e,
      planRoutes(e, { config: table.current, v1Lag: 0, handoffs: [] }, 'closed', NOW).map((p) => ({ ...p })),
    );
    return plan;
  };
  route(restart(-300, 'r1'));
  route(restart(-100, 'r2'));
  const F = at(0);
  assert.deepEqual(table.apply(c1, F), { applied: true });
  assert.equal(table.apply(c1, F).applied, false, 'an equal epoch is ignored');
  const plan = route(restart(50, 'r3'));
  const U = F + c1.handoff.warmupMs;
  const crash = (p: PlannedRoute) => p.ruleIds.includes('crash-loop');
  assert.deepEqual(
    plan.filter(crash).map((p) => [p.target, p.suppressUntilMs]),
    [
      ['v1', null],
      ['v2', U],
    ],
    'sent to both engines, the new one suppressed until the warm-up ends',
  );
  const spanning = h.published.filter((r) => r.ruleId === 'crash-loop');
  assert.deepEqual(
    spanning.map((r) => [r.engine, r.triggerEventId]),
    [['v1', 'r3']],
    'the old engine publishes the spanning incident',
  );
  assert.equal(
    naive.published.filter((r) => r.ruleId === 'crash-loop').length,
    0,
    'without the handoff the spanning incident is lost (the check can fail)',
  );

  // After the warm-up: only V2, unsuppressed, and it detects an incident on its own.
  const after = (U - F) / 1000;
  let last: PlannedRoute[] = [];
  for (const [i, s] of [after + 10, after + 20, after + 30].entries()) last = route(restart(s, `s${i}`));
  assert.deepEqual(
    last.filter(crash).map((p) => [p.target, p.suppressUntilMs]),
    [['v2', null]],
  );
  assert.ok(h.published.some((r) => r.ruleId === 'crash-loop' && r.triggerEventId === 's2'));
});

test('handoff property: with config changes mid-stream nothing the reference engine detects is lost', () => {
  const stream = generateStream({
    seed: 7,
    startMs: at(0),
    scenarios: 'all',
    incidentsPerScenario: 3,
    noiseEvents: 3000,
  });
  const events = stream.events;
  const reference = new V1Engine();
  const expected = events.flatMap((e) => reference.process(e));
  assert.ok(expected.length >= 30, `enough detections (${expected.length})`);
  const span = events[events.length - 1]!.timestamp - events[0]!.timestamp;
  // Changes at a third and at half of the stream: 0% → 100% V2 → categories flipped back to V1.
  const changes: [number, RoutingConfig][] = [
    [events[0]!.timestamp + span / 3, cfg({ strategy: 'percentage', v2Percentage: 100 }, 1)],
    [
      events[0]!.timestamp + span / 2,
      cfg({ strategy: 'percentage', v2Percentage: 100, categoryOverrides: { resource: 'v1', network: 'v1' } }, 2),
    ],
  ];
  const table = new RoutingTable(cfg({ strategy: 'percentage', v2Percentage: 0 }));
  const h = new Harness();
  for (const e of events) {
    while (changes.length > 0 && changes[0]![0] <= e.timestamp) {
      const [anchor, c] = changes.shift()!;
      assert.equal(table.apply(c, anchor).applied, true);
    }
    h.feed(e, table.plan(e, NOW));
  }
  const published = new Set(h.published.map((r) => `${r.ruleId}|${r.entityKey}`));
  const missed = expected.filter((r) => !published.has(`${r.ruleId}|${r.entityKey}`));
  assert.deepEqual(
    missed.map((r) => r.id),
    [],
    'every detected incident is published by some engine',
  );
  const ids = new Set(h.published.map((r) => r.id));
  const sameId = expected.filter((r) => ids.has(r.id)).length;
  assert.ok(sameId / expected.length > 0.9, `most with the very same result id (${sameId}/${expected.length})`);
  assert.ok(h.suppressed.length >= 0);
  assert.ok(h.published.some((r) => r.engine === 'v1') && h.engines.v2.stats.events > 0);
});

test('several changes within one warm-up: the engine that held the key before the oldest stays unsuppressed', () => {
  const b = new EventsBuilder();
  const toV2 = cfg({ categoryOverrides: { reliability: 'v2' } }, 1);
  const back = cfg({ categoryOverrides: { reliability: 'v1' } }, 2);
  const table = new RoutingTable(cfg({ categoryOverrides: { reliability: 'v1' } }));
  const e0 = b.pod('pod.restart', -10, { name: 'web-3' });
  table.plan(e0, NOW);
  table.apply(toV2, at(0));
  table.apply(back, at(60));
  const crash = (e: Event) =>
    table
      .plan(e, NOW)
      .filter((p) => p.ruleIds.includes('crash-loop'))
      .map((p) => [p.target, p.suppressUntilMs]);
  const w = toV2.handoff.warmupMs;
  assert.deepEqual(crash(b.pod('pod.restart', 100, { name: 'web-3' })), [
    ['v1', null],
    ['v2', at(60) + w],
  ]);
  // After the first change's warm-up, V2 (which held the key before the second change) is warm.
  assert.deepEqual(crash(b.pod('pod.restart', w / 1000 + 1, { name: 'web-3' })), [
    ['v2', null],
    ['v1', at(60) + w],
  ]);
  assert.deepEqual(crash(b.pod('pod.restart', 60 + w / 1000, { name: 'web-3' })), [['v1', null]]);
});

test('breaker: opening sends all to V1 at once; leaving open hands keys back to V2 through a warm-up', () => {
  const b = new EventsBuilder();
  const table = new RoutingTable(cfg({ categoryOverrides: { reliability: 'v2' } }));
  const e = (s: number) => b.pod('pod.restart', s, { name: 'web-5' });
  const targets = (s: number) =>
    table
      .plan(e(s), NOW)
      .filter((p) => p.ruleIds.includes('crash-loop'))
      .map((p) => [p.target, p.suppressUntilMs]);
  assert.deepEqual(targets(0), [['v2', null]]);
  table.setBreaker('open', at(10));
  assert.deepEqual(targets(20), [['v1', null]]);
  table.setBreaker('half-open', at(40));
  const w = table.current.handoff.warmupMs;
  assert.deepEqual(targets(50), [
    ['v1', null],
    ['v2', at(40) + w],
  ]);
  table.setBreaker('closed', at(60));
  assert.deepEqual(targets(40 + w / 1000), [['v2', null]]);
});

test('load: a flip of the V1-overloaded state is a route change with a handoff', () => {
  const b = new EventsBuilder();
  const table = new RoutingTable(cfg({ strategy: 'load', load: { v1LagThreshold: 100 } }));
  const e = (s: number) => b.pod('pod.restart', s, { name: 'web-6' });
  const crash = (s: number) =>
    table
      .plan(e(s), NOW)
      .filter((p) => p.ruleIds.includes('crash-loop'))
      .map((p) => p.target);
  assert.deepEqual(crash(0), ['v1']);
  table.setV1Lag(50, at(5));
  assert.deepEqual(crash(6), ['v1']);
  table.setV1Lag(500, at(10));
  assert.deepEqual(crash(11), ['v1', 'v2']);
  assert.deepEqual(crash(10 + table.current.handoff.warmupMs / 1000), ['v2']);
});

/** V1 and shadow engines fed by plans, the V2 shadow played by a second V1Engine (the engines agree: parity tests). */
class ShadowHarness {
  readonly v1 = new V1Engine();
  readonly v2 = new V1Engine();
  readonly shadow = new V1Engine();
  /** Published V1 results, with whether their trigger record was marked `compared`. */
  readonly primary: { result: Result; compared: boolean }[] = [];
  readonly shadowPublished: Result[] = [];
  feed(e: Event, plan: PlannedRoute[]): void {
    for (const p of plan) {
      const engine = p.target === 'v1' ? this.v1 : p.target === 'v2' ? this.v2 : this.shadow;
      for (const r of engine.processRouted(e, p.scopeKey, p.ruleIds)) {
        if (p.suppressUntilMs !== null && r.triggeredAt < p.suppressUntilMs) continue;
        if (p.target === 'v1') this.primary.push({ result: r, compared: p.compared });
        if (p.target === 'v2-shadow') this.shadowPublished.push(r);
      }
    }
  }
  /** What the comparator would count: only `compared` V1 results are paired, as the service does. */
  compare(onlyMarked: boolean): Record<string, number> {
    const joiner = new ResultJoiner({ windowMs: Number.MAX_SAFE_INTEGER });
    const kinds: Comparison[] = [];
    for (const { result, compared } of this.primary) {
      const c = joiner.addPrimary(result, 0, compared || !onlyMarked);
      if (c) kinds.push(c);
    }
    for (const r of this.shadowPublished) {
      const c = joiner.addShadow(r, 0);
      if (c) kinds.push(c);
    }
    kinds.push(...joiner.flush());
    const counts: Record<string, number> = { match: 0, missing_in_v2: 0, extra_in_v2: 0, differing: 0 };
    for (const c of kinds) counts[c.kind]!++;
    return counts;
  }
}

test('shadow comparison: only V1 records of shadowed, warm keys are marked compared', () => {
  const b = new EventsBuilder();
  const on = cfg({ shadow: { enabled: true, percentage: 100 } }, 1);
  const restart = (s: number) => b.pod('pod.restart', s, { name: 'web-9', attributes: { restart_count: 1 } });
  const crash = (plan: PlannedRoute[]) =>
    plan.filter((p) => p.ruleIds.includes('crash-loop')).map((p) => [p.target, p.suppressUntilMs, p.compared]);

  // Shadow off (the default): nothing is compared, nothing copied.
  const off = new RoutingTable(cfg({}));
  assert.deepEqual(crash(off.plan(restart(0), NOW)), [['v1', null, false]]);

  // Shadow on from the start (no change to warm up from): copied and compared at once.
  const always = new RoutingTable(on);
  assert.deepEqual(crash(always.plan(restart(0), NOW)), [
    ['v1', null, true],
    ['v2-shadow', null, false],
  ]);

  // Enabled by a new epoch at F: the shadow copy warms up (suppressed until U), V1 is not compared until U.
  const table = new RoutingTable(cfg({}));
  table.plan(restart(-30), NOW);
  const F = at(0);
  assert.equal(table.apply(cfg({ shadow: { enabled: true, percentage: 100 } }, 2), F).applied, true);
  const U = F + table.current.handoff.warmupMs;
  assert.deepEqual(crash(table.plan(restart(10), NOW)), [
    ['v1', null, false],
    ['v2-shadow', U, false],
  ]);
  assert.deepEqual(crash(table.plan(restart((U - F) / 1000 + 1), NOW)), [
    ['v1', null, true],
    ['v2-shadow', null, false],
  ]);

  // The breaker leaving open: the shadow engine saw nothing meanwhile, so it warms up again.
  table.setBreaker('open', at(5000));
  assert.deepEqual(crash(table.plan(restart(5010), NOW)), [['v1', null, false]]);
  table.setBreaker('closed', at(5020));
  const U2 = at(5020) + table.current.handoff.warmupMs;
  assert.deepEqual(crash(table.plan(restart(5030), NOW)), [
    ['v1', null, false],
    ['v2-shadow', U2, false],
  ]);

  // Lowering the percentage needs no warm-up: the keys still shadowed were shadowed before.
  const lower = new RoutingTable(on);
  lower.plan(restart(0), NOW);
  assert.equal(lower.apply(cfg({ shadow: { enabled: true, percentage: 50 } }, 2), at(10)).applied, true);
  for (let i = 0; i < 200; i++) {
    const e = b.pod('pod.restart', 20, { name: `p-${i}` });
    for (const p of lower.plan(e, NOW)) {
      if (p.target === 'v2-shadow') assert.equal(p.suppressUntilMs, null, `${p.scopeKey}: no warm-up`);
    }
  }
});

test('shadow comparison property: with shadow switched on, widened and narrowed mid-stream, the marked results pair exactly', () => {
  const stream = generateStream({
    seed: 11,
    startMs: at(0),
    scenarios: 'all',
    incidentsPerScenario: 20,
    noiseEvents: 3000,
  });
  const events = stream.events;
  const span = events[events.length - 1]!.timestamp - events[0]!.timestamp;
  const t0 = events[0]!.timestamp;
  const shadowAt = (pct: number, epoch: number, o: Record<string, unknown> = {}) =>
    cfg({ strategy: 'percentage', v2Percentage: 30, shadow: { enabled: pct > 0, percentage: pct }, ...o }, epoch);
  // About 85 min of events, warm-up 31 min. Shadow off → 100 % at a tenth → V2 share raised at 0.6
  // (keys move V1 → V2 through a handoff) → narrowed to 40 % at 0.75 → widened to 70 % at 0.9.
  const changes: [number, RoutingConfig][] = [
    [t0 + span * 0.1, shadowAt(100, 1)],
    [t0 + span * 0.6, shadowAt(100, 2, { v2Percentage: 60 })],
    [t0 + span * 0.75, shadowAt(40, 3, { v2Percentage: 60 })],
    [t0 + span * 0.9, shadowAt(70, 4, { v2Percentage: 60 })],
  ];
  const table = new RoutingTable(shadowAt(0, 0));
  const h = new ShadowHarness();
  for (const e of events) {
    while (changes.length > 0 && changes[0]![0] <= e.timestamp) {
      const [anchor, c] = changes.shift()!;
      assert.equal(table.apply(c, anchor).applied, true);
    }
    h.feed(e, table.plan(e, NOW));
  }
  const marked = h.compare(true);
  const compared = h.primary.filter((p) => p.compared).length;
  assert.ok(compared >= 20, `enough compared results (${compared} of ${h.primary.length})`);
  assert.ok(compared < h.primary.length, 'some V1 results are not compared (shadow off, warming, narrowed)');
  assert.deepEqual(marked, { match: compared, missing_in_v2: 0, extra_in_v2: 0, differing: 0 });
  // Pairing every V1 result instead, as the comparator did before, reports V1 results as missing
  // (the check can fail).
  const all = h.compare(false);
  assert.ok(all['missing_in_v2']! > 0, `unmarked results would be missing: ${JSON.stringify(all)}`);
});
