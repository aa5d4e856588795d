import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, loadConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import {
  bucketOf,
  decide,
  defaultRoutingConfig,
  defaultWarmupMs,
  entityNamesOfScopeKey,
  parseRoutingConfig,
  patchRoutingConfig,
  validateRoutingConfig,
} from '@tapio/routing';
import type { DecisionContext, RoutingConfig } from '@tapio/routing';
import { RULES } from '@tapio/rules';

const base = defaultRoutingConfig(loadConfig({ env: {} }));
const cfg = (patch: Record<string, unknown>): RoutingConfig => patchRoutingConfig({ ...base, features: {} }, patch);
const ctx = (config: RoutingConfig, extra: Partial<DecisionContext> = {}): DecisionContext => ({
  config,
  breaker: 'closed',
  v1Lag: 0,
  nowMs: Date.UTC(2025, 0, 1, 12, 0),
  ...extra,
});
const go = (category: string, key: string, c: DecisionContext) => decide(category, key, entityNamesOfScopeKey(key), c);

test('defaults come from config.correlation.hybrid; warm-up = longest horizon + lateness', () => {
  assert.equal(base.epoch, 0);
  assert.equal(base.strategy, DEFAULTS.correlation.hybrid.routing_strategy);
  assert.equal(base.v2Percentage, DEFAULTS.correlation.hybrid.v2_percentage);
  assert.deepEqual(base.features, { v2_memory_rules: true, v2_cpu_rules: false, v2_network_rules: false });
  assert.equal(base.breaker.failureRateThreshold, 0.05);
  assert.equal(base.breaker.slowCallMs, 100);
  const longest = Math.max(...RULES.map((r) => r.horizonMs));
  assert.equal(longest, 1_800_000);
  assert.equal(base.handoff.warmupMs, longest + 60_000);
  assert.equal(defaultWarmupMs(0), longest);
  const off = defaultRoutingConfig(loadConfig({ env: {}, overrides: { correlation: { hybrid: { enabled: false } } } }));
  assert.equal(off.v2Percentage, 0);
  assert.deepEqual(off.features, {});
});

test('decision order: breaker open > entity override > category override > strategy > default V1', () => {
  const key = 'pod/shop/web-1';
  const all = cfg({
    strategy: 'percentage',
    v2Percentage: 100,
    entityOverrides: { pod: { 'shop/web-1': 'v1' } },
    categoryOverrides: { reliability: 'v2' },
  });
  assert.equal(go('reliability', key, ctx(all, { breaker: 'open' })), 'v1', 'breaker open wins');
  assert.equal(go('reliability', key, ctx(all)), 'v1', 'entity override beats category override');
  assert.equal(go('reliability', 'pod/shop/web-2', ctx(all)), 'v2', 'category override');
  const catV1 = cfg({ strategy: 'percentage', v2Percentage: 100, categoryOverrides: { storage: 'v1' } });
  assert.equal(go('storage', key, ctx(catV1)), 'v1', 'category override beats strategy');
  assert.equal(go('performance', key, ctx(catV1)), 'v2', 'strategy');
  const zero = cfg({ strategy: 'percentage', v2Percentage: 0, features: {} });
  for (const c of ['resource', 'performance', 'reliability', 'network', 'storage']) {
    assert.equal(go(c, key, ctx(zero)), 'v1', `default v1 for ${c}`);
  }
  // A rule or a rule id stands for its category.
  assert.equal(decide(RULES[0]!, 'node/n1', {}, ctx(cfg({ categoryOverrides: { resource: 'v2' } }))), 'v2');
  assert.equal(decide('crash-loop', key, {}, ctx(cfg({ categoryOverrides: { reliability: 'v2' } }))), 'v2');
});

test('entity overrides match the names in the scope key: pod, service, node, namespace', () => {
  const c = cfg({
    v2Percentage: 0,
    features: {},
    entityOverrides: {
      namespace: { shop: 'v2' },
      node: { 'node-9': 'v2' },
      pod: { 'other/api-1': 'v2', solo: 'v2' },
      service: { 'pay/checkout': 'v2' },
    },
  });
  assert.equal(go('reliability', 'pod/shop/web-1', ctx(c)), 'v2');
  assert.equal(go('resource', 'container/shop/web-1/app', ctx(c)), 'v2');
  assert.equal(go('network', 'namespace/shop', ctx(c)), 'v2');
  assert.equal(go('resource', 'node/node-9', ctx(c)), 'v2');
  assert.equal(go('resource', 'node/node-1', ctx(c)), 'v1');
  assert.equal(go('reliability', 'pod/other/api-1', ctx(c)), 'v2');
  assert.equal(go('reliability', 'pod/other/api-2', ctx(c)), 'v1');
  assert.equal(go('reliability', 'pod/x/solo', ctx(c)), 'v2', 'bare pod name');
  assert.equal(go('network', 'service/pay/checkout', ctx(c)), 'v2');
  assert.equal(go('network', 'service/pay/cart', ctx(c)), 'v1');
  // More specific wins over the namespace.
  const pinned = cfg({ entityOverrides: { namespace: { shop: 'v2' }, pod: { 'shop/web-1': 'v1' } } });
  assert.equal(go('reliability', 'pod/shop/web-1', ctx(pinned)), 'v1');
});

test('feature flags: true pins the category to V2, false leaves it to the strategy', () => {
  const c = cfg({
    strategy: 'percentage',
    v2Percentage: 0,
    features: { v2_memory_rules: true, v2_cpu_rules: true, v2_network_rules: false },
  });
  assert.equal(go('resource', 'node/a', ctx(c)), 'v2');
  assert.equal(go('performance', 'pod/a/b', ctx(c)), 'v2');
  assert.equal(go('network', 'namespace/a', ctx(c)), 'v1');
  const hundred = cfg({ v2Percentage: 100, features: { v2_network_rules: false } });
  assert.equal(go('network', 'namespace/a', ctx(hundred)), 'v2', 'false does not pin to V1');
  const explicit = cfg({ features: { v2_memory_rules: true }, categoryOverrides: { resource: 'v1' } });
  assert.equal(go('resource', 'node/a', ctx(explicit)), 'v1', 'categoryOverrides win over flags');
});

test('percentage: about p% of keys go to V2, sticky, and raising p never moves a key back to V1', () => {
  const keys = Array.from({ length: 5000 }, (_, i) => `pod/ns-${i % 37}/pod-${i}`);
  const percentages = [0, 0.5, 1, 5, 10, 17.5, 25, 33, 50, 75, 90, 99, 100];
  let previous: Map<string, string> | undefined;
  for (const p of percentages) {
    const c = ctx(cfg({ strategy: 'percentage', v2Percentage: p, features: {} }));
    const now = new Map(keys.map((k) => [k, go('reliability', k, c)]));
    const share = [...now.values()].filter((e) => e === 'v2').length / keys.length;
    assert.ok(Math.abs(share - p / 100) < 0.03, `share ${share} for ${p}%`);
    if (previous) {
      for (const k of keys) {
        if (previous.get(k) === 'v2') assert.equal(now.get(k), 'v2', `${k} moved back to V1 at ${p}%`);
      }
    }
    previous = now;
    assert.deepEqual(new Map(keys.map((k) => [k, go('reliability', k, c)])), now, 'sticky');
  }
  // progressive reads the same percentage (the rollout controller writes it).
  const prog = ctx(cfg({ strategy: 'progressive', v2Percentage: 40, features: {} }));
  const pct = ctx(cfg({ strategy: 'percentage', v2Percentage: 40, features: {} }));
  for (const k of keys.slice(0, 500)) assert.equal(go('reliability', k, prog), go('reliability', k, pct));
  // The salt reshuffles.
  assert.notDeepEqual(
    keys.slice(0, 50).map((k) => bucketOf('a', k)),
    keys.slice(0, 50).map((k) => bucketOf('b', k)),
  );
});

test('load: V1 lag over the threshold sends work to V2', () => {
  const c = cfg({ strategy: 'load', load: { v1LagThreshold: 1000 }, features: {} });
  assert.equal(go('reliability', 'pod/a/b', ctx(c, { v1Lag: 1000 })), 'v1');
  assert.equal(go('reliability', 'pod/a/b', ctx(c, { v1Lag: 1001 })), 'v2');
  assert.equal(go('resource', 'node/x', ctx(cfg({ strategy: 'load', features: { v2_memory_rules: true } }))), 'v2');
});

test('time: windows of the day (UTC, across midnight) with their own percentage; V1 outside', () => {
  const c = cfg({
    strategy: 'time',
    features: {},
    time: {
      windows: [
        { start: '09:00', end: '17:00', v2Percentage: 100 },
        { start: '22:00', end: '02:00', v2Percentage: 100 },
      ],
      timezone: 'UTC',
    },
  });
  const at = (h: number, m = 0) => ctx(c, { nowMs: Date.UTC(2025, 5, 3, h, m) });
  assert.equal(go('network', 'namespace/a', at(8, 59)), 'v1');
  assert.equal(go('network', 'namespace/a', at(9, 0)), 'v2');
  assert.equal(go('network', 'namespace/a', at(16, 59)), 'v2');
  assert.equal(go('network', 'namespace/a', at(17, 0)), 'v1');
  assert.equal(go('network', 'namespace/a', at(23, 30)), 'v2');
  assert.equal(go('network', 'namespace/a', at(1, 30)), 'v2');
  assert.equal(go('network', 'namespace/a', at(2, 0)), 'v1');
});

test('validation errors name the field; unknown keys and bad values are refused', () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ v2Percentage: 101 }, 'v2Percentage'],
    [{ strategy: 'random' }, 'strategy'],
    [{ entityOverrides: { pod: { x: 'v3' } } }, 'entityOverrides.pod.x'],
    [{ categoryOverrides: { memory: 'v2' } }, 'categoryOverrides.memory'],
    [{ features: { v2_disk_rules: true } }, 'features'],
    [{ breaker: { failureRateThreshold: 2 } }, 'breaker.failureRateThreshold'],
    [{ time: { windows: [{ start: '25:00', end: '26:00', v2Percentage: 5 }] } }, 'time.windows.0.start'],
    [{ time: { windows: [{ start: '10:00', end: '10:10', v2Percentage: 5 }] } }, 'time.windows.0'],
    [{ shadow: { enabled: 'yes' } }, 'shadow.enabled'],
  ];
  for (const [patch, field] of bad) {
    assert.throws(
      () => patchRoutingConfig(base, patch),
      (err: unknown) =>
        err instanceof TapioError &&
        err.code === 'INVALID_CONFIG' &&
        err.context.field === field &&
        err.message.includes(field),
      `expected ${field} to be named for ${JSON.stringify(patch)}`,
    );
  }
  assert.throws(() => validateRoutingConfig({ ...base, epoch: -1 }), /epoch/);
  assert.throws(() => validateRoutingConfig({ ...base, extra: 1 }), /extra/);
  assert.throws(
    () => parseRoutingConfig('{nope'),
    (e: unknown) => e instanceof TapioError && e.code === 'INVALID_CONFIG',
  );
  assert.throws(() => parseRoutingConfig(null), /no value/);
  assert.deepEqual(parseRoutingConfig(JSON.stringify(base)), base);
});
