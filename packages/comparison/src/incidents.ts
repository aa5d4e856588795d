/**
 * Live pipeline against `tapio replay` (ARCHITECTURE.md, "Pipeline guarantees"): the two must agree
 * incident for incident, an incident being (ruleId, entityKey, triggeredAt, severity), compared as a
 * multiset. Trigger ids and evidence are not compared: they may differ between events with equal
 * timestamps, and a matched incident's triggeredAt is equal on both sides by construction.
 *
 * Procedure, per side: results with the same id are one result delivered again (the id is a hash of
 * rule, key and trigger: RULES.md), so they collapse to one and are counted as duplicates, never as a
 * difference. Then equal incidents pair off; what remains of a (ruleId, entityKey, triggeredAt) on
 * both sides pairs off as `differing` (same moment, other severity); the rest is `missing` (expected,
 * not found) or `extra` (found, not expected).
 */
import type { Result } from '@tapio/events';

export type IncidentResult = Pick<
  Result,
  'id' | 'ruleId' | 'entityKey' | 'triggeredAt' | 'severity' | 'triggerEventId'
>;

export interface IncidentTally {
  ruleId: string;
  /** Distinct results (by id) on each side. */
  expected: number;
  found: number;
  matched: number;
  missing: number;
  extra: number;
  differing: number;
  /** Extra copies of a result id, collapsed before comparing. */
  duplicates: number;
  expectedDuplicates: number;
  /** Matched incidents whose trigger event differs (allowed: equal timestamps). */
  otherTrigger: number;
}

export type IncidentDifferenceKind = 'missing' | 'extra' | 'differing';

export interface IncidentDifference {
  kind: IncidentDifferenceKind;
  ruleId: string;
  entityKey: string;
  triggeredAt: number;
  /** Absent for `extra`. */
  expectedSeverity?: string;
  /** Absent for `missing`. */
  foundSeverity?: string;
  /** A trigger event id of the side(s) that have the incident, to find it in the input. */
  triggerEventId: string;
}

export interface IncidentComparison {
  equal: boolean;
  /** One tally per rule seen on either side, sorted by rule id. */
  rules: IncidentTally[];
  total: IncidentTally;
  /** Every difference, ordered by triggeredAt, then rule, key and kind. */
  differences: IncidentDifference[];
}

const SEP = '\u0000';

function emptyTally(ruleId: string): IncidentTally {
  return {
    ruleId,
    expected: 0,
    found: 0,
    matched: 0,
    missing: 0,
    extra: 0,
    differing: 0,
    duplicates: 0,
    expectedDuplicates: 0,
    otherTrigger: 0,
  };
}

/** Distinct results by id, and how many extra copies there were per rule. */
function collapse(results: Iterable<IncidentResult>): { distinct: IncidentResult[]; copies: Map<string, number> } {
  const seen = new Set<string>();
  const distinct: IncidentResult[] = [];
  const copies = new Map<string, number>();
  for (const r of results) {
    if (seen.has(r.id)) {
      copies.set(r.ruleId, (copies.get(r.ruleId) ?? 0) + 1);
      continue;
    }
    seen.add(r.id);
    distinct.push(r);
  }
  return { distinct, copies };
}

interface Moment {
  ruleId: string;
  bySeverity: Map<string, IncidentResult[]>;
}

/** Groups by (ruleId, entityKey, triggeredAt), then by severity, keeping each result. */
function byMoment(results: readonly IncidentResult[]): Map<string, Moment> {
  const out = new Map<string, Moment>();
  for (const r of results) {
    const key = `${r.ruleId}${SEP}${r.entityKey}${SEP}${r.triggeredAt}`;
    let moment = out.get(key);
    if (moment === undefined) out.set(key, (moment = { ruleId: r.ruleId, bySeverity: new Map() }));
    const severities = moment.bySeverity;
    const list = severities.get(r.severity);
    if (list === undefined) severities.set(r.severity, [r]);
    else list.push(r);
  }
  return out;
}

const KIND_ORDER: Record<IncidentDifferenceKind, number> = { missing: 0, extra: 1, differing: 2 };

/** Compares what the pipeline found with what the replay expects (see the module comment). */
export function compareIncidents(
  expected: Iterable<IncidentResult>,
  found: Iterable<IncidentResult>,
): IncidentComparison {
  const tallies = new Map<string, IncidentTally>();
  const tally = (ruleId: string): IncidentTally => {
    let t = tallies.get(ruleId);
    if (t === undefined) tallies.set(ruleId, (t = emptyTally(ruleId)));
    return t;
  };
  const want = collapse(expected);
  const got = collapse(found);
  for (const r of want.distinct) tally(r.ruleId).expected++;
  for (const r of got.distinct) tally(r.ruleId).found++;
  for (const [rule, n] of want.copies) tally(rule).expectedDuplicates += n;
  for (const [rule, n] of got.copies) tally(rule).duplicates += n;

  const differences: IncidentDifference[] = [];
  const wantByMoment = byMoment(want.distinct);
  const gotByMoment = byMoment(got.distinct);
  for (const key of new Set([...wantByMoment.keys(), ...gotByMoment.keys()])) {
    const wm = wantByMoment.get(key);
    const gm = gotByMoment.get(key);
    const t = tally((wm ?? gm)?.ruleId ?? '');
    const w = wm?.bySeverity ?? new Map<string, IncidentResult[]>();
    const g = gm?.bySeverity ?? new Map<string, IncidentResult[]>();
    const leftWant: IncidentResult[] = [];
    const leftGot: IncidentResult[] = [];
    for (const severity of new Set([...w.keys(), ...g.keys()])) {
      const a = w.get(severity) ?? [];
      const b = g.get(severity) ?? [];
      const n = Math.min(a.length, b.length);
      t.matched += n;
      const triggers = new Set(a.map((r) => r.triggerEventId));
      t.otherTrigger += b.slice(0, n).filter((r) => !triggers.has(r.triggerEventId)).length;
      leftWant.push(...a.slice(n));
      leftGot.push(...b.slice(n));
    }
    // Same rule, key and moment on both sides but another severity: one differing pair each.
    const pairs = Math.min(leftWant.length, leftGot.length);
    for (let i = 0; i < pairs; i++) {
      const e = leftWant[i] as IncidentResult;
      const f = leftGot[i] as IncidentResult;
      t.differing++;
      differences.push({
        kind: 'differing',
        ruleId: e.ruleId,
        entityKey: e.entityKey,
        triggeredAt: e.triggeredAt,
        expectedSeverity: e.severity,
        foundSeverity: f.severity,
        triggerEventId: f.triggerEventId,
      });
    }
    for (const e of leftWant.slice(pairs)) {
      t.missing++;
      differences.push({
        kind: 'missing',
        ruleId: e.ruleId,
        entityKey: e.entityKey,
        triggeredAt: e.triggeredAt,
        expectedSeverity: e.severity,
        triggerEventId: e.triggerEventId,
      });
    }
    for (const f of leftGot.slice(pairs)) {
      t.extra++;
      differences.push({
        kind: 'extra',
        ruleId: f.ruleId,
        entityKey: f.entityKey,
        triggeredAt: f.triggeredAt,
        foundSeverity: f.severity,
        triggerEventId: f.triggerEventId,
      });
    }
  }
  differences.sort(
    (a, b) =>
      a.triggeredAt - b.triggeredAt ||
      a.ruleId.localeCompare(b.ruleId) ||
      a.entityKey.localeCompare(b.entityKey) ||
      KIND_ORDER[a.kind] - KIND_ORDER[b.kind],
  );
  const rules = [...tallies.values()].sort((a, b) => a.ruleId.localeCompare(b.ruleId));
  const total = emptyTally('total');
  for (const t of rules) {
    for (const k of Object.keys(total) as (keyof IncidentTally)[]) {
      if (k !== 'ruleId') total[k] += t[k];
    }
  }
  return { equal: differences.length === 0, rules, total, differences };
}
