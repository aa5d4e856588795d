import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, loadConfig } from '@tapio/config';
import {
  SnapshotWindow,
  applyCommand,
  categorySplit,
  encodeRolloutState,
  evaluate,
  formatRolloutStatus,
  idleState,
  parseRolloutCommand,
  parseRolloutState,
  parseStageSpec,
  resolveStages,
  routingChange,
  targetPercentage,
} from '@tapio/rollout';
import type { Criteria, Figures, RolloutCommand, RolloutState } from '@tapio/rollout';
import { defaultRoutingConfig } from '@tapio/routing';
import type { HealthSnapshot } from '@tapio/routing';

const T0 = 1_750_000_000_000;

const CRITERIA: Criteria = {
  errorRate: { max: 0.05, minSamples: 100, required: true },
  slowCallRate: { max: 0.1, minSamples: 100, required: true },
  mismatchRate: { max: 0.01, minSamples: 50, required: false },
  lag: { max: 1000, minSamples: 2, required: true },
};

function figures(v2: Partial<Figures['v2']> = {}, cmp: Partial<Figures['comparison']> = {}): Figures {
  const comparison = { matched: 0, missing: 0, extra: 0, differing: 0, ...cmp };
  const mismatches = comparison.missing + comparison.extra + comparison.differing;
  return {
    fromMs: 0,
    toMs: 0,
    v2: { snapshots: 5, instances: 1, calls: 1000, errors: 0, slowCalls: 0, ratePerSec: 100, lag: 10, ...v2 },
    comparison: { ...comparison, compared: comparison.matched + mismatches, mismatches },
  };
}

const healthy = figures();
const tooFew = figures({ calls: 20, snapshots: 1 });

function started(spec = '10:60s,50:60s,100:60s'): RolloutState {
  const cmd: RolloutCommand = {
    command: 'start',
    at: T0,
    by: 'test',
    id: 'r1',
    stages: resolveStages(parseStageSpec(spec), CRITERIA),
  };
  const out = applyCommand(idleState(), cmd, T0, '4');
  assert.equal(out.accepted, true);
  return out.state;
}

const command = (state: RolloutState, name: RolloutCommand['command'], atMs: number) =>
  applyCommand(state, { command: name, at: atMs, by: 'op' }, atMs);

test('a stage advances after its minimum duration with every criterion met, and the last one completes', () => {
  let s = started();
  assert.equal(s.status, 'running');
  assert.equal(targetPercentage(s), 10);

  let ev = evaluate(s, healthy, T0 + 30_000);
  assert.equal(ev.decision.decision, 'hold');
  assert.equal(ev.decision.code, 'min-duration');
  assert.equal(ev.state.stageIndex, 0);

  ev = evaluate(ev.state, healthy, T0 + 60_000);
  assert.equal(ev.decision.decision, 'advance');
  assert.ok(ev.changed);
  s = ev.state;
  assert.equal(s.stageIndex, 1);
  assert.equal(s.stageStartedAtMs, T0 + 60_000);
  assert.equal(targetPercentage(s), 50);
  const entry = s.history.at(-1);
  assert.equal(entry?.kind, 'advance');
  assert.equal(entry?.criteria?.find((c) => c.name === 'errorRate')?.verdict, 'met');

  s = evaluate(s, healthy, T0 + 120_000).state;
  assert.equal(s.stageIndex, 2);
  ev = evaluate(s, healthy, T0 + 180_000);
  assert.equal(ev.decision.decision, 'complete');
  assert.equal(ev.state.status, 'completed');
  assert.equal(targetPercentage(ev.state), 100);
  // A completed rollout is not evaluated any more.
  assert.equal(evaluate(ev.state, figures({ errors: 1000 }), T0 + 200_000).decision.decision, 'none');
});

test('too few samples holds the stage (inconclusive) past its minimum duration; an optional criterion does not', () => {
  const s = started();
  const ev = evaluate(s, tooFew, T0 + 90_000);
  assert.equal(ev.decision.decision, 'hold');
  assert.equal(ev.decision.code, 'inconclusive');
  assert.match(ev.decision.reason, /errorRate: 20\/100 samples/);
  assert.match(ev.decision.reason, /lag: 1\/2 samples/);
  assert.equal(ev.state.stageIndex, 0);
  // The optional mismatch rate has no samples at all in `healthy`, and the stage advances anyway.
  const mismatch = evaluate(s, healthy, T0 + 90_000).decision.criteria.find((c) => c.name === 'mismatchRate');
  assert.equal(mismatch?.verdict, 'not-judged');

  // Holding again with other figures does not grow the history; the state is stored once.
  const again = evaluate(ev.state, figures({ calls: 30, snapshots: 1 }), T0 + 91_000);
  assert.equal(again.changed, false);
  assert.equal(again.state.history.length, ev.state.history.length);
});

test('a breach rolls back at once with the breaching figures, even before the minimum duration', () => {
  const s = started();
  const ev = evaluate(s, figures({ calls: 400, errors: 100, lag: 5000 }), T0 + 2_000);
  assert.equal(ev.decision.decision, 'rollback');
  assert.equal(ev.state.status, 'rolled-back');
  assert.equal(targetPercentage(ev.state), 0);
  const rb = ev.state.rollback;
  assert.ok(rb);
  assert.equal(rb.cause, 'breach');
  assert.deepEqual(
    rb.breaches.map((b) => [b.name, b.value, b.samples]),
    [
      ['errorRate', 0.25, 400],
      ['lag', 5000, 5],
    ],
  );
  assert.match(rb.reason, /errorRate 0\.2500 > 0\.05 \(400 samples\); lag 5000 > 1000/);
  assert.equal(ev.state.history.at(-1)?.kind, 'rollback');

  // Too few samples is never a breach, however bad the ratio.
  assert.equal(evaluate(s, figures({ calls: 10, errors: 10 }), T0 + 2_000).decision.decision, 'hold');
  // The optional mismatch rate breaches once it has its samples.
  const mm = evaluate(s, figures({}, { matched: 90, differing: 10 }), T0 + 2_000);
  assert.equal(mm.decision.decision, 'rollback');
  assert.match(mm.decision.reason, /mismatchRate 0\.1000 > 0\.01 \(100 samples\)/);
});

test('a manual gate waits for promote; promote advances', () => {
  let s = started('10:10s:gate,100:10s');
  let ev = evaluate(s, healthy, T0 + 10_000);
  assert.equal(ev.decision.decision, 'wait-for-promote');
  assert.equal(ev.state.status, 'waiting-promote');
  s = evaluate(ev.state, healthy, T0 + 60_000).state;
  assert.equal(s.stageIndex, 0, 'still waiting');
  // A breach while waiting still rolls back.
  assert.equal(evaluate(s, figures({ errors: 500 }), T0 + 61_000).state.status, 'rolled-back');

  const promoted = command(s, 'promote', T0 + 62_000);
  assert.ok(promoted.accepted);
  assert.equal(promoted.state.status, 'running');
  assert.equal(promoted.state.stageIndex, 1);
  assert.equal(promoted.state.stageStartedAtMs, T0 + 62_000);
  ev = evaluate(promoted.state, healthy, T0 + 72_000);
  assert.equal(ev.decision.decision, 'complete');
});

test('pause holds (but still rolls back on a breach), resume continues, abort sends V2 to 0, retry restarts the stage', () => {
  const s = started();
  const paused = command(s, 'pause', T0 + 1000);
  assert.ok(paused.accepted);
  assert.equal(paused.state.status, 'paused');
  assert.equal(targetPercentage(paused.state), 10, 'pausing keeps the split');
  const held = evaluate(paused.state, healthy, T0 + 120_000);
  assert.equal(held.decision.decision, 'hold');
  assert.equal(held.decision.code, 'paused');
  assert.equal(held.state.stageIndex, 0);
  assert.equal(evaluate(paused.state, figures({ errors: 900 }), T0 + 2000).state.status, 'rolled-back');
  assert.equal(command(paused.state, 'pause', T0 + 2000).accepted, false);

  const resumed = command(held.state, 'resume', T0 + 121_000);
  assert.ok(resumed.accepted);
  assert.equal(resumed.state.status, 'running');
  assert.equal(evaluate(resumed.state, healthy, T0 + 122_000).decision.decision, 'advance');

  const aborted = command(resumed.state, 'abort', T0 + 123_000);
  assert.ok(aborted.accepted);
  assert.equal(aborted.state.status, 'aborted');
  assert.equal(aborted.state.rollback?.cause, 'abort');
  assert.equal(targetPercentage(aborted.state), 0);
  assert.equal(evaluate(aborted.state, healthy, T0 + 500_000).decision.decision, 'none');
  assert.equal(command(aborted.state, 'resume', T0 + 124_000).accepted, false);

  const retried = command(aborted.state, 'retry', T0 + 130_000);
  assert.ok(retried.accepted);
  assert.equal(retried.state.status, 'running');
  assert.equal(retried.state.stageIndex, 0);
  assert.equal(retried.state.stageStartedAtMs, T0 + 130_000);
  assert.equal(targetPercentage(retried.state), 10);

  // A second start while one runs is refused, and says so in the history.
  const twice = applyCommand(
    retried.state,
    { command: 'start', at: T0, by: 'op', stages: retried.state.stages },
    T0 + 131_000,
    '9',
  );
  assert.equal(twice.accepted, false);
  assert.match(twice.state.history.at(-1)?.reason ?? '', /refused: a rollout is running/);
  assert.equal(twice.state.lastCommandOffset, '9');
  assert.equal(command(idleState(), 'abort', T0).accepted, false);
});

test('the state survives a JSON round trip through the control-topic encoding, and bad records are named', () => {
  let s = started('10:1s,50:1s:gate,100:1s');
  s = evaluate(s, tooFew, T0 + 5000).state;
  s = evaluate(s, healthy, T0 + 6000).state;
  s = evaluate(s, healthy, T0 + 8000).state;
  s = command(s, 'pause', T0 + 9000).state;
  s = evaluate(s, figures({ errors: 999 }), T0 + 10_000).state;
  assert.equal(s.status, 'rolled-back');
  const back = parseRolloutState(encodeRolloutState(s));
  assert.deepEqual(back, s);
  assert.deepEqual(evaluate(back, healthy, T0 + 11_000), evaluate(s, healthy, T0 + 11_000));
  assert.deepEqual(parseRolloutState(encodeRolloutState(idleState())), idleState());

  assert.throws(() => parseRolloutState('{"version":1'), { code: 'INVALID_JSON' });
  assert.throws(() => parseRolloutState(JSON.stringify({ ...s, status: 'sleeping' })), {
    code: 'INVALID_CONFIG',
    message: /status/,
  });
  assert.throws(() => parseRolloutState(JSON.stringify({ ...s, stageIndex: 7 })), { message: /stageIndex/ });
  assert.throws(() => parseRolloutCommand(JSON.stringify({ command: 'start', at: 1, by: 'x' })), {
    message: /stages: a start command needs its stages/,
  });
  assert.equal(parseRolloutCommand(JSON.stringify({ command: 'abort', at: 1, by: 'x' })).command, 'abort');
  assert.ok(formatRolloutStatus(s, T0 + 12_000).includes('rolled-back'));
});

test('stage lists: --stages notation, config defaults, rising percentages', () => {
  assert.deepEqual(parseStageSpec('10:60s, 50:5m:gate,100:1500'), [
    { percentage: 10, minDurationMs: 60_000, manualGate: false },
    { percentage: 50, minDurationMs: 300_000, manualGate: true },
    { percentage: 100, minDurationMs: 1500, manualGate: false },
  ]);
  assert.throws(() => parseStageSpec('10:60s,abc:1s'), { code: 'INVALID_CONFIG', message: /item 2 'abc:1s'/ });
  assert.throws(() => parseStageSpec('10:soon'), /duration/);
  assert.throws(() => parseStageSpec('10:1s:later'), /:gate/);
  assert.throws(() => resolveStages(parseStageSpec('50:1s,10:1s'), CRITERIA), /must raise the percentage/);
  assert.throws(() => resolveStages([], CRITERIA), /at least one stage/);

  const config = loadConfig({ env: {} });
  const plan = resolveStages(config.rollout.stages, config.rollout.criteria);
  assert.deepEqual(
    plan.map((s) => s.percentage),
    DEFAULTS.rollout.stages.map((s) => s.percentage),
  );
  assert.equal(plan[2]?.manualGate, true);
  assert.equal(loadConfig({ env: { TAPIO_ROLLOUT__EVALUATEINTERVALMS: '500' } }).rollout.evaluateIntervalMs, 500);
});

test('routing change: stage percentage, 0 % and a forced breaker on rollback, breaker released on retry', () => {
  const base = { ...defaultRoutingConfig(loadConfig({ env: {} })), strategy: 'percentage' as const, v2Percentage: 0 };
  const s = started();
  assert.deepEqual(routingChange(s, base, { forceBreaker: true, releaseBreaker: false }), {
    strategy: 'progressive',
    v2Percentage: 10,
  });
  const inForce = { ...base, strategy: 'progressive' as const, v2Percentage: 10 };
  assert.equal(routingChange(s, inForce, { forceBreaker: true, releaseBreaker: false }), null);
  const rolled = evaluate(s, figures({ errors: 999 }), T0 + 1000).state;
  assert.deepEqual(routingChange(rolled, inForce, { forceBreaker: true, releaseBreaker: false }), {
    strategy: 'progressive',
    v2Percentage: 0,
    breaker: { mode: 'forced-open' },
  });
  assert.deepEqual(routingChange(rolled, inForce, { forceBreaker: false, releaseBreaker: false }), {
    strategy: 'progressive',
    v2Percentage: 0,
  });
  const forced = { ...base, v2Percentage: 0, breaker: { ...base.breaker, mode: 'forced-open' as const } };
  const retried = command(rolled, 'retry', T0 + 2000).state;
  assert.deepEqual(routingChange(retried, forced, { forceBreaker: true, releaseBreaker: true }), {
    strategy: 'progressive',
    v2Percentage: 10,
    breaker: { mode: 'auto' },
  });
  assert.equal(routingChange(idleState(), base, { forceBreaker: true, releaseBreaker: true }), null);

  // The defaults pin `resource` to V2 by feature flag: only the forced breaker takes it back.
  const split = categorySplit({ ...base, strategy: 'progressive', v2Percentage: 0 });
  assert.deepEqual(
    split.map((c) => [c.category, c.v2Percentage]),
    [
      ['resource', 100],
      ['performance', 0],
      ['reliability', 0],
      ['network', 0],
      ['storage', 0],
    ],
  );
  assert.ok(categorySplit(forced).every((c) => c.v2Percentage === 0));
});

const snap = (instance: string, at: number, calls: number, errors: number, lag = 0): HealthSnapshot => ({
  engine: 'v2',
  instance,
  at,
  calls,
  errors,
  slowCalls: 0,
  lag,
});

test('the snapshot window: V2 figures since the stage start, comparator totals as increases, pruning', () => {
  const w = new SnapshotWindow(10_000);
  w.addHealth(snap('a', T0, 100, 0, 5), T0);
  w.addHealth({ ...snap('v1', T0, 500, 0, 7), engine: 'v1' }, T0 + 100);
  w.addHealth(snap('a', T0 + 1000, 100, 50, 20), T0 + 1000);
  w.addHealth(snap('b', T0 + 1000, 100, 0, 30), T0 + 1100);
  w.addComparison('comparator', { matched: 1000, missing: 0, extra: 0, differing: 0 }, T0 + 200);
  w.addComparison('comparator', { matched: 1090, missing: 5, extra: 5, differing: 0 }, T0 + 1200);

  const f = w.figures(T0 + 500, T0 + 2000);
  assert.equal(f.v2.snapshots, 2);
  assert.equal(f.v2.calls, 200);
  assert.equal(f.v2.errors, 50);
  assert.equal(f.v2.instances, 2);
  assert.equal(f.v2.lag, 30);
  assert.deepEqual(f.comparison, { matched: 90, missing: 5, extra: 5, differing: 0, compared: 100, mismatches: 10 });
  assert.equal(w.engine('v1', 0, T0 + 2000).calls, 500);

  // A comparator restart counts from zero rather than going negative.
  w.addComparison('comparator', { matched: 10, missing: 1, extra: 0, differing: 0 }, T0 + 1500);
  assert.equal(w.comparison(T0 + 500, T0 + 2000).compared, 11);

  w.prune(T0 + 10_500);
  const later = w.figures(0, T0 + 10_500);
  assert.equal(later.v2.calls, 200, 'the snapshot at T0 fell out of the window');
  assert.equal(later.v2.snapshots, 2);
});
