/**
 * The controller's sliding window over the health topic: the engines' health snapshots (counts per
 * reporting interval) and the comparator's snapshots (running totals since the comparator started).
 * Times are the controller's receive times, so that the window and the stage start share one clock.
 */
import type { HealthSnapshot } from '@tapio/routing';

/** The comparator's counts (packages/comparison `ComparisonSnapshot`, without `byRule`). */
export interface ComparisonCounts {
  matched: number;
  missing: number;
  extra: number;
  differing: number;
}

/** What the criteria are judged on: V2's snapshots and the comparator's increase over a span. */
export interface Figures {
  fromMs: number;
  toMs: number;
  v2: EngineFigures;
  comparison: ComparisonCounts & { compared: number; mismatches: number };
}

export interface EngineFigures {
  snapshots: number;
  instances: number;
  calls: number;
  errors: number;
  slowCalls: number;
  /** Calls per second over the span. */
  ratePerSec: number;
  /** The highest of the instances' latest lag reports; null without snapshots. */
  lag: number | null;
}

interface Received<T> {
  atMs: number;
  value: T;
}

const ZERO: ComparisonCounts = { matched: 0, missing: 0, extra: 0, differing: 0 };

/** Reads a health-topic record's JSON as comparator counts, or undefined when it is not a comparison snapshot. */
export function comparisonCountsOf(value: unknown): ComparisonCounts | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v['kind'] !== 'comparison') return undefined;
  const n = (k: keyof ComparisonCounts): number | undefined => {
    const x = v[k];
    return typeof x === 'number' && Number.isInteger(x) && x >= 0 ? x : undefined;
  };
  const matched = n('matched');
  const missing = n('missing');
  const extra = n('extra');
  const differing = n('differing');
  if (matched === undefined || missing === undefined || extra === undefined || differing === undefined)
    return undefined;
  return { matched, missing, extra, differing };
}

export class SnapshotWindow {
  private readonly health: Received<HealthSnapshot>[] = [];
  private readonly comparisons = new Map<string, Received<ComparisonCounts>[]>();

  constructor(readonly windowMs: number) {}

  addHealth(snapshot: HealthSnapshot, receivedAtMs: number): void {
    this.health.push({ atMs: receivedAtMs, value: snapshot });
  }

  /** `source`: the record key (the comparator instance), since each one keeps its own totals. */
  addComparison(source: string, counts: ComparisonCounts, receivedAtMs: number): void {
    let list = this.comparisons.get(source);
    if (list === undefined) this.comparisons.set(source, (list = []));
    list.push({ atMs: receivedAtMs, value: counts });
  }

  /** Drops what fell out of the window (keeping one comparison snapshot before it as the baseline). */
  prune(nowMs: number): void {
    const cutoff = nowMs - this.windowMs;
    let drop = 0;
    while (drop < this.health.length && (this.health[drop] as Received<HealthSnapshot>).atMs < cutoff) drop++;
    if (drop > 0) this.health.splice(0, drop);
    for (const [source, list] of this.comparisons) {
      let k = 0;
      while (k + 1 < list.length && (list[k + 1] as Received<ComparisonCounts>).atMs < cutoff) k++;
      if (k > 0) list.splice(0, k);
      // A comparator that stopped reporting a whole window ago says nothing about now.
      const last = list[list.length - 1];
      if (last === undefined || last.atMs < cutoff - this.windowMs) this.comparisons.delete(source);
    }
  }

  /** One engine's figures over [max(sinceMs, now - window), now]. */
  engine(engine: 'v1' | 'v2', sinceMs: number, nowMs: number): EngineFigures {
    const fromMs = Math.max(sinceMs, nowMs - this.windowMs);
    const latestLag = new Map<string, number>();
    const f: EngineFigures = {
      snapshots: 0,
      instances: 0,
      calls: 0,
      errors: 0,
      slowCalls: 0,
      ratePerSec: 0,
      lag: null,
    };
    for (const { atMs, value } of this.health) {
      if (atMs < fromMs || atMs > nowMs || value.engine !== engine) continue;
      f.snapshots++;
      f.calls += value.calls;
      f.errors += value.errors;
      f.slowCalls += value.slowCalls;
      latestLag.set(value.instance, value.lag);
    }
    f.instances = latestLag.size;
    // Every instance of a group reports the group's lag, so the highest report is the group's lag.
    if (latestLag.size > 0) f.lag = Math.max(...latestLag.values());
    const spanS = Math.max(1, nowMs - fromMs) / 1000;
    f.ratePerSec = f.calls / spanS;
    return f;
  }

  /** The comparators' increase over [max(sinceMs, now - window), now]; a comparator restart counts from zero. */
  comparison(sinceMs: number, nowMs: number): Figures['comparison'] {
    const fromMs = Math.max(sinceMs, nowMs - this.windowMs);
    const sum = { ...ZERO };
    for (const list of this.comparisons.values()) {
      let baseline: ComparisonCounts | undefined;
      let latest: ComparisonCounts | undefined;
      for (const { atMs, value } of list) {
        if (atMs > nowMs) break;
        if (atMs < fromMs) baseline = value;
        else {
          // Nothing before the span (the controller just started): the first snapshot in it is the baseline.
          baseline ??= value;
          latest = value;
        }
      }
      if (baseline === undefined || latest === undefined) continue;
      const base = baseline;
      const reset = (Object.keys(ZERO) as (keyof ComparisonCounts)[]).some((k) => latest[k] < base[k]);
      for (const k of Object.keys(ZERO) as (keyof ComparisonCounts)[]) {
        sum[k] += reset ? latest[k] : latest[k] - base[k];
      }
    }
    const mismatches = sum.missing + sum.extra + sum.differing;
    return { ...sum, compared: sum.matched + mismatches, mismatches };
  }

  figures(sinceMs: number, nowMs: number): Figures {
    return {
      fromMs: Math.max(sinceMs, nowMs - this.windowMs),
      toMs: nowMs,
      v2: this.engine('v2', sinceMs, nowMs),
      comparison: this.comparison(sinceMs, nowMs),
    };
  }
}
