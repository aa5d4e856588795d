/**
 * The V2 circuit breaker (the seed's "Safety Mechanisms" and "Automatic Rollback"): a count-based
 * sliding window over V2's health snapshots. Closed → open when, with at least `minimumCalls` calls
 * in the window, the failure rate or the slow-call rate reaches its threshold; open → half-open
 * after `openMs`; in half-open, `halfOpenTrials` good trial snapshots close it and one bad trial
 * opens it again. `forced-open` and `disabled` pin it open or closed. Pure: time comes in as nowMs.
 */
import type { BreakerSettings } from './config';
import type { BreakerStateName } from './decide';
import type { HealthSnapshot } from './health';

/** `tapio_breaker_state` gauge values. */
export const BREAKER_GAUGE: Readonly<Record<BreakerStateName, number>> = { closed: 0, 'half-open': 1, open: 2 };

interface Counts {
  calls: number;
  errors: number;
  slowCalls: number;
}

export interface BreakerStatus {
  state: BreakerStateName;
  calls: number;
  failureRate: number;
  slowCallRate: number;
  /** When the breaker last opened (ms), or null. */
  openedAtMs: number | null;
  /** Why it last opened. */
  reason: string | null;
}

export class CircuitBreaker {
  private settings: BreakerSettings;
  private window: Counts[] = [];
  private openedAtMs: number | null = null;
  private halfOpen = false;
  private goodTrials = 0;
  private reason: string | null = null;

  constructor(settings: BreakerSettings) {
    this.settings = settings;
  }

  /** New settings from a new routing config; the window and state are kept. */
  configure(settings: BreakerSettings): void {
    this.settings = settings;
    if (this.window.length > settings.windowSize) this.window = this.window.slice(-settings.windowSize);
  }

  /** Feeds one snapshot; only V2's count. */
  record(snapshot: HealthSnapshot, nowMs: number): void {
    if (snapshot.engine !== 'v2' || this.settings.mode !== 'auto') return;
    const counts: Counts = { calls: snapshot.calls, errors: snapshot.errors, slowCalls: snapshot.slowCalls };
    const state = this.state(nowMs);
    if (state === 'open') return;
    if (state === 'half-open') {
      // A snapshot without calls proves nothing either way.
      if (counts.calls === 0) return;
      if (this.bad(counts) !== null) {
        this.open(nowMs, `trial failed: ${this.bad(counts) as string}`);
      } else if (++this.goodTrials >= this.settings.halfOpenTrials) {
        this.halfOpen = false;
        this.openedAtMs = null;
        this.window = [];
      }
      return;
    }
    this.window.push(counts);
    if (this.window.length > this.settings.windowSize) this.window.shift();
    const sum = this.sum();
    if (sum.calls < this.settings.minimumCalls || sum.calls === 0) return;
    const why = this.bad(sum);
    if (why !== null) this.open(nowMs, why);
  }

  state(nowMs: number): BreakerStateName {
    if (this.settings.mode === 'forced-open') return 'open';
    if (this.settings.mode === 'disabled') return 'closed';
    if (this.openedAtMs === null) return 'closed';
    if (this.halfOpen) return 'half-open';
    if (nowMs - this.openedAtMs >= this.settings.openMs) {
      this.halfOpen = true;
      this.goodTrials = 0;
      return 'half-open';
    }
    return 'open';
  }

  status(nowMs: number): BreakerStatus {
    const sum = this.sum();
    return {
      state: this.state(nowMs),
      calls: sum.calls,
      failureRate: sum.calls === 0 ? 0 : sum.errors / sum.calls,
      slowCallRate: sum.calls === 0 ? 0 : sum.slowCalls / sum.calls,
      openedAtMs: this.openedAtMs,
      reason: this.reason,
    };
  }

  private open(nowMs: number, reason: string): void {
    this.openedAtMs = nowMs;
    this.halfOpen = false;
    this.goodTrials = 0;
    this.window = [];
    this.reason = reason;
  }

  private bad(c: Counts): string | null {
    if (c.calls === 0) return null;
    const failureRate = c.errors / c.calls;
    if (failureRate >= this.settings.failureRateThreshold) {
      return `failure rate ${failureRate.toFixed(4)} >= ${this.settings.failureRateThreshold}`;
    }
    const slowRate = c.slowCalls / c.calls;
    if (slowRate >= this.settings.slowCallRateThreshold) {
      return `slow-call rate ${slowRate.toFixed(4)} >= ${this.settings.slowCallRateThreshold}`;
    }
    return null;
  }

  private sum(): Counts {
    const s: Counts = { calls: 0, errors: 0, slowCalls: 0 };
    for (const c of this.window) {
      s.calls += c.calls;
      s.errors += c.errors;
      s.slowCalls += c.slowCalls;
    }
    return s;
  }
}
