import { TapioError } from '@tapio/errors';
import type { Event, Result } from '@tapio/events';
import { RULES, buildResult, inputOf, routesFor, selectEvidence } from '@tapio/rules';
import type { RuleDefinition } from '@tapio/rules';

export interface V1EngineOptions {
  rules?: readonly RuleDefinition[];
  /** RULES.md allowed lateness; default 60 000. */
  allowedLatenessMs?: number;
  /** Budget of one rule evaluation; default 50. */
  ruleTimeoutMs?: number;
  /**
   * A scope key is freed once the engine's newest event time is this far past the key's newest event.
   * Default 3 600 000 (one hour; the catalogue's longest horizon + lateness + cooldown is 46 min).
   */
  keyIdleMs?: number;
  onResult?: (result: Result) => void;
  onRuleError?: (ruleId: string, err: TapioError) => void;
}

export interface RuleStats {
  evaluations: number;
  /** Total time spent in this rule's evaluations, ns. */
  evaluationNs: number;
  results: number;
  lateEvents: number;
  duplicateEvents: number;
}

export interface V1Stats {
  /** Records handed to the engine (one per `process` or `processRouted` call). */
  events: number;
  results: number;
  /** (event, rule, key) triples ignored because the event was late for that rule and key. */
  lateEvents: number;
  /**
   * (event, rule, key) triples ignored as a redelivery: the rule already stored an event with the
   * same id and timestamp for the key (see isRedelivery).
   */
  duplicateEvents: number;
  /** Rule ids listed for a routed record that this engine does not run or whose inputs do not match. */
  skippedRules: number;
  ruleErrors: { RULE_TIMEOUT: number; RULE_FAILED: number };
  rules: Record<string, RuleStats>;
  /** Live scope keys. */
  keys: number;
  /** Events held in the store (an event kept by two rules of a key counts twice). */
  storedEvents: number;
  /** Scope keys freed as idle so far. */
  keysFreed: number;
  /** Detections withheld during a route-change warm-up (processRouted's suppressUntil). */
  suppressed: number;
}

/** One rule's state for one scope key. */
interface RuleState {
  /** The rule's input events, sorted by timestamp; equal timestamps in arrival order. */
  events: Event[];
  /** Largest timestamp among the rule's input events seen for the key. */
  watermark: number;
  /** When the rule last fired for the key. */
  lastFiredAt: number;
}

interface KeyState {
  newest: number;
  rules: Map<string, RuleState>;
}

const DEFAULT_ALLOWED_LATENESS_MS = 60_000;
const DEFAULT_RULE_TIMEOUT_MS = 50;
const DEFAULT_KEY_IDLE_MS = 3_600_000;
/** Idle keys are looked for each time the engine's event time has advanced this much. */
const SWEEP_INTERVAL_MS = 60_000;

function checkNonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new TapioError('INVALID_CONFIG', `V1Engine option ${name} = ${value}: expected a finite number >= 0`);
  }
  return value;
}

/**
 * The baseline correlation engine: an in-memory store per scope key, and every listed rule evaluated
 * by scanning the store for each arriving event (RULES.md, "Evaluation semantics").
 */
export class V1Engine {
  readonly stats: V1Stats;
  private readonly rules: readonly RuleDefinition[];
  private readonly rulesById: ReadonlyMap<string, RuleDefinition>;
  private readonly allowedLatenessMs: number;
  private readonly ruleTimeoutNs: number;
  private readonly keyIdleMs: number;
  private readonly onResult: ((result: Result) => void) | undefined;
  private readonly onRuleError: ((ruleId: string, err: TapioError) => void) | undefined;
  private readonly keys = new Map<string, KeyState>();
  private newest = -Infinity;
  private lastSweepAt = -Infinity;

  constructor(options: V1EngineOptions = {}) {
    this.rules = options.rules ?? RULES;
    const byId = new Map<string, RuleDefinition>();
    for (const rule of this.rules) {
      if (byId.has(rule.id)) throw new TapioError('INVALID_CONFIG', `V1Engine rules: duplicate rule id ${rule.id}`);
      byId.set(rule.id, rule);
    }
    this.rulesById = byId;
    this.allowedLatenessMs = checkNonNegative(
      'allowedLatenessMs',
      options.allowedLatenessMs ?? DEFAULT_ALLOWED_LATENESS_MS,
    );
    const timeoutMs = options.ruleTimeoutMs ?? DEFAULT_RULE_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new TapioError('INVALID_CONFIG', `V1Engine option ruleTimeoutMs = ${timeoutMs}: expected a number > 0`);
    }
    this.ruleTimeoutNs = timeoutMs * 1e6;
    this.keyIdleMs = checkNonNegative('keyIdleMs', options.keyIdleMs ?? DEFAULT_KEY_IDLE_MS);
    this.onResult = options.onResult;
    this.onRuleError = options.onRuleError;
    const perRule: Record<string, RuleStats> = {};
    for (const rule of this.rules)
      perRule[rule.id] = { evaluations: 0, evaluationNs: 0, results: 0, lateEvents: 0, duplicateEvents: 0 };
    this.stats = {
      events: 0,
      results: 0,
      lateEvents: 0,
      duplicateEvents: 0,
      skippedRules: 0,
      ruleErrors: { RULE_TIMEOUT: 0, RULE_FAILED: 0 },
      rules: perRule,
      keys: 0,
      storedEvents: 0,
      keysFreed: 0,
      suppressed: 0,
    };
  }

  /** Derives the routes of the event itself and evaluates them all (offline replay). */
  process(event: Event): Result[] {
    this.stats.events += 1;
    const results: Result[] = [];
    for (const route of routesFor(event, this.rules)) this.evaluateRoute(event, route.scopeKey, route.ruleIds, results);
    this.afterEvent(event);
    return results;
  }

  /**
   * Evaluates the listed rules of one routed record for its scope key (the Kafka service's call).
   * `suppressUntil` (the router's route-change handoff, ROUTING_HEADERS.suppressUntil): a detection
   * with triggeredAt < suppressUntil is neither returned nor starts a cooldown, while the event still
   * updates the window, so the warming engine cannot cool down on a result nobody published.
   */
  processRouted(event: Event, scopeKey: string, ruleIds: readonly string[], suppressUntil = -Infinity): Result[] {
    this.stats.events += 1;
    const results: Result[] = [];
    this.evaluateRoute(event, scopeKey, ruleIds, results, suppressUntil);
    this.afterEvent(event);
    return results;
  }

  private evaluateRoute(
    event: Event,
    scopeKey: string,
    ruleIds: readonly string[],
    out: Result[],
    suppressUntil = -Infinity,
  ): void {
    let key = this.keys.get(scopeKey);
    if (key === undefined) {
      key = { newest: event.timestamp, rules: new Map() };
      this.keys.set(scopeKey, key);
      this.stats.keys = this.keys.size;
    } else if (event.timestamp > key.newest) {
      key.newest = event.timestamp;
    }
    // Catalogue order, whatever the order of the header.
    for (const rule of this.rules) {
      if (!ruleIds.includes(rule.id)) continue;
      if (inputOf(rule, event) === null) {
        this.stats.skippedRules += 1;
        continue;
      }
      const result = this.evaluateRule(rule, key, scopeKey, event, suppressUntil);
      if (result !== null) {
        out.push(result);
        this.onResult?.(result);
      }
    }
    for (const id of ruleIds) if (!this.rulesById.has(id)) this.stats.skippedRules += 1;
  }

  private evaluateRule(
    rule: RuleDefinition,
    key: KeyState,
    scopeKey: string,
    event: Event,
    suppressUntil: number,
  ): Result | null {
    const ruleStats = this.stats.rules[rule.id];
    let state = key.rules.get(rule.id);
    if (state === undefined) {
      state = { events: [], watermark: -Infinity, lastFiredAt: -Infinity };
      key.rules.set(rule.id, state);
    }
    const now = event.timestamp;
    if (now < state.watermark - this.allowedLatenessMs) {
      this.stats.lateEvents += 1;
      if (ruleStats !== undefined) ruleStats.lateEvents += 1;
      return null;
    }
    // Before anything of the rule's state changes: a redelivery leaves it as it was.
    if (isRedelivery(state.events, event)) {
      this.stats.duplicateEvents += 1;
      if (ruleStats !== undefined) ruleStats.duplicateEvents += 1;
      return null;
    }
    insertSorted(state.events, event);
    if (now > state.watermark) state.watermark = now;
    // A non-late event has now >= watermark - lateness, so its window never reaches below this.
    const evicted = evictBefore(state.events, state.watermark - this.allowedLatenessMs - rule.horizonMs);
    this.stats.storedEvents += 1 - evicted;

    if (now < state.lastFiredAt + rule.cooldownMs) return null;

    const started = process.hrtime.bigint();
    let result: Result | null = null;
    let failure: unknown = undefined;
    let failed = false;
    try {
      const window = windowOf(state.events, now - rule.horizonMs, now);
      const decision = rule.decide(rule.summarize(window, now, event), now);
      if (decision !== null) {
        result = buildResult(rule, scopeKey, event, decision, selectEvidence(rule, window, now, event), 'v1');
      }
    } catch (err) {
      failed = true;
      failure = err;
    }
    const elapsedNs = Number(process.hrtime.bigint() - started);
    if (ruleStats !== undefined) {
      ruleStats.evaluations += 1;
      ruleStats.evaluationNs += elapsedNs;
    }
    if (failed) {
      this.reportError(
        rule.id,
        new TapioError('RULE_FAILED', `rule ${rule.id} threw for ${scopeKey} on event ${event.id}`, { cause: failure }),
      );
      return null;
    }
    // A synchronous rule cannot be pre-empted: by the time the budget is known to be exceeded the
    // evaluation is over. So a slow evaluation is reported (RULE_TIMEOUT, counted as an error, which
    // feeds the breaker and the rollout criteria) but its result is kept: discarding a finished
    // detection protects nothing and loses an incident whenever the machine stalls (a GC pause).
    if (elapsedNs > this.ruleTimeoutNs) {
      this.reportError(
        rule.id,
        new TapioError(
          'RULE_TIMEOUT',
          `rule ${rule.id} took ${(elapsedNs / 1e6).toFixed(3)} ms for ${scopeKey} on event ${event.id}` +
            ` (budget ${this.ruleTimeoutNs / 1e6} ms)`,
        ),
      );
    }
    if (result === null) return null;
    if (now < suppressUntil) {
      this.stats.suppressed += 1;
      return null;
    }
    state.lastFiredAt = now;
    this.stats.results += 1;
    if (ruleStats !== undefined) ruleStats.results += 1;
    return result;
  }

  private reportError(ruleId: string, err: TapioError): void {
    if (err.code === 'RULE_TIMEOUT' || err.code === 'RULE_FAILED') this.stats.ruleErrors[err.code] += 1;
    this.onRuleError?.(ruleId, err);
  }

  private afterEvent(event: Event): void {
    if (event.timestamp > this.newest) this.newest = event.timestamp;
    if (this.newest - this.lastSweepAt < SWEEP_INTERVAL_MS) return;
    this.lastSweepAt = this.newest;
    const idleBefore = this.newest - this.keyIdleMs;
    for (const [scopeKey, key] of this.keys) {
      if (key.newest < idleBefore) {
        for (const state of key.rules.values()) this.stats.storedEvents -= state.events.length;
        this.keys.delete(scopeKey);
        this.stats.keysFreed += 1;
      }
    }
    this.stats.keys = this.keys.size;
  }
}

/** Inserts after every event with timestamp <= the new one, so equal timestamps keep arrival order. */
function insertSorted(events: Event[], event: Event): void {
  // Mostly in order: check the tail first.
  const last = events[events.length - 1];
  if (last === undefined || last.timestamp <= event.timestamp) events.push(event);
  else events.splice(upperBound(events, event.timestamp), 0, event);
}

/**
 * RULES.md, "Redelivery": whether the rule's stored events (sorted, `events`) hold one with the
 * event's id. Read with "Ids are unique per source": an id names one event, and a redelivered event
 * is that same event, timestamp included; so only stored events with an equal timestamp are compared.
 * The same id at another timestamp is another event (another source's, whose ids may coincide), and
 * is counted. V2 reads it the same way (engine-v2 Lane.holdsId).
 */
function isRedelivery(events: readonly Event[], event: Event): boolean {
  const t = event.timestamp;
  const last = events[events.length - 1];
  // In order (the tail older than the event): nothing to compare.
  if (last === undefined || last.timestamp < t) return false;
  const id = event.id;
  for (let i = upperBound(events, t) - 1; i >= 0; i--) {
    const e = events[i] as Event;
    if (e.timestamp !== t) return false;
    if (e.id === id) return true;
  }
  return false;
}

/** Index of the first event with timestamp >= t. */
function lowerBound(events: readonly Event[], t: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((events[mid] as Event).timestamp < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Removes the events older than t; returns how many. */
function evictBefore(events: Event[], t: number): number {
  const n = lowerBound(events, t);
  if (n > 0) events.splice(0, n);
  return n;
}

/** Index of the first event with timestamp > t. */
function upperBound(events: readonly Event[], t: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((events[mid] as Event).timestamp <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The events with from <= t <= to. */
function windowOf(events: readonly Event[], from: number, to: number): Event[] {
  return events.slice(lowerBound(events, from), upperBound(events, to));
}
