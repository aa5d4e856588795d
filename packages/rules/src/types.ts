import type { Event } from '@tapio/events';

export type Scope = 'container' | 'pod' | 'node' | 'namespace' | 'service';
export type Category = 'resource' | 'performance' | 'reliability' | 'network' | 'storage';
export type Severity = 'medium' | 'high' | 'critical';

/**
 * Where a service-scoped input takes its key from (RULES.md, R9): the `destination` label
 * (`<namespace>/<service>`) or the event's own `entity.namespace` + `entity.service`.
 */
export type ServiceKeySource = 'destination-label' | 'entity';

/** One event type that a rule consumes. */
export interface RuleInput {
  readonly type: string;
  /** Entity kinds accepted for this type; null accepts every kind (RULES.md filters only R5 and R6). */
  readonly kinds: readonly string[] | null;
  /** Only for service-scoped rules. */
  readonly serviceKey: ServiceKeySource | null;
}

export interface ConfidenceSpec {
  readonly base: number;
  readonly step: number;
  /** The threshold of the count that the rule's main condition counts. */
  readonly min: number;
}

/** What a rule's condition returns when it holds: the main count n and the severity. */
export interface Decision {
  readonly n: number;
  readonly severity: Severity;
}

/**
 * One rule of the catalogue, declared once and shared by both engines.
 *
 * The condition is split so that both engines can run it: `summarize` computes a small summary
 * (counts, sums, least-squares sums, distinct counts, earliest/latest timestamps...) by scanning the
 * stored events, which is what V1 does; V2 maintains the same summary incrementally. `decide` is
 * pure over the summary and `now`.
 *
 * `decide` and `summarize` are declared as methods on purpose: method parameters are bivariant, so a
 * `RuleDefinition<CrashLoopSummary>` fits in a `readonly RuleDefinition[]` catalogue.
 */
export interface RuleDefinition<S extends object = object> {
  /** Kebab-case name; the `ruleId` of results. */
  readonly id: string;
  /** R1..R12. */
  readonly code: string;
  readonly category: Category;
  readonly scope: Scope;
  readonly inputs: readonly RuleInput[];
  /** W: the window holds events with now - W <= t <= now. */
  readonly windowMs: number;
  /** Extra look-back for a companion event (R4, R9); 0 when none. */
  readonly lookbackMs: number;
  /** max(windowMs, lookbackMs): how far back a store must keep this rule's events. */
  readonly horizonMs: number;
  /** The rule's numeric thresholds, as read by `decide`. */
  readonly thresholds: Readonly<Record<string, number>>;
  readonly confidence: ConfidenceSpec;
  readonly cooldownMs: number;
  /**
   * Computes the summary from the rule's input events stored for one scope key, sorted by timestamp
   * with equal timestamps in arrival order. Events outside [now - horizonMs, now] are ignored.
   */
  summarize(this: void, events: readonly Event[], now: number, trigger: Event): S;
  /** The condition: null when it does not hold. */
  decide(this: void, summary: S, now: number): Decision | null;
}
