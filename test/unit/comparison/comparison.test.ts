import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ComparisonTally, ResultJoiner, classifyPair, compareResultSets, differingFields } from '@tapio/comparison';
import { makeResult } from '../../helpers/results-builder';

const v2 = (r: ReturnType<typeof makeResult>, o: Partial<ReturnType<typeof makeResult>> = {}) => ({
  ...r,
  engine: 'v2',
  ...o,
});

test('a crafted set of primary and shadow results is classified kind by kind', () => {
  const match = makeResult('crash-loop', 'pod/shop/a', 'e1', { evidence: ['e0', 'e1'] });
  const sev = makeResult('crash-loop', 'pod/shop/b', 'e2');
  const allThree = makeResult('dns-failure-storm', 'namespace/shop', 'e3', { evidence: ['x', 'e3'] });
  const missing = makeResult('disk-pressure', 'node/n1', 'e4');
  const extra = makeResult('disk-pressure', 'node/n2', 'e5', { engine: 'v2' });
  const v2Primary = makeResult('memory-leak', 'container/shop/a/app', 'e6', { engine: 'v2' });

  const comparisons = compareResultSets(
    [match, sev, allThree, missing, v2Primary],
    [
      v2(match),
      v2(sev, { severity: 'critical' }),
      v2(allThree, { severity: 'critical', confidence: 0.8, evidence: ['e3'] }),
      extra,
    ],
  );
  const byKey = new Map(comparisons.map((c) => [c.joinKey, c]));
  assert.equal(comparisons.length, 5, 'the v2-primary result is not compared');
  assert.equal(byKey.get('crash-loop|pod/shop/a|e1')?.kind, 'match');
  assert.deepEqual(byKey.get('crash-loop|pod/shop/b|e2')?.differingFields, ['severity']);
  const c3 = byKey.get('dns-failure-storm|namespace/shop|e3');
  assert.equal(c3?.kind, 'differing');
  assert.deepEqual(c3.differingFields, ['severity', 'confidence', 'evidence']);
  assert.equal(c3.primary?.engine, 'v1');
  assert.equal(c3.shadow?.engine, 'v2');
  assert.equal(byKey.get('disk-pressure|node/n1|e4')?.kind, 'missing_in_v2');
  assert.equal(byKey.get('disk-pressure|node/n2|e5')?.kind, 'extra_in_v2');
  assert.equal(byKey.get('memory-leak|container/shop/a/app|e6'), undefined);
});

test('confidence differences below the 4-decimal rounding are not differences; evidence order is', () => {
  const a = makeResult('r', 'k', 't', { confidence: 0.7, evidence: ['a', 'b'] });
  assert.deepEqual(differingFields(a, { ...a, confidence: 0.7 + 1e-12 }), []);
  assert.deepEqual(differingFields(a, { ...a, confidence: 0.7001 }), ['confidence']);
  assert.deepEqual(differingFields(a, { ...a, evidence: ['b', 'a'] }), ['evidence']);
  assert.equal(classifyPair(a, { ...a, engine: 'v2' }).kind, 'match', 'the engine field is not compared');
});

test('the joiner pairs across arrival order, expires by wall clock, and ignores redeliveries', () => {
  const joiner = new ResultJoiner({ windowMs: 1000 });
  const a = makeResult('crash-loop', 'pod/shop/a', 'e1');
  const b = makeResult('crash-loop', 'pod/shop/b', 'e2');
  const c = makeResult('crash-loop', 'pod/shop/c', 'e3');

  assert.equal(joiner.addShadow(v2(a), 0), undefined, 'shadow first waits');
  assert.equal(joiner.addPrimary(b, 100), undefined);
  assert.equal(joiner.addPrimary(b, 150), undefined, 'a redelivered primary is ignored');
  assert.equal(joiner.addPrimary(makeResult('x', 'y', 'z', { engine: 'v2' }), 150), undefined);
  const d = makeResult('crash-loop', 'pod/shop/d', 'e4');
  assert.equal(joiner.addPrimary(d, 160, false), undefined, 'a V1 result of a key not shadowed is skipped');
  const paired = joiner.addPrimary(a, 500);
  assert.equal(paired?.kind, 'match');
  assert.equal(joiner.addShadow(v2(a), 600), undefined, 'a redelivered shadow of a completed pair is ignored');
  assert.deepEqual(joiner.stats, { pendingPrimary: 1, pendingShadow: 0, skippedPrimary: 2, redeliveries: 2 });

  assert.deepEqual(joiner.expire(1099), [], 'b has waited 999 ms');
  const expired = joiner.expire(1100);
  assert.equal(expired.length, 1);
  assert.equal(expired[0]?.kind, 'missing_in_v2');
  assert.equal(expired[0]?.primary?.id, b.id);

  joiner.addShadow(v2(c), 2000);
  const late = joiner.addPrimary(c, 2999);
  assert.equal(late?.kind, 'match', 'a pair inside the window still matches');
  assert.deepEqual(joiner.flush(), []);
  joiner.addShadow(v2(b, { triggerEventId: 'e9' }), 3000);
  assert.deepEqual(
    joiner.flush().map((x) => x.kind),
    ['extra_in_v2'],
  );
});

test('the tally counts overall and per rule, and snapshots as the health record', () => {
  const tally = new ComparisonTally();
  for (const c of compareResultSets(
    [makeResult('r1', 'k', 'a'), makeResult('r1', 'k', 'b'), makeResult('r2', 'k', 'c')],
    [
      v2(makeResult('r1', 'k', 'a')),
      v2(makeResult('r2', 'k', 'c'), { severity: 'critical' }),
      v2(makeResult('r2', 'k', 'd')),
    ],
  )) {
    tally.add(c);
  }
  assert.deepEqual(tally.snapshot(Date.UTC(2025, 0, 1)), {
    kind: 'comparison',
    at: '2025-01-01T00:00:00.000Z',
    matched: 1,
    missing: 1,
    extra: 1,
    differing: 1,
    byRule: {
      r1: { matched: 1, missing: 1, extra: 0, differing: 0 },
      r2: { matched: 0, missing: 0, extra: 1, differing: 1 },
    },
  });
});
