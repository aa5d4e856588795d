import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TapioError } from '@tapio/errors';
import { resultToJsonLine } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { V1Engine, replay } from '@tapio/engine-v1';
import { RULES, crashLoop, dnsFailureStorm, volumeMountFailure } from '@tapio/rules';
import type { CountSummary, RuleDefinition } from '@tapio/rules';
import { EventsBuilder, at } from '../../helpers/events-builder';

function feed(engine: V1Engine, events: readonly Event[]): Result[] {
  return events.flatMap((e) => engine.process(e));
}

function busyWaitMs(ms: number): void {
  const until = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < until) {
    // spin: rules are synchronous, this is what an expensive one looks like
  }
}

test('an out-of-order event within lateness is evaluated with now = its own timestamp', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  const r100 = b.pod('pod.restart', 100);
  const r130 = b.pod('pod.restart', 130);
  const r1040 = b.pod('pod.restart', 1040);
  const r1000 = b.pod('pod.restart', 1000); // arrives after r1040, 40 s behind its watermark
  assert.deepEqual(feed(engine, [r100, r130, r1040]), []);
  const results = engine.process(r1000);
  // Window [100 s, 1000 s]: r100, r130, r1000 (3 restarts); r1040 lies after now. With now = the
  // watermark (1040 s) the window would hold only r1000 and r1040.
  assert.equal(results.length, 1);
  assert.equal(results[0]!.ruleId, 'crash-loop');
  assert.equal(results[0]!.triggeredAt, at(1000));
  assert.deepEqual(results[0]!.evidence, [r100.id, r130.id, r1000.id]);
  assert.equal(engine.stats.lateEvents, 0);
});

test('a redelivered event (same id and timestamp) is ignored by each rule that stored it, which stays as it was', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  const r0 = b.pod('pod.restart', 0);
  const r10 = b.pod('pod.restart', 10);
  feed(engine, [r0, r10]);
  const before = structuredClone(engine.stats);
  // Counted, it would be crash-loop's third restart.
  assert.deepEqual(feed(engine, [{ ...r10, entity: { ...r10.entity } }]), []);
  assert.equal(engine.stats.duplicateEvents, 2, 'R1 (node key) and R7 (pod key)');
  assert.deepEqual(
    { ...engine.stats, events: before.events, duplicateEvents: 0, rules: before.rules },
    { ...before, duplicateEvents: 0 },
    'nothing else changed',
  );
  assert.equal(engine.stats.rules['crash-loop']!.evaluations, before.rules['crash-loop']!.evaluations);
  const r20 = b.pod('pod.restart', 20);
  assert.deepEqual(
    feed(engine, [r20]).map((r) => r.evidence),
    [[r0.id, r10.id, r20.id]],
  );
});

test('lateness boundary: exactly watermark - allowedLateness is on time, 1 ms older is late', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  feed(engine, [b.pod('volume.mount_failed', 1000)]);
  feed(engine, [b.pod('volume.mount_failed', 940)]);
  assert.equal(engine.stats.lateEvents, 0);
  feed(engine, [b.pod('volume.mount_failed', 939.999)]);
  assert.equal(engine.stats.lateEvents, 1);
  assert.equal(engine.stats.rules['volume-mount-failure']!.lateEvents, 1);
});

test('allowedLatenessMs is configurable', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine({ allowedLatenessMs: 0 });
  const results = feed(engine, [b.pod('volume.mount_failed', 10), b.pod('volume.mount_failed', 9.999)]);
  assert.deepEqual(results, []);
  assert.equal(engine.stats.lateEvents, 1);
});

test('the watermark is per rule: a type only R1 reads does not make R7 events late', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  // memory.oom_kill far ahead raises R1's watermark for node/node-1; R7 reads only pod.restart.
  feed(engine, [b.pod('memory.oom_kill', 5000)]);
  const results = feed(
    engine,
    [0, 10, 20].map((t) => b.pod('pod.restart', t)),
  );
  assert.deepEqual(
    results.map((r) => r.ruleId),
    ['crash-loop'],
  );
  assert.equal(engine.stats.rules['memory-pressure-cascade']!.lateEvents, 3);
  assert.equal(engine.stats.rules['crash-loop']!.lateEvents, 0);
});

test('evidence is capped at 50: the trigger plus the 49 others that sort greatest, in sorted order', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  const fromA = Array.from({ length: 60 }, (_, i) => b.pod('network.dns_failure', i, { name: 'a' }));
  assert.deepEqual(feed(engine, fromA), []); // one pod only
  // Same timestamp as the last failure of pod a, but an id that sorts before it.
  const trigger = b.pod('network.dns_failure', 59, { name: 'b', id: 'a-trigger' });
  const results = engine.process(trigger);
  assert.equal(results.length, 1);
  const r = results[0]!;
  assert.equal(r.ruleId, dnsFailureStorm.id);
  assert.equal(r.evidence.length, 50);
  assert.deepEqual(r.evidence, [...fromA.slice(11, 59).map((e) => e.id), 'a-trigger', fromA[59]!.id]);
  assert.equal(r.confidence, 0.99); // 0.6 + 0.04 * (61 - 5) capped
});

test('a throwing rule is reported as RULE_FAILED and the other rules still run', () => {
  const b = new EventsBuilder();
  const boom = new Error('boom');
  const bad: RuleDefinition = {
    ...crashLoop,
    id: 'bad-rule',
    decide() {
      throw boom;
    },
  };
  const badSummary: RuleDefinition = {
    ...volumeMountFailure,
    id: 'bad-summary',
    inputs: crashLoop.inputs,
    summarize() {
      throw new TypeError('cannot read');
    },
  };
  const errors: Array<[string, TapioError]> = [];
  const engine = new V1Engine({
    rules: [bad, badSummary, crashLoop],
    onRuleError: (id, err) => errors.push([id, err]),
  });
  const results = feed(
    engine,
    [0, 10, 20].map((t) => b.pod('pod.restart', t)),
  );
  assert.deepEqual(
    results.map((r) => r.ruleId),
    ['crash-loop'],
  );
  assert.equal(errors.length, 6);
  assert.deepEqual([...new Set(errors.map(([id]) => id))], ['bad-rule', 'bad-summary']);
  for (const [, err] of errors) {
    assert.ok(err instanceof TapioError);
    assert.equal(err.code, 'RULE_FAILED');
  }
  assert.equal(errors[0]![1].cause, boom);
  assert.deepEqual(engine.stats.ruleErrors, { RULE_TIMEOUT: 0, RULE_FAILED: 6 });
});

// Fixed: a GC pause on a loaded machine pushed evaluations over the budget and V1 silently dropped
// detections (bench e2e run 2: one incident lost). A finished result is now kept and the slowness reported.
test('an evaluation over ruleTimeoutMs is reported as RULE_TIMEOUT and its result kept', () => {
  const b = new EventsBuilder();
  const slow: RuleDefinition = {
    ...volumeMountFailure,
    id: 'slow-rule',
    decide(summary, now) {
      busyWaitMs(10);
      return volumeMountFailure.decide(summary as CountSummary, now);
    },
  };
  const errors: TapioError[] = [];
  const seen: Result[] = [];
  const engine = new V1Engine({
    rules: [slow, volumeMountFailure],
    ruleTimeoutMs: 3,
    onRuleError: (_id, err) => errors.push(err),
    onResult: (r) => seen.push(r),
  });
  const events = [0, 10, 20].map((t) => b.pod('volume.mount_failed', t));
  const results = feed(engine, events);
  // Both fire at the 2nd event, then both are in cooldown at the 3rd (which is still timed).
  assert.deepEqual(
    results.map((r) => r.ruleId),
    ['slow-rule', 'volume-mount-failure'],
  );
  assert.deepEqual(seen, results);
  assert.equal(errors.length, 2, 'the two evaluations outside cooldown were over budget');
  assert.ok(errors.every((e) => e.code === 'RULE_TIMEOUT'));
  assert.equal(engine.stats.ruleErrors.RULE_TIMEOUT, 2);
  assert.ok(engine.stats.rules['slow-rule']!.evaluationNs >= 2 * 10e6);
});

test('results come in route order, then catalogue order, whatever the header order', () => {
  const b = new EventsBuilder();
  const nodeCopy: RuleDefinition = { ...crashLoop, id: 'crash-loop-node', scope: 'node' };
  const second: RuleDefinition = { ...crashLoop, id: 'crash-loop-b' };
  const engine = new V1Engine({ rules: [nodeCopy, crashLoop, second] });
  const results = feed(
    engine,
    [0, 10, 20].map((t) => b.pod('pod.restart', t)),
  );
  assert.deepEqual(
    results.map((r) => [r.ruleId, r.entityKey]),
    [
      ['crash-loop-node', 'node/node-1'],
      ['crash-loop', 'pod/shop/web-1'],
      ['crash-loop-b', 'pod/shop/web-1'],
    ],
  );

  const routed = new V1Engine({ rules: [nodeCopy, crashLoop, second] });
  const out = [0, 10, 20].flatMap((t) =>
    routed.processRouted(b.pod('pod.restart', t), 'pod/shop/web-1', ['crash-loop-b', 'unknown-rule', 'crash-loop']),
  );
  assert.deepEqual(
    out.map((r) => r.ruleId),
    ['crash-loop', 'crash-loop-b'],
  );
  assert.equal(routed.stats.skippedRules, 3);
});

test('processRouted evaluates only the listed rules and skips rules whose inputs do not match', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  const out = [0, 10, 20].flatMap((t) =>
    engine.processRouted(b.pod('pod.restart', t), 'pod/shop/web-1', ['crash-loop', 'volume-mount-failure']),
  );
  assert.deepEqual(
    out.map((r) => r.ruleId),
    ['crash-loop'],
  );
  assert.equal(engine.stats.skippedRules, 3);
  assert.equal(engine.stats.rules['memory-pressure-cascade']!.evaluations, 0);
  assert.equal(engine.stats.events, 3);
  assert.equal(engine.stats.results, 1);
});

test('the store keeps only horizon + lateness per rule and key', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine();
  // volume.mount_failed feeds R11 only (W = 600 s); one every 100 s.
  for (let i = 0; i < 100; i++) engine.process(b.pod('volume.mount_failed', i * 100, { name: `p${i % 2}` }));
  // Per key: events within (600 + 60) s of its watermark, i.e. one every 200 s -> at most 4.
  assert.ok(engine.stats.storedEvents <= 8, `stored ${engine.stats.storedEvents}`);
  assert.ok(engine.stats.storedEvents >= 6);
});

test('idle keys are freed once the engine time passes them by keyIdleMs', () => {
  const b = new EventsBuilder();
  const engine = new V1Engine({ keyIdleMs: 1000 });
  engine.process(b.pod('pod.restart', 0, { name: 'a' }));
  assert.equal(engine.stats.keys, 2); // node/node-1 and pod/shop/a (no service set)
  engine.process(b.pod('volume.mount_failed', 120, { name: 'b' }));
  assert.equal(engine.stats.keysFreed, 2);
  assert.equal(engine.stats.keys, 1);
  assert.equal(engine.stats.storedEvents, 1);
});

test('invalid options stop construction with INVALID_CONFIG', () => {
  assert.throws(
    () => new V1Engine({ allowedLatenessMs: -1 }),
    (e: unknown) => e instanceof TapioError && e.code === 'INVALID_CONFIG',
  );
  assert.throws(
    () => new V1Engine({ ruleTimeoutMs: 0 }),
    (e: unknown) => e instanceof TapioError && e.code === 'INVALID_CONFIG',
  );
  assert.throws(() => new V1Engine({ rules: [crashLoop, crashLoop] }), /duplicate rule id crash-loop/);
});

test('replay output is byte-identical run to run', () => {
  const make = (): Event[] => {
    const b = new EventsBuilder();
    return [
      b.container('memory.oom_kill', 0),
      ...[5, 10, 15, 20, 25].map((t) => b.pod('pod.restart', t, { service: 'cart' })),
      ...Array.from({ length: 12 }, (_, i) =>
        b.pod('network.connection_failure', 26 + i, { name: `c${i % 3}`, labels: { destination: 'shop/cart' } }),
      ),
      b.node('disk.usage', 40, { attributes: { usage_ratio: 0.97 } }),
    ];
  };
  const first = replay(make(), new V1Engine()).map(resultToJsonLine).join('\n');
  const second = replay(make(), new V1Engine()).map(resultToJsonLine).join('\n');
  assert.equal(first, second);
  assert.deepEqual(
    first.split('\n').map((l) => (JSON.parse(l) as Result).ruleId),
    ['memory-pressure-cascade', 'crash-loop', 'connection-failure-cascade', 'disk-pressure'],
  );
  assert.equal(RULES.length, 12);
});
