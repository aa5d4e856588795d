import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event } from '@tapio/events';
import { RULE_IDS, expectedToJsonLine, generateScenario, listScenarios } from '@tapio/scenarios';
import type { GeneratedScenario } from '@tapio/scenarios';
import { CHECKS, CHECK_BY_ID, runChecks } from './rule-checks';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
const SEEDS = Array.from({ length: 40 }, (_, i) => i * 7919 + 1);

/** Severities the table row makes reachable for an incident delivered in timestamp order. */
const REACHABLE: Record<string, readonly string[]> = {
  'memory-pressure-cascade': ['high', 'medium'],
  'memory-leak': ['critical', 'high', 'medium'],
  'oom-prediction': ['critical'],
  'cpu-throttle-impact': ['critical', 'high', 'medium'],
  'cpu-contention': ['critical', 'high'],
  'high-cpu-pattern': ['critical', 'high'],
  'crash-loop': ['critical', 'high'],
  'dns-failure-storm': ['critical', 'high'],
  'connection-failure-cascade': ['critical', 'high'],
  'disk-pressure': ['critical', 'high'],
  'volume-mount-failure': ['high'],
  'node-pressure-eviction': ['high'],
};

function checkOf(ruleId: string) {
  const check = CHECK_BY_ID.get(ruleId);
  assert.ok(check, `no check for ${ruleId}`);
  return check;
}

function assertWellFormed(s: GeneratedScenario): void {
  const ids = new Set(s.events.map((e) => e.id));
  assert.equal(ids.size, s.events.length, `${s.name}: duplicate ids`);
  for (let i = 1; i < s.events.length; i++) {
    const prev = s.events[i - 1] as Event;
    assert.ok(prev.timestamp < (s.events[i] as Event).timestamp, `${s.name}: timestamps must strictly increase`);
  }
  for (const e of s.events) {
    for (const field of ['cluster', 'namespace', 'node', 'pod', 'container', 'service'] as const) {
      assert.notEqual(e.entity[field], undefined, `${e.id}: entity.${field} must be a value or null`);
    }
    assert.notEqual(e.message, undefined);
    assert.equal(typeof e.attributes, 'object');
    assert.equal(typeof e.labels, 'object');
  }
}

describe('scenario catalogue', () => {
  test('every rule has one incident and at least two near misses', () => {
    const all = listScenarios();
    assert.equal(new Set(all.map((s) => s.name)).size, all.length);
    for (const ruleId of RULE_IDS) {
      const mine = all.filter((s) => s.ruleId === ruleId);
      assert.equal(mine.filter((s) => s.kind === 'incident').length, 1, ruleId);
      assert.ok(mine.filter((s) => s.kind === 'near-miss').length >= 2, ruleId);
      checkOf(ruleId);
    }
  });

  test('node rules have a near miss fed by pods without a node', () => {
    for (const ruleId of ['memory-pressure-cascade', 'cpu-contention', 'node-pressure-eviction']) {
      const nodeless = generateScenario(`${ruleId}:no-node`, { seed: 5, startMs: START_MS });
      const pods = nodeless.events.filter((e) => e.entity.kind === 'pod');
      assert.ok(pods.length >= 2 && pods.every((e) => e.entity.node === null), ruleId);
    }
  });
});

for (const info of listScenarios()) {
  describe(info.name, () => {
    const check = checkOf(info.ruleId);
    const others = CHECKS.filter((c) => c.id !== info.ruleId);

    test(`${info.kind === 'incident' ? 'fires exactly once at its trigger' : 'never satisfies the condition'}, per RULES.md`, () => {
      for (const seed of SEEDS) {
        const s = generateScenario(info.name, { seed, startMs: START_MS });
        assert.equal(s.ruleId, info.ruleId);
        assert.equal(s.kind, info.kind);
        assertWellFormed(s);
        const fires = runChecks(s.events, [check]);
        if (info.kind === 'near-miss') {
          assert.deepEqual(s.expected, [], `${info.name} seed ${seed}: a near miss expects nothing`);
          assert.deepEqual(fires, [], `${info.name} seed ${seed}: condition satisfied`);
        } else {
          assert.equal(s.expected.length, 1);
          assert.deepEqual(fires, s.expected, `${info.name} seed ${seed}`);
        }
      }
    });

    test('satisfies no other rule', () => {
      for (const seed of SEEDS) {
        const s = generateScenario(info.name, { seed, startMs: START_MS });
        assert.deepEqual(runChecks(s.events, others), [], `${info.name} seed ${seed}`);
      }
    });

    if (info.kind === 'incident') {
      test('lies within the cooldown and keeps the condition true after the trigger', () => {
        for (const seed of SEEDS) {
          const s = generateScenario(info.name, { seed, startMs: START_MS });
          const expected = s.expected[0]!;
          const trigger = s.events.find((e) => e.id === expected.triggerEventId)!;
          const last = s.events[s.events.length - 1]!;
          assert.ok(last.timestamp < trigger.timestamp + check.cooldownMs, `${info.name} seed ${seed}`);
          // Without the cooldown the rule would fire again: the scenario exercises it.
          const uncooled = runChecks(s.events, [{ ...check, cooldownMs: 0 }]);
          assert.ok(uncooled.length >= 2, `${info.name} seed ${seed}: nothing after the trigger`);
        }
      });

      test('reaches every severity the rule allows in timestamp order', () => {
        const seen = new Set<string>();
        for (const seed of SEEDS)
          seen.add(generateScenario(info.name, { seed, startMs: START_MS }).expected[0]!.severity);
        assert.deepEqual([...seen].sort(), [...(REACHABLE[info.ruleId] ?? [])].sort());
      });
    }

    test('is deterministic in the seed', () => {
      const a = generateScenario(info.name, { seed: 11, startMs: START_MS });
      assert.deepEqual(generateScenario(info.name, { seed: 11, startMs: START_MS }), a);
      assert.notDeepEqual(generateScenario(info.name, { seed: 12, startMs: START_MS }), a);
    });
  });
}

test('instances differ in namespace, node and ids', () => {
  const a = generateScenario('crash-loop:incident', { seed: 3, startMs: START_MS, instance: 1 });
  const b = generateScenario('crash-loop:incident', { seed: 3, startMs: START_MS, instance: 2 });
  assert.notEqual(a.events[0]!.entity.namespace, b.events[0]!.entity.namespace);
  assert.notEqual(a.events[0]!.entity.node, b.events[0]!.entity.node);
  assert.notEqual(a.events[0]!.id, b.events[0]!.id);
});

test('unknown scenario names are refused', () => {
  assert.throws(() => generateScenario('crash-loop:nope', { seed: 1, startMs: START_MS }), RangeError);
});

test('expectedToJsonLine writes ruleId, entityKey, severity, triggerEventId in that order', () => {
  const s = generateScenario('disk-pressure:incident', { seed: 9, startMs: START_MS });
  const e = s.expected[0]!;
  const line = expectedToJsonLine({
    triggerEventId: e.triggerEventId,
    severity: e.severity,
    entityKey: e.entityKey,
    ruleId: e.ruleId,
  });
  assert.deepEqual(Object.keys(JSON.parse(line) as object), ['ruleId', 'entityKey', 'severity', 'triggerEventId']);
  assert.deepEqual(JSON.parse(line), e);
  assert.ok(!line.includes('\n'));
});
