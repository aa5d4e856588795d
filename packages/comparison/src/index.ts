/**
 * Shadow comparison: V1 primary results joined with V2 shadow results by
 * (ruleId, entityKey, triggerEventId) — the inputs of the result id (RULES.md), so a pair is two
 * engines' verdicts on the same trigger. Pure logic, clock passed in, so the comparator service and
 * `tapio compare` share it and unit tests drive it without servers.
 */
import type { Result } from '@tapio/events';

export type ComparisonKind = 'match' | 'missing_in_v2' | 'extra_in_v2' | 'differing';
export const COMPARISON_KINDS: readonly ComparisonKind[] = ['match', 'missing_in_v2', 'extra_in_v2', 'differing'];

/** The fields whose disagreement makes a pair `differing`. */
export type ComparedField = 'severity' | 'confidence' | 'evidence';

export interface Comparison {
  readonly kind: ComparisonKind;
  readonly ruleId: string;
  /** `<ruleId>|<entityKey>|<triggerEventId>`. */
  readonly joinKey: string;
  readonly primary?: Result;
  readonly shadow?: Result;
  /** Non-empty exactly when kind is `differing`. */
  readonly differingFields: readonly ComparedField[];
}

export function joinKeyOf(r: Pick<Result, 'ruleId' | 'entityKey' | 'triggerEventId'>): string {
  return `${r.ruleId}|${r.entityKey}|${r.triggerEventId}`;
}

/** Confidence is rounded to 4 decimals by both engines; anything below that is float noise. */
const CONFIDENCE_TOLERANCE = 5e-5;

/** The compared fields on which two results of the same trigger disagree, in a fixed order. */
export function differingFields(primary: Result, shadow: Result): ComparedField[] {
  const out: ComparedField[] = [];
  if (primary.severity !== shadow.severity) out.push('severity');
  if (Math.abs(primary.confidence - shadow.confidence) > CONFIDENCE_TOLERANCE) out.push('confidence');
  const a = primary.evidence;
  const b = shadow.evidence;
  if (a.length !== b.length || a.some((id, i) => id !== b[i])) out.push('evidence');
  return out;
}

/** Classifies a joined pair. */
export function classifyPair(primary: Result, shadow: Result): Comparison {
  const fields = differingFields(primary, shadow);
  return {
    kind: fields.length === 0 ? 'match' : 'differing',
    ruleId: primary.ruleId,
    joinKey: joinKeyOf(primary),
    primary,
    shadow,
    differingFields: fields,
  };
}

/** Only V1 results on the primary side have a shadow counterpart (V2-primary keys are not shadowed). */
export function isComparablePrimary(r: Pick<Result, 'engine'>): boolean {
  return r.engine === 'v1';
}

interface Pending {
  readonly side: 'primary' | 'shadow';
  readonly result: Result;
  readonly arrivedAtMs: number;
}

export interface ResultJoinerOptions {
  /** How long one side waits for the other (wall clock) before it is classified unpaired. */
  windowMs: number;
}

export interface JoinerStats {
  pendingPrimary: number;
  pendingShadow: number;
  /** Primary results not compared: their engine is not v1, or their key was not shadowed (warm). */
  skippedPrimary: number;
  /** Second copies of a result already waiting or already classified within the window. */
  redeliveries: number;
}

/**
 * Windowed join of the two streams. `addPrimary`/`addShadow` return the comparison when the
 * arrival completes a pair; `expire(now)` returns the unpaired results older than the window.
 * A completed key is remembered for one window so that a redelivered copy is not reported as
 * missing or extra.
 */
export class ResultJoiner {
  private readonly windowMs: number;
  /** Insertion order = arrival order, so expiry scans stop at the first young entry. */
  private readonly pending = new Map<string, Pending>();
  private readonly completed = new Map<string, number>();
  private skippedPrimary = 0;
  private redeliveries = 0;
  private pendingPrimary = 0;

  constructor(options: ResultJoinerOptions) {
    if (!(options.windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${options.windowMs}`);
    this.windowMs = options.windowMs;
  }

  /**
   * `shadowed`: whether a shadow counterpart is expected at all (the comparator service reads it from
   * the result's `tapio-compared` header; offline comparisons of two complete runs pass true).
   */
  addPrimary(result: Result, nowMs: number, shadowed = true): Comparison | undefined {
    if (!shadowed || !isComparablePrimary(result)) {
      this.skippedPrimary++;
      return undefined;
    }
    return this.add('primary', result, nowMs);
  }

  addShadow(result: Result, nowMs: number): Comparison | undefined {
    return this.add('shadow', result, nowMs);
  }

  /** Classifies every result that has waited longer than the window. */
  expire(nowMs: number): Comparison[] {
    const out: Comparison[] = [];
    for (const [key, p] of this.pending) {
      if (nowMs - p.arrivedAtMs < this.windowMs) break;
      this.pending.delete(key);
      if (p.side === 'primary') this.pendingPrimary--;
      out.push(unpaired(key, p));
    }
    for (const [key, at] of this.completed) {
      if (nowMs - at < this.windowMs) break;
      this.completed.delete(key);
    }
    return out;
  }

  /** Classifies everything still waiting (end of input, as in `tapio compare`). */
  flush(): Comparison[] {
    const out = [...this.pending].map(([key, p]) => unpaired(key, p));
    this.pending.clear();
    this.pendingPrimary = 0;
    return out;
  }

  get stats(): JoinerStats {
    return {
      pendingPrimary: this.pendingPrimary,
      pendingShadow: this.pending.size - this.pendingPrimary,
      skippedPrimary: this.skippedPrimary,
      redeliveries: this.redeliveries,
    };
  }

  private add(side: 'primary' | 'shadow', result: Result, nowMs: number): Comparison | undefined {
    const key = joinKeyOf(result);
    if (this.completed.has(key)) {
      this.redeliveries++;
      return undefined;
    }
    const waiting = this.pending.get(key);
    if (waiting === undefined) {
      this.pending.set(key, { side, result, arrivedAtMs: nowMs });
      if (side === 'primary') this.pendingPrimary++;
      return undefined;
    }
    if (waiting.side === side) {
      this.redeliveries++;
      return undefined;
    }
    this.pending.delete(key);
    if (waiting.side === 'primary') this.pendingPrimary--;
    this.completed.delete(key);
    this.completed.set(key, nowMs);
    return side === 'primary' ? classifyPair(result, waiting.result) : classifyPair(waiting.result, result);
  }
}

function unpaired(joinKey: string, p: Pending): Comparison {
  return p.side === 'primary'
    ? { kind: 'missing_in_v2', ruleId: p.result.ruleId, joinKey, primary: p.result, differingFields: [] }
    : { kind: 'extra_in_v2', ruleId: p.result.ruleId, joinKey, shadow: p.result, differingFields: [] };
}

/** Compares two complete sets at once (offline, e.g. `tapio compare` over two files). */
export function compareResultSets(primary: Iterable<Result>, shadow: Iterable<Result>): Comparison[] {
  const joiner = new ResultJoiner({ windowMs: Number.MAX_SAFE_INTEGER });
  const out: Comparison[] = [];
  for (const r of primary) {
    const c = joiner.addPrimary(r, 0);
    if (c) out.push(c);
  }
  for (const r of shadow) {
    const c = joiner.addShadow(r, 0);
    if (c) out.push(c);
  }
  out.push(...joiner.flush());
  return out;
}

export interface KindCounts {
  matched: number;
  missing: number;
  extra: number;
  differing: number;
}

/** The `tapio.health` record of the comparator (ARCHITECTURE.md: engines' periodic snapshots). */
export interface ComparisonSnapshot extends KindCounts {
  kind: 'comparison';
  /** ISO time of the snapshot. */
  at: string;
  byRule: Record<string, KindCounts>;
}

const emptyCounts = (): KindCounts => ({ matched: 0, missing: 0, extra: 0, differing: 0 });

const FIELD_OF: Record<ComparisonKind, keyof KindCounts> = {
  match: 'matched',
  missing_in_v2: 'missing',
  extra_in_v2: 'extra',
  differing: 'differing',
};

/** Running totals since start, overall and per rule. */
export class ComparisonTally {
  private readonly totals = emptyCounts();
  private readonly byRule = new Map<string, KindCounts>();

  add(c: Comparison): void {
    const field = FIELD_OF[c.kind];
    this.totals[field]++;
    let rule = this.byRule.get(c.ruleId);
    if (rule === undefined) {
      rule = emptyCounts();
      this.byRule.set(c.ruleId, rule);
    }
    rule[field]++;
  }

  snapshot(atMs: number): ComparisonSnapshot {
    const byRule: Record<string, KindCounts> = {};
    for (const [ruleId, counts] of [...this.byRule].sort(([a], [b]) => a.localeCompare(b)))
      byRule[ruleId] = { ...counts };
    return { kind: 'comparison', at: new Date(atMs).toISOString(), ...this.totals, byRule };
  }
}

export { compareIncidents } from './incidents';
export type {
  IncidentComparison,
  IncidentDifference,
  IncidentDifferenceKind,
  IncidentResult,
  IncidentTally,
} from './incidents';
