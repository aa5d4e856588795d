import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareIncidents } from '@tapio/comparison';
import type { IncidentTally } from '@tapio/comparison';
import { makeResult } from '../../helpers/results-builder';

const T = 1_767_225_600_000;

const crash = (pod: string, trigger: string, at: number, severity = 'high') =>
  makeResult('crash-loop', `pod/shop/${pod}`, trigger, { triggeredAt: at, severity });
const disk = (node: string, trigger: string, at: number, severity = 'high') =>
  makeResult('disk-pressure', `node/${node}`, trigger, { triggeredAt: at, severity });

function counts(t: IncidentTally | undefined) {
  if (t === undefined) return undefined;
  const { ruleId: _r, ...rest } = t;
  return rest;
}

test('equal multisets in another order are equal, tallied per rule', () => {
  const expected = [crash('a', 'e1', T), crash('b', 'e2', T + 1000), disk('n1', 'e3', T + 2000, 'critical')];
  const c = compareIncidents(expected, [...expected].reverse());
  assert.equal(c.equal, true);
  assert.deepEqual(c.differences, []);
  assert.deepEqual(
    c.rules.map((r) => [r.ruleId, r.expected, r.found, r.matched]),
    [
      ['crash-loop', 2, 2, 2],
      ['disk-pressure', 1, 1, 1],
    ],
  );
  assert.equal(c.total.matched, 3);
});

test('an incident the pipeline did not find is missing, one it found beyond the replay is extra', () => {
  const c = compareIncidents(
    [crash('a', 'e1', T), disk('n1', 'e3', T + 5000)],
    [crash('a', 'e1', T), crash('z', 'e9', T + 3000, 'critical')],
  );
  assert.equal(c.equal, false);
  assert.deepEqual(c.differences, [
    {
      kind: 'extra',
      ruleId: 'crash-loop',
      entityKey: 'pod/shop/z',
      triggeredAt: T + 3000,
      foundSeverity: 'critical',
      triggerEventId: 'e9',
    },
    {
      kind: 'missing',
      ruleId: 'disk-pressure',
      entityKey: 'node/n1',
      triggeredAt: T + 5000,
      expectedSeverity: 'high',
      triggerEventId: 'e3',
    },
  ]);
  const crashLoop = c.rules.find((r) => r.ruleId === 'crash-loop');
  assert.deepEqual(counts(crashLoop), {
    expected: 1,
    found: 2,
    matched: 1,
    missing: 0,
    extra: 1,
    differing: 0,
    duplicates: 0,
    expectedDuplicates: 0,
    otherTrigger: 0,
  });
  assert.equal(c.rules.find((r) => r.ruleId === 'disk-pressure')?.missing, 1);
  assert.deepEqual([c.total.missing, c.total.extra, c.total.differing], [1, 1, 0]);
});

test('the same rule, key and moment with another severity is one differing pair, not a missing and an extra', () => {
  const c = compareIncidents([crash('a', 'e1', T, 'high')], [crash('a', 'e1', T, 'critical')]);
  assert.equal(c.equal, false);
  assert.deepEqual(
    c.differences.map((d) => [d.kind, d.expectedSeverity, d.foundSeverity]),
    [['differing', 'high', 'critical']],
  );
  assert.deepEqual([c.total.missing, c.total.extra, c.total.differing, c.total.matched], [0, 0, 1, 0]);
});

test('redeliveries of one result id collapse and are counted as duplicates, not as a difference', () => {
  const r = crash('a', 'e1', T);
  const c = compareIncidents([r], [r, { ...r }, { ...r, engine: 'v2' }]);
  assert.equal(c.equal, true);
  assert.equal(c.total.duplicates, 2);
  assert.equal(c.total.found, 1);
  assert.equal(c.total.matched, 1);
});

test('incidents are a multiset: a second result for the same incident with another trigger is extra', () => {
  // Two distinct result ids (two triggers) with the same (ruleId, entityKey, triggeredAt, severity).
  const c = compareIncidents([crash('a', 'e1', T)], [crash('a', 'e1', T), crash('a', 'e1b', T)]);
  assert.equal(c.equal, false);
  assert.deepEqual(
    c.differences.map((d) => [d.kind, d.entityKey, d.triggeredAt]),
    [['extra', 'pod/shop/a', T]],
  );
  assert.equal(c.total.duplicates, 0);
});

test('equal timestamps: the same incident with another trigger event matches, counted as other trigger', () => {
  const c = compareIncidents(
    [crash('a', 'e1', T), disk('n1', 'd1', T)],
    [crash('a', 'e1-twin', T), disk('n1', 'd1', T)],
  );
  assert.equal(c.equal, true);
  assert.equal(c.total.matched, 2);
  assert.equal(c.total.otherTrigger, 1);
  assert.equal(c.rules.find((r) => r.ruleId === 'crash-loop')?.otherTrigger, 1);
});

test('one moment with several results pairs equal severities first, then differing, then the rest', () => {
  const c = compareIncidents(
    [crash('a', 'x1', T, 'high'), crash('a', 'x2', T, 'high')],
    [crash('a', 'y1', T, 'high'), crash('a', 'y2', T, 'critical'), crash('a', 'y3', T, 'critical')],
  );
  assert.deepEqual([c.total.matched, c.total.differing, c.total.extra, c.total.missing], [1, 1, 1, 0]);
  assert.deepEqual(
    c.differences.map((d) => d.kind),
    ['extra', 'differing'],
  );
});

test('differences are ordered by time, then rule and key', () => {
  const c = compareIncidents(
    [disk('n2', 'd2', T + 10), crash('b', 'e2', T + 10), crash('a', 'e1', T + 10), disk('n1', 'd1', T)],
    [],
  );
  assert.deepEqual(
    c.differences.map((d) => `${d.triggeredAt - T} ${d.ruleId} ${d.entityKey}`),
    ['0 disk-pressure node/n1', '10 crash-loop pod/shop/a', '10 crash-loop pod/shop/b', '10 disk-pressure node/n2'],
  );
  assert.equal(c.total.missing, 4);
  assert.equal(c.total.expected, 4);
});

test('nothing on either side is equal', () => {
  const c = compareIncidents([], []);
  assert.equal(c.equal, true);
  assert.deepEqual(c.rules, []);
});
