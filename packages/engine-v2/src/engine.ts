import { performance } from 'node:perf_hooks';
import { TapioError } from '@tapio/errors';
import type { Event, Result } from '@tapio/events';
import { MAX_EVIDENCE, RULES, RULES_BY_ID, addPoint, buildResult, emptySums } from '@tapio/rules';
import type {
  AnchoredSummary,
  CountSummary,
  CpuContentionSummary,
  Decision,
  DiskSummary,
  FailureSpreadSummary,
  HighCpuSummary,
  MemoryTrendSummary,
  RuleDefinition,
  RuleInput,
  ThrottleImpactSummary,
} from '@tapio/rules';
import { NEED_ALL, NEED_LABELS, NEED_NODE, NEED_SERVICE } from './wire';
import { DISTINCT_ALL, DISTINCT_MIN_VALUE, DISTINCT_NONE, Lane, LaneStore, MIN_SLAB_EVENTS } from './lane';
import type { LaneSpec } from './lane';
import { asEvent } from './types';
import { EventRow } from './row';
import type { RowBatch } from './row';
import type { RuleEvent, V2Record } from './types';

export interface V2EngineOptions {
  rules?: readonly RuleDefinition[];
  /** RULES.md allowed lateness; default 60 000. */
  allowedLatenessMs?: number;
  /** Budget of one full rule evaluation (summary, decide, evidence); default 50. */
  ruleTimeoutMs?: number;
  /** A scope key is freed once the engine's newest event time is this far past the key's newest event (as V1). */
  keyIdleMs?: number;
  onRuleError?: (ruleId: string, err: TapioError) => void;
}

export interface V2RuleStats {
  /** Evaluations outside cooldown (as V1 counts them). */
  evaluations: number;
  /** Evaluations whose O(1) checks passed, so the summary was completed and `decide` ran. */
  decisions: number;
  /** Time spent in those full evaluations, ns (the O(1) checks are not timed). */
  evaluationNs: number;
  results: number;
  lateEvents: number;
  duplicateEvents: number;
}

export interface V2Stats {
  events: number;
  results: number;
  lateEvents: number;
  /** (event, rule, key) triples ignored as a redelivery (as V1 counts them; see Lane.holdsId). */
  duplicateEvents: number;
  skippedRules: number;
  ruleErrors: { RULE_TIMEOUT: number; RULE_FAILED: number };
  rules: Record<string, V2RuleStats>;
  keys: number;
  storedEvents: number;
  keysFreed: number;
  /** Detections withheld during a route-change warm-up (processRouted's suppressUntil). */
  suppressed: number;
}

// How a rule's summary is maintained. A catalogue rule gets its incremental plan; any other rule
// (a custom or altered definition) is run as V1 runs it: scan the window and call its summarize.
const K_SCAN = 0;
const K_ANCHORED = 1;
const K_MEMORY = 2;
const K_THROTTLE = 3;
const K_CONTENTION = 4;
const K_HIGH_CPU = 5;
const K_COUNT = 6;
const K_FAILURES = 7;
const K_DISK = 8;

/**
 * Margin of the running-sum filters (R4, R6 means). The running sum differs from V1's scan sum only
 * by rounding (far below 1e-12 for ratios in [0, 1]); a window within the margin is summed exactly.
 */
const FILTER_MARGIN = 1e-6;

interface RulePlan {
  readonly index: number;
  readonly rule: RuleDefinition;
  readonly kind: number;
  readonly lanes: readonly LaneSpec[];
  /** The main count's threshold (restarts, samples, throttles, pods, failures...). */
  readonly minCount: number;
  /** R8, R9: distinct pods. */
  readonly minPods: number;
  /** R2/R3 latest ratio, R4 mean throttle ratio, R6 mean usage, R10 usage ratio. */
  readonly minValue: number;
  /** R10 inode ratio. */
  readonly minValue2: number;
  /** R6: spike share in percent. */
  readonly minPercent: number;
  /** R4: the companion's look-back. */
  readonly lookbackMs: number;
  /** Index of an earlier rule whose lane this rule's lane follows (see sharesEvents), or -1. */
  readonly follows: number;
}

/** One rule that reads an event type: the plan, the input declaration and the lane it fills. */
interface Candidate {
  readonly plan: RulePlan;
  readonly input: RuleInput;
  readonly lane: number;
  /** How the scope key is taken from the event (S_*). */
  readonly scopeCode: number;
}

// The scope keys of RULES.md, "Scope keys" (@tapio/rules scopeKey), one code per way of taking them.
const S_CONTAINER = 0;
const S_POD = 1;
const S_NODE = 2;
const S_NAMESPACE = 3;
const S_SERVICE = 4;
const S_DESTINATION = 5;

function scopeCodeOf(rule: RuleDefinition, input: RuleInput): number {
  switch (rule.scope) {
    case 'container':
      return S_CONTAINER;
    case 'pod':
      return S_POD;
    case 'node':
      return S_NODE;
    case 'namespace':
      return S_NAMESPACE;
    case 'service':
      return input.serviceKey === 'destination-label' ? S_DESTINATION : S_SERVICE;
  }
}

// RuleState.accept's answers.
const LATE = 0;
const TAKEN_NEWEST = 1;
const TAKEN = 2;

/**
 * The state of one rule for one scope key. It is the rule's first lane itself (one object for both:
 * the lane was one more cache miss per evaluation in bench/engine.ts's profile, which stalls on the
 * loads of the per-key state), plus the rule's watermark, cooldown and second lane.
 */
class RuleState extends Lane {
  /**
   * When the rule last fired for the key; null before. Null rather than -Infinity: a field that
   * holds only numbers is a separate heap box that the cooldown check of every evaluation loads (a
   * cold line); one that also holds null points to a number made only when the rule fires.
   */
  lastFiredAt: number | null;
  /** The engine's event count when the state was made. */
  readonly bornAt: number;
  readonly lane1: Lane | null;

  /** `owner`: a one-lane rule's lane follows it (see sharesEvents). */
  constructor(plan: RulePlan, store: LaneStore, bornAt: number, owner: Lane | null) {
    super(plan.lanes[0] as LaneSpec, store, owner);
    this.lastFiredAt = null;
    this.bornAt = bornAt;
    const second = plan.lanes[1];
    this.lane1 = owner === null && second !== undefined ? new Lane(second, store) : null;
  }

  /**
   * Whether the rule takes `row` (it is not late: not older than the rule's watermark minus the
   * allowed lateness): LATE if not, else TAKEN_NEWEST when it is newer than every stored event (so
   * it cannot be a redelivery of one, see Lane.holdsId) or TAKEN; if taken, sets store.evictBefore
   * for the cursor steps that follow (advance).
   *
   * The watermark is the newest timestamp among the rule's accepted events for the key (-Infinity
   * before the first): every accepted event is stored, and the newest one is never evicted (advance
   * drops only events older than watermark - lateness - horizon), so it is the last stored timestamp
   * of the lanes, read from their tails rather than kept in a field (a double field is a separate
   * heap box: 48 B more per key at 100k active keys). Once the row is taken (stored by this rule or,
   * for a follower, by its owner just before) the watermark is max(watermark, row's time).
   * One call returning a boolean, with the doubles computed and stored here: a getter returning the
   * watermark, read three times per evaluation, made a heap number per call where it was not inlined
   * (the largest allocation site of V2 on bench/engine.ts's stream).
   */
  accept(row: EventRow, latenessMs: number, horizonMs: number): number {
    let w = this.newest();
    const b = this.lane1;
    if (b !== null) {
      const v = b.newest();
      if (v > w) w = v;
    }
    const now = row.timestamp;
    if (now < w - latenessMs) return LATE;
    if (now > w) {
      this.store.evictBefore = now - latenessMs - horizonMs;
      return TAKEN_NEWEST;
    }
    this.store.evictBefore = w - latenessMs - horizonMs;
    return TAKEN;
  }

  /** [this] or [this, lane1]; made when asked (decisions, freeing), not kept: one array less per state. */
  get lanes(): Lane[] {
    return this.lane1 === null ? [this] : [this, this.lane1];
  }
}

/**
 * Whether `later` always sees exactly the events `earlier` sees, per key and in the same order, and
 * keeps none that `earlier` drops first, so its lane can read `earlier`'s arrays: one lane each, one
 * input of the same type without kind filter, the same scope and measurements, and `earlier`'s span
 * and horizon at least as long. Both see the same events, so their watermarks and late events agree.
 * R3 follows R2 (memory.usage per container).
 */
function sharesEvents(earlier: RulePlan, later: RulePlan): boolean {
  if (earlier.kind === K_SCAN || later.kind === K_SCAN) return false;
  if (earlier.lanes.length !== 1 || later.lanes.length !== 1) return false;
  const [ei, li] = [earlier.rule.inputs, later.rule.inputs];
  if (ei.length !== 1 || li.length !== 1) return false;
  const [a, b] = [ei[0] as RuleInput, li[0] as RuleInput];
  if (a.type !== b.type || a.kinds !== null || b.kinds !== null || a.serviceKey !== b.serviceKey) return false;
  if (earlier.rule.scope !== later.rule.scope) return false;
  const [x, y] = [earlier.lanes[0] as LaneSpec, later.lanes[0] as LaneSpec];
  return (
    x.attr === y.attr &&
    x.attr2 === y.attr2 &&
    x.spikeAbove === y.spikeAbove &&
    x.distinct === DISTINCT_NONE &&
    y.distinct === DISTINCT_NONE &&
    !x.keepPods &&
    !y.keepPods &&
    !x.keepEvents &&
    !y.keepEvents &&
    x.spanMs >= y.spanMs &&
    earlier.rule.horizonMs >= later.rule.horizonMs
  );
}

const TWO_30 = 1073741824;

/** Rule states held in KeyState's own fields; a rule with a later index goes to its `more` array. */
const KEY_STATE_FIELDS = 12;

/**
 * One scope key: its newest event time and the state of each rule for it. The states of the first
 * KEY_STATE_FIELDS rules (the catalogue's twelve) are fields of the key itself, not an array: an
 * array is two more objects (its header and its elements) to load before the rule's state, and
 * bench/engine.ts's profile had V2's evaluation waiting on exactly those first loads of each key.
 */
class KeyState {
  readonly scope: string;
  /**
   * The key's newest event time is newestHi * 2^30 + newestLo: two small integers held in the object
   * itself, where a double field would be a separate heap box that V8 updates in place, one more
   * cold cache line per event (each event finds its key's state cold; see bench/engine.ts).
   * Non-integer or huge times still work: V8 then boxes these fields instead.
   */
  private newestHi = 0;
  private newestLo = 0;
  /**
   * The parts of the key string (see V2Engine.cachedKey) as last looked up: its scope code (S_*,
   * -1 for none or once freed) and entity fields. Equal parts give an equal key string.
   */
  code = -1;
  p1: string | null = null;
  p2: string | null = null;
  p3: string | null = null;
  /** Its slot in V2Engine.keyCache (the last one it was put in). */
  slot = -1;
  s0: RuleState | null = null;
  s1: RuleState | null = null;
  s2: RuleState | null = null;
  s3: RuleState | null = null;
  s4: RuleState | null = null;
  s5: RuleState | null = null;
  s6: RuleState | null = null;
  s7: RuleState | null = null;
  s8: RuleState | null = null;
  s9: RuleState | null = null;
  s10: RuleState | null = null;
  s11: RuleState | null = null;
  /** States of rules KEY_STATE_FIELDS and later (null while there are none). */
  more: Array<RuleState | null> | null = null;

  constructor(scope: string, newest: number) {
    this.scope = scope;
    this.newest = newest;
  }

  get newest(): number {
    return this.newestHi * TWO_30 + this.newestLo;
  }

  set newest(t: number) {
    const hi = Math.floor(t / TWO_30);
    this.newestHi = hi;
    this.newestLo = t - hi * TWO_30;
  }

  /** The state of rule i (its plan index), or null. */
  state(i: number): RuleState | null {
    switch (i) {
      case 0:
        return this.s0;
      case 1:
        return this.s1;
      case 2:
        return this.s2;
      case 3:
        return this.s3;
      case 4:
        return this.s4;
      case 5:
        return this.s5;
      case 6:
        return this.s6;
      case 7:
        return this.s7;
      case 8:
        return this.s8;
      case 9:
        return this.s9;
      case 10:
        return this.s10;
      case 11:
        return this.s11;
      default:
        return this.more === null ? null : (this.more[i - KEY_STATE_FIELDS] ?? null);
    }
  }

  setState(i: number, state: RuleState | null): void {
    switch (i) {
      case 0:
        this.s0 = state;
        break;
      case 1:
        this.s1 = state;
        break;
      case 2:
        this.s2 = state;
        break;
      case 3:
        this.s3 = state;
        break;
      case 4:
        this.s4 = state;
        break;
      case 5:
        this.s5 = state;
        break;
      case 6:
        this.s6 = state;
        break;
      case 7:
        this.s7 = state;
        break;
      case 8:
        this.s8 = state;
        break;
      case 9:
        this.s9 = state;
        break;
      case 10:
        this.s10 = state;
        break;
      case 11:
        this.s11 = state;
        break;
      default: {
        const more = this.more ?? (this.more = []);
        while (more.length <= i - KEY_STATE_FIELDS) more.push(null);
        more[i - KEY_STATE_FIELDS] = state;
      }
    }
  }
}

/** A key piece is missing when null or empty (@tapio/rules `present`). */
function present(value: string | null | undefined): value is string {
  return value !== null && value !== undefined && value !== '';
}

/** Slots of the event-type cache (a power of two). */
const TYPE_CACHE_SLOTS = 64;

/** Slots of the scope-key cache (a power of two). */
const KEY_CACHE_SLOTS = 1 << 15;

/** The cache slot of a scope code and up to three entity-field hashes. */
function keySlot(code: number, a: number, b: number, c: number): number {
  let h = Math.imul(a ^ Math.imul(code + 1, 0x27d4eb2d), 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ b, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ c, 0xc2b2ae35);
  return (h ^ (h >>> 16)) & (KEY_CACHE_SLOTS - 1);
}

/** R9's key from label `destination` = `<namespace>/<service>` (@tapio/rules scopeKey), or null. */
function destinationKey(destination: string | undefined): string | null {
  if (destination === undefined) return null;
  const parts = destination.split('/');
  if (parts.length !== 2 || !present(parts[0]) || !present(parts[1])) return null;
  return `service/${parts[0]}/${parts[1]}`;
}

const DEFAULT_ALLOWED_LATENESS_MS = 60_000;
const DEFAULT_RULE_TIMEOUT_MS = 50;
const DEFAULT_KEY_IDLE_MS = 3_600_000;
/** As V1: idle keys are looked for each time the engine's event time has advanced this much. */
const SWEEP_INTERVAL_MS = 60_000;

function checkNonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new TapioError('INVALID_CONFIG', `V2Engine option ${name} = ${value}: expected a finite number >= 0`);
  }
  return value;
}

function threshold(rule: RuleDefinition, name: string): number {
  const v = rule.thresholds[name];
  if (v === undefined) throw new TapioError('INVALID_CONFIG', `rule ${rule.id} has no threshold ${name}`);
  return v;
}

function lane(
  types: readonly string[],
  spanMs: number,
  attr: string | null = null,
  extra: Partial<Omit<LaneSpec, 'types' | 'spanMs' | 'attr'>> = {},
): LaneSpec {
  const distinct = extra.distinct ?? DISTINCT_NONE;
  return {
    types,
    spanMs,
    attr,
    attr2: extra.attr2 ?? null,
    spikeAbove: extra.spikeAbove ?? Infinity,
    distinct,
    distinctMin: extra.distinctMin ?? -Infinity,
    keepPods: distinct !== DISTINCT_NONE || (extra.keepPods ?? false),
    keepEvents: extra.keepEvents ?? false,
    firstSlabEvents: MIN_SLAB_EVENTS,
  };
}

function scanLane(rule: RuleDefinition): LaneSpec {
  return lane(
    rule.inputs.map((i) => i.type),
    rule.horizonMs,
    null,
    { keepEvents: true },
  );
}

/** The plan of one rule: which lanes it keeps and which thresholds its O(1) checks read. */
function planOf(rule: RuleDefinition, index: number): RulePlan {
  const base = {
    index,
    rule,
    minCount: 0,
    minPods: 0,
    minValue: 0,
    minValue2: 0,
    minPercent: 0,
    lookbackMs: 0,
    follows: -1,
  };
  const W = rule.windowMs;
  // Only the catalogue's own definitions have a known summary; anything else is scanned.
  if (RULES_BY_ID.get(rule.id) !== rule) {
    return { ...base, kind: K_SCAN, lanes: [scanLane(rule)] };
  }
  switch (rule.code) {
    case 'R1':
      return {
        ...base,
        kind: K_ANCHORED,
        lanes: [lane(['memory.oom_kill'], W), lane(['pod.restart'], W, null, { keepPods: true })],
        minCount: threshold(rule, 'minRestarts'),
      };
    case 'R12':
      return {
        ...base,
        kind: K_ANCHORED,
        lanes: [lane(['node.pressure'], W), lane(['pod.evicted'], W, null, { keepPods: true })],
        minCount: threshold(rule, 'minEvictions'),
      };
    case 'R2':
    case 'R3':
      return {
        ...base,
        kind: K_MEMORY,
        lanes: [lane(['memory.usage'], W, 'usage_bytes', { attr2: 'limit_bytes' })],
        minCount: threshold(rule, 'minSamples'),
        minValue: threshold(rule, 'minRatio'),
      };
    case 'R4':
      return {
        ...base,
        kind: K_THROTTLE,
        lanes: [lane(['cpu.throttle'], W, 'throttle_ratio'), lane(['syscall.timeout'], rule.horizonMs)],
        minCount: threshold(rule, 'minThrottles'),
        minValue: threshold(rule, 'minMeanRatio'),
        lookbackMs: rule.lookbackMs,
      };
    case 'R5':
      return {
        ...base,
        kind: K_CONTENTION,
        lanes: [
          lane(['cpu.throttle'], W, 'throttle_ratio', {
            distinct: DISTINCT_MIN_VALUE,
            distinctMin: threshold(rule, 'minThrottleRatio'),
          }),
          lane(['cpu.usage'], W, 'usage_ratio'),
        ],
        minCount: threshold(rule, 'minPods'),
      };
    case 'R6':
      return {
        ...base,
        kind: K_HIGH_CPU,
        lanes: [lane(['cpu.usage'], W, 'usage_ratio', { spikeAbove: threshold(rule, 'spikeAbove') })],
        minCount: threshold(rule, 'minSamples'),
        minValue: threshold(rule, 'minMean'),
        minPercent: threshold(rule, 'minSpikePercent'),
      };
    case 'R7':
      return { ...base, kind: K_COUNT, lanes: [lane(['pod.restart'], W)], minCount: threshold(rule, 'minRestarts') };
    case 'R11':
      return {
        ...base,
        kind: K_COUNT,
        lanes: [lane(['volume.mount_failed'], W)],
        minCount: threshold(rule, 'minFailures'),
      };
    case 'R8':
      return {
        ...base,
        kind: K_FAILURES,
        lanes: [lane(['network.dns_failure'], W, null, { distinct: DISTINCT_ALL })],
        minCount: threshold(rule, 'minFailures'),
        minPods: threshold(rule, 'minPods'),
      };
    case 'R9':
      return {
        ...base,
        kind: K_FAILURES,
        lanes: [
          lane(['network.connection_failure'], W, null, { distinct: DISTINCT_ALL }),
          lane(['pod.restart', 'pod.not_ready'], rule.horizonMs),
        ],
        minCount: threshold(rule, 'minFailures'),
        minPods: threshold(rule, 'minPods'),
      };
    case 'R10':
      return {
        ...base,
        kind: K_DISK,
        lanes: [lane(['disk.usage'], W)],
        minValue: threshold(rule, 'minUsage'),
        minValue2: threshold(rule, 'minInodes'),
      };
    default:
      return { ...base, kind: K_SCAN, lanes: [scanLane(rule)] };
  }
}

/** One evidence candidate (built only when a rule fires). */
class EvidenceEntry {
  constructor(
    readonly timestamp: number,
    readonly id: string,
    readonly trigger: boolean,
  ) {}
}

function byTimestampThenId(a: EvidenceEntry, b: EvidenceEntry): number {
  if (a.timestamp !== b.timestamp) return a.timestamp - b.timestamp;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function idOf(e: EvidenceEntry): string {
  return e.id;
}

function notTrigger(e: EvidenceEntry): boolean {
  return !e.trigger;
}

/**
 * The high-performance correlation engine: the same catalogue, the same results as V1 (RULES.md,
 * "Evaluation semantics"), but per scope key and rule it keeps sorted lanes of the rule's input
 * events with running aggregates over a sliding cursor (lane.ts), so an event costs O(1) amortised
 * instead of a scan of the key's store.
 *
 * A rule's condition is decided in two steps. First O(1) checks on exact quantities (counts, distinct
 * pods, the latest sample's raw values, the anchor) and on running sums with a margin: when one fails,
 * the catalogue's `decide` would return null, so it is not called. Otherwise the summary is completed
 * exactly as `summarize` computes it (the same additions in the same order, so least-squares sums and
 * means are bit-identical to V1's) and the rule's own `decide` runs. That full step touches the
 * window, as building the evidence does anyway, and happens only when the rule is about to fire or
 * nearly so.
 */
export class V2Engine {
  readonly stats: V2Stats;
  private readonly plans: readonly RulePlan[];
  private readonly planById: ReadonlyMap<string, RulePlan>;
  /** Event type -> the rules that read it, in catalogue order. */
  private readonly byType: ReadonlyMap<string, readonly Candidate[]>;
  private readonly ruleStats: readonly V2RuleStats[];
  private readonly allowedLatenessMs: number;
  private readonly ruleTimeoutMs: number;
  /** The current routed record's warm-up limit (processRoutedInto), -Infinity otherwise. */
  private suppressUntil = -Infinity;
  private readonly keyIdleMs: number;
  private readonly onRuleError: ((ruleId: string, err: TapioError) => void) | undefined;
  /** Scope key -> state: the engine's keys. */
  private readonly keys = new Map<string, KeyState>();
  /**
   * A two-way cache in front of `keys`, by the hashes of the entity fields that make the key:
   * an event whose key was looked up recently finds its state by comparing those fields (interned
   * strings from the decoder, so mostly one pointer compare each) instead of building the key string
   * and hashing it. A miss builds the string and asks `keys`, which stays the one truth.
   */
  private readonly keyCache: Array<KeyState | null> = new Array<KeyState | null>(KEY_CACHE_SLOTS).fill(null);
  private readonly typeCacheKeys: Array<string | null> = new Array<string | null>(TYPE_CACHE_SLOTS).fill(null);
  private readonly typeCacheCandidates: Array<readonly Candidate[] | null> = new Array<readonly Candidate[] | null>(
    TYPE_CACHE_SLOTS,
  ).fill(null);
  /** The numbers every lane stores (see LaneStore). */
  private readonly store = new LaneStore();
  /** For the RuleEvent entry points: the event as a row. */
  private readonly scratch = new EventRow();
  private newest = -Infinity;
  private lastSweepAt = -Infinity;
  /**
   * At most the newest time of every key (keys' newest times only grow): a sweep with nothing
   * older than this to find is skipped without visiting the keys. Why: each sweep visits every key
   * (a cache miss or two each); on bench/engine.ts's stream that cost ~4 % of V2's time, and in its
   * first hour no key can be idle at all.
   */
  private oldestNewest = Infinity;
  /**
   * Per rule: the value of stats.events when the rule last ignored an event as a redelivery. A rule
   * whose lane follows this one's reads it for the same event (the owner is evaluated just before).
   */
  private readonly redeliveredAt: Float64Array;
  /** Per rule: the record stamp that last listed it (dedups a routed record's rule ids without a Set). */
  private readonly listedAt: Int32Array;
  private stamp = 0;
  // Scratch for `process`: the (key, candidate) pairs of one event, reused across events.
  private readonly routeKeys: KeyState[] = [];
  private readonly routeCandidates: Candidate[] = [];
  private readonly routeDone: boolean[] = [];
  /** Per scope code (S_*): the event's key state (null when it has none), valid where scopeMemoAt is the event's count. */
  private readonly scopeMemo: Array<KeyState | null> = new Array<KeyState | null>(S_DESTINATION + 1).fill(null);
  private readonly scopeMemoAt = new Float64Array(S_DESTINATION + 1).fill(-1);

  constructor(options: V2EngineOptions = {}) {
    const rules = options.rules ?? RULES;
    const byId = new Map<string, RulePlan>();
    const plans: RulePlan[] = [];
    for (const rule of rules) {
      if (byId.has(rule.id)) throw new TapioError('INVALID_CONFIG', `V2Engine rules: duplicate rule id ${rule.id}`);
      let plan = planOf(rule, plans.length);
      const owner = plans.find(
        (p) => p.follows === -1 && !plans.some((q) => q.follows === p.index) && sharesEvents(p, plan),
      );
      if (owner !== undefined) plan = { ...plan, follows: owner.index };
      plans.push(plan);
      byId.set(rule.id, plan);
    }
    this.plans = plans;
    this.planById = byId;
    const byType = new Map<string, Candidate[]>();
    for (const plan of plans) {
      // As inputOf: the first input declaration of the type decides.
      const seen = new Set<string>();
      for (const input of plan.rule.inputs) {
        if (seen.has(input.type)) continue;
        seen.add(input.type);
        const laneIndex = plan.lanes.findIndex((l) => l.types.includes(input.type));
        if (laneIndex === -1) throw new TapioError('INVALID_CONFIG', `rule ${plan.rule.id}: no lane for ${input.type}`);
        const list = byType.get(input.type) ?? [];
        list.push({ plan, input, lane: laneIndex, scopeCode: scopeCodeOf(plan.rule, input) });
        byType.set(input.type, list);
      }
    }
    this.byType = byType;
    this.allowedLatenessMs = checkNonNegative(
      'allowedLatenessMs',
      options.allowedLatenessMs ?? DEFAULT_ALLOWED_LATENESS_MS,
    );
    const timeoutMs = options.ruleTimeoutMs ?? DEFAULT_RULE_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new TapioError('INVALID_CONFIG', `V2Engine option ruleTimeoutMs = ${timeoutMs}: expected a number > 0`);
    }
    this.ruleTimeoutMs = timeoutMs;
    this.keyIdleMs = checkNonNegative('keyIdleMs', options.keyIdleMs ?? DEFAULT_KEY_IDLE_MS);
    this.onRuleError = options.onRuleError;
    this.listedAt = new Int32Array(plans.length);
    this.redeliveredAt = new Float64Array(plans.length).fill(-1);
    const perRule: Record<string, V2RuleStats> = {};
    const ruleStats: V2RuleStats[] = [];
    for (const plan of plans) {
      const s = { evaluations: 0, decisions: 0, evaluationNs: 0, results: 0, lateEvents: 0, duplicateEvents: 0 };
      perRule[plan.rule.id] = s;
      ruleStats.push(s);
    }
    this.ruleStats = ruleStats;
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

  /**
   * Id texts that stored events refer to (a decoded batch's shared text, or an id's own string),
   * plus the last one taken: what the engine keeps alive for evidence (tests, memory checks).
   */
  get idTextsInUse(): number {
    return this.store.textsInUse;
  }

  /** The event types that some rule reads (for RuleEventDecoder.fullTypesOnly). */
  inputTypes(): string[] {
    return [...this.byType.keys()];
  }

  /**
   * Per event type that some rule reads, the optional fields its rules need (NEED_* bits, for
   * RuleEventDecoder.projectTypes): node for node-scoped rules, service for service-scoped ones,
   * labels for a destination-label key, everything for a rule without a known summary (scanned).
   * Namespace, kind, name, pod, container and the attributes are always read.
   */
  fieldNeeds(): Map<string, number> {
    const needs = new Map<string, number>();
    for (const [type, candidates] of this.byType) {
      let need = 0;
      for (const c of candidates) {
        if (c.plan.kind === K_SCAN) need |= NEED_ALL;
        else if (c.scopeCode === S_NODE) need |= NEED_NODE;
        else if (c.scopeCode === S_SERVICE) need |= NEED_SERVICE;
        else if (c.scopeCode === S_DESTINATION) need |= NEED_LABELS;
      }
      needs.set(type, need);
    }
    return needs;
  }

  /** Derives the event's routes itself and evaluates them all (offline replay), as V1's `process`. */
  process(event: RuleEvent): Result[] {
    const out: Result[] = [];
    this.processInto(event, out);
    return out;
  }

  /**
   * Evaluates the listed rules of one routed record for its scope key, as V1's `processRouted`,
   * including its `suppressUntil` (route-change warm-up: such a detection is neither returned nor
   * starts a cooldown).
   */
  processRouted(event: RuleEvent, scopeKey: string, ruleIds: readonly string[], suppressUntil = -Infinity): Result[] {
    const out: Result[] = [];
    this.processRoutedInto(event, scopeKey, ruleIds, out, suppressUntil);
    return out;
  }

  /**
   * A batch of records in order; results are appended to `out` in the order `process` /
   * `processRouted` would return them, record after record. A record without a scope key is routed
   * by the engine itself.
   */
  processBatch(records: ArrayLike<V2Record>, out: Result[]): void {
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as V2Record;
      const scope = record.scopeKey;
      if (scope === undefined || scope === null) this.processInto(record.event, out);
      else this.processRoutedInto(record.event, scope, record.ruleIds ?? [], out);
    }
  }

  /** `process`, appending to `out`. */
  processInto(event: RuleEvent, out: Result[]): void {
    const row = this.scratch;
    row.fromEvent(event);
    this.processRowInto(row, out);
  }

  /** `processRouted`, appending to `out`. */
  processRoutedInto(
    event: RuleEvent,
    scope: string,
    ruleIds: readonly string[],
    out: Result[],
    suppressUntil = -Infinity,
  ): void {
    const row = this.scratch;
    row.fromEvent(event);
    this.processRoutedRowInto(row, scope, ruleIds, out, suppressUntil);
  }

  /**
   * Every good record of a decoded batch (RuleEventDecoder.decodeRows), in order, as `process`;
   * results appended to `out`.
   */
  processRows(batch: RowBatch, out: Result[]): void {
    const rows = batch.rows;
    const errors = batch.errors;
    for (let i = 0; i < batch.length; i++) {
      if (errors[i] === null) this.processRowInto(rows[i] as EventRow, out);
    }
  }

  /** `process` of a decoded row, appending to `out`. */
  processRowInto(row: EventRow, out: Result[]): void {
    this.stats.events += 1;
    const candidates = this.candidatesOf(row);
    if (candidates !== null) {
      // routesFor's order: keys in order of first appearance over the catalogue, then per key the
      // rules in catalogue order.
      const keys = this.routeKeys;
      const cands = this.routeCandidates;
      const done = this.routeDone;
      const memo = this.scopeMemo;
      const memoAt = this.scopeMemoAt;
      const stamp = this.stats.events;
      let n = 0;
      for (let i = 0; i < candidates.length; i++) {
        const c = candidates[i] as Candidate;
        if (c.input.kinds !== null && !c.input.kinds.includes(row.kind)) continue;
        // One key lookup per way of taking it (R2 and R3 share the container key).
        let key: KeyState | null;
        if (memoAt[c.scopeCode] === stamp) {
          key = memo[c.scopeCode] ?? null;
        } else {
          key = this.keyOfRow(c.scopeCode, row);
          memo[c.scopeCode] = key;
          memoAt[c.scopeCode] = stamp;
        }
        if (key === null) continue;
        keys[n] = key;
        cands[n] = c;
        done[n] = false;
        n += 1;
      }
      for (let i = 0; i < n; i++) {
        if (done[i]) continue;
        const key = keys[i] as KeyState;
        if (row.timestamp > key.newest) key.newest = row.timestamp;
        for (let j = i; j < n; j++) {
          if (done[j] || keys[j] !== key) continue;
          done[j] = true;
          const c = cands[j] as Candidate;
          this.evaluate(c.plan, c.lane, key, key.scope, row, out);
        }
      }
    }
    this.afterEvent(row);
  }

  /** `processRouted` of a decoded row, appending to `out`. */
  processRoutedRowInto(
    row: EventRow,
    scope: string,
    ruleIds: readonly string[],
    out: Result[],
    suppressUntil = -Infinity,
  ): void {
    this.stats.events += 1;
    this.suppressUntil = suppressUntil;
    const key = this.keyFor(scope, row);
    const stamp = ++this.stamp;
    let listed = 0;
    for (let i = 0; i < ruleIds.length; i++) {
      const plan = this.planById.get(ruleIds[i] as string);
      if (plan === undefined) {
        this.stats.skippedRules += 1;
      } else if (this.listedAt[plan.index] !== stamp) {
        this.listedAt[plan.index] = stamp;
        listed += 1;
      }
    }
    // A record that lists only one of two rules sharing a lane: from now on they see different events.
    for (let i = 0; i < this.plans.length; i++) {
      const plan = this.plans[i] as RulePlan;
      if (plan.follows === -1 || (this.listedAt[plan.index] === stamp) === (this.listedAt[plan.follows] === stamp)) {
        continue;
      }
      const state = key.state(plan.index);
      if (state !== null) for (const l of state.lanes) l.detach();
    }
    const candidates = this.byType.get(row.type);
    if (candidates !== undefined) {
      for (let i = 0; i < candidates.length; i++) {
        const c = candidates[i] as Candidate;
        if (this.listedAt[c.plan.index] !== stamp) continue;
        if (c.input.kinds !== null && !c.input.kinds.includes(row.kind)) continue;
        listed -= 1;
        this.evaluate(c.plan, c.lane, key, scope, row, out);
      }
    }
    // Listed rules that do not read this event (type or kind), as V1 counts them.
    this.stats.skippedRules += listed;
    this.suppressUntil = -Infinity;
    this.afterEvent(row);
  }

  /**
   * byType.get(row.type), through a small cache by the type's hash: the decoder's interned type
   * string is then compared by pointer instead of by its characters against the Map's key.
   */
  private candidatesOf(row: EventRow): readonly Candidate[] | null {
    const slot = row.hType & (TYPE_CACHE_SLOTS - 1);
    const type = row.type;
    if (this.typeCacheKeys[slot] === type) return this.typeCacheCandidates[slot] ?? null;
    const candidates = this.byType.get(type) ?? null;
    this.typeCacheKeys[slot] = type;
    this.typeCacheCandidates[slot] = candidates;
    return candidates;
  }

  /** The row's key state for one way of taking the scope key (RULES.md "Scope keys"), or null when it has none. */
  private keyOfRow(code: number, row: EventRow): KeyState | null {
    const ns = row.namespace;
    switch (code) {
      case S_CONTAINER: {
        if (!present(ns)) return null;
        const pod = row.pod;
        const own = row.kind === 'container';
        const container = own ? row.name : row.container;
        if (!present(pod) || !present(container)) return null;
        const slot = keySlot(code, row.hNamespace, row.hPod, own ? row.hName : row.hContainer);
        return this.cachedKey(code, ns, pod, container, slot, row);
      }
      case S_POD: {
        if (!present(ns)) return null;
        const kind = row.kind;
        const fromName = kind === 'pod';
        const pod = fromName ? row.name : kind === 'container' ? row.pod : null;
        if (!present(pod)) return null;
        return this.cachedKey(
          code,
          ns,
          pod,
          null,
          keySlot(code, row.hNamespace, fromName ? row.hName : row.hPod, 0),
          row,
        );
      }
      case S_NODE: {
        const fromName = row.kind === 'node';
        const node = fromName ? row.name : row.node;
        if (!present(node)) return null;
        return this.cachedKey(code, node, null, null, keySlot(code, fromName ? row.hName : row.hNode, 0, 0), row);
      }
      case S_NAMESPACE:
        if (!present(ns)) return null;
        return this.cachedKey(code, ns, null, null, keySlot(code, row.hNamespace, 0, 0), row);
      case S_SERVICE: {
        const service = row.service;
        if (!present(ns) || !present(service)) return null;
        return this.cachedKey(code, ns, service, null, keySlot(code, row.hNamespace, row.hService, 0), row);
      }
      default: {
        const scope = destinationKey(row.label('destination'));
        return scope === null ? null : this.keyFor(scope, row);
      }
    }
  }

  /** The state of the key made of these parts: from the cache when its slot holds it, else by its string. */
  private cachedKey(
    code: number,
    p1: string,
    p2: string | null,
    p3: string | null,
    slot: number,
    row: EventRow,
  ): KeyState {
    // Two ways per bucket (slot and slot ^ 1), the most recent first: with one, two busy keys whose
    // hashes met in a slot pushed each other out and were looked up by their strings every time
    // (~8 % of lookups on bench/engine.ts's stream, twice as many as the new keys).
    const cache = this.keyCache;
    const way = slot & ~1;
    const cached = cache[way] ?? null;
    if (cached !== null && cached.code === code && cached.p1 === p1 && cached.p2 === p2 && cached.p3 === p3) {
      if (row.timestamp > cached.newest) cached.newest = row.timestamp;
      return cached;
    }
    const other = cache[way + 1] ?? null;
    if (other !== null && other.code === code && other.p1 === p1 && other.p2 === p2 && other.p3 === p3) {
      if (row.timestamp > other.newest) other.newest = row.timestamp;
      return other;
    }
    // The strings of @tapio/rules scopeKey.
    let scope: string;
    if (code === S_CONTAINER) scope = `container/${p1}/${p2 as string}/${p3 as string}`;
    else if (code === S_POD) scope = `pod/${p1}/${p2 as string}`;
    else if (code === S_NODE) scope = `node/${p1}`;
    else if (code === S_NAMESPACE) scope = `namespace/${p1}`;
    else scope = `service/${p1}/${p2 as string}`;
    const key = this.keyFor(scope, row);
    key.code = code;
    key.p1 = p1;
    key.p2 = p2;
    key.p3 = p3;
    // The first way's key moves to the second (the second's is dropped from the cache).
    if (cached !== null && cached !== key) {
      cache[way + 1] = cached;
      cached.slot = way + 1;
    }
    key.slot = way;
    cache[way] = key;
    return key;
  }

  private keyFor(scope: string, row: EventRow): KeyState {
    const timestamp = row.timestamp;
    let key = this.keys.get(scope);
    if (key === undefined) {
      key = new KeyState(scope, timestamp);
      this.keys.set(scope, key);
      this.stats.keys = this.keys.size;
      if (timestamp < this.oldestNewest) this.oldestNewest = timestamp;
    } else if (timestamp > key.newest) {
      key.newest = timestamp;
    }
    return key;
  }

  private evaluate(
    plan: RulePlan,
    laneIndex: number,
    key: KeyState,
    scope: string,
    event: EventRow,
    out: Result[],
  ): void {
    const rule = plan.rule;
    const ruleStats = this.ruleStats[plan.index] as V2RuleStats;
    let state = key.state(plan.index);
    if (state === null) {
      // Follow the owner's lane only when the owner's state is as new as this one (same event), so
      // the owner holds exactly the events this rule has seen.
      const owner = plan.follows === -1 ? null : key.state(plan.follows);
      const shared = owner !== null && owner.bornAt === this.stats.events ? owner : null;
      state = new RuleState(plan, this.store, this.stats.events, shared);
      key.setState(plan.index, state);
    }
    const now = event.timestamp;
    const taken = state.accept(event, this.allowedLatenessMs, rule.horizonMs);
    if (taken === LATE) {
      this.stats.lateEvents += 1;
      ruleStats.lateEvents += 1;
      return;
    }
    const a: Lane = state;
    const b = state.lane1;
    const target = laneIndex === 0 ? a : (b as Lane);
    if (target.owner === null) {
      // RULES.md "Redelivery", in every lane of the rule (its stored events), before anything of the
      // state changes. An event newer than all of them cannot be one (the usual case: no lane read).
      if (taken === TAKEN && (a.holdsId(event) || (b !== null && b.holdsId(event)))) {
        this.redeliveredAt[plan.index] = this.stats.events;
        this.stats.duplicateEvents += 1;
        ruleStats.duplicateEvents += 1;
        return;
      }
      target.insert(event);
    } else if (this.redeliveredAt[plan.follows] === this.stats.events) {
      // A follower's event was inserted by its owner, evaluated just before for the same event, unless
      // the owner found it a redelivery: the follower stores no event the owner lacks, and with the
      // same watermark holds the original too (not late: it lies within the follower's horizon).
      this.stats.duplicateEvents += 1;
      ruleStats.duplicateEvents += 1;
      return;
    }
    // As V1: nothing older than watermark - lateness - horizon can be in a non-late event's horizon
    // (store.evictBefore, set by accept).
    let evicted = a.advance(event);
    if (b !== null) evicted += b.advance(event);
    this.stats.storedEvents += 1 - evicted;

    const firedAt = state.lastFiredAt;
    if (firedAt !== null && now < firedAt + rule.cooldownMs) return;
    ruleStats.evaluations += 1;
    if (plan.kind !== K_SCAN && !this.mayFire(plan, a, b, event)) return;
    const lanes = state.lanes;

    ruleStats.decisions += 1;
    const started = performance.now();
    let result: Result | null = null;
    let failure: unknown = undefined;
    let failed = false;
    try {
      const decision = this.decide(plan, lanes, now, event);
      if (decision !== null)
        result = buildResult(
          rule,
          scope,
          asEvent(event.toEvent()),
          decision,
          evidenceOf(plan, lanes, laneIndex, now),
          'v2',
        );
    } catch (err) {
      failed = true;
      failure = err;
    }
    const elapsedMs = performance.now() - started;
    ruleStats.evaluationNs += Math.round(elapsedMs * 1e6);
    if (failed) {
      this.reportError(
        rule.id,
        new TapioError('RULE_FAILED', `rule ${rule.id} threw for ${scope} on event ${event.id}`, { cause: failure }),
      );
      return;
    }
    // As V1: an evaluation over budget is reported, and its finished result kept (engine-v1, evaluateRule).
    if (elapsedMs > this.ruleTimeoutMs) {
      this.reportError(
        rule.id,
        new TapioError(
          'RULE_TIMEOUT',
          `rule ${rule.id} took ${elapsedMs.toFixed(3)} ms for ${scope} on event ${event.id}` +
            ` (budget ${this.ruleTimeoutMs} ms)`,
        ),
      );
    }
    if (result === null) return;
    if (now < this.suppressUntil) {
      this.stats.suppressed += 1;
      return;
    }
    state.lastFiredAt = now;
    this.stats.results += 1;
    ruleStats.results += 1;
    out.push(result);
  }

  /**
   * O(1) necessary conditions of the catalogue's `decide`: false means it would return null. Only
   * exact quantities, except the running means, which are compared with FILTER_MARGIN to spare.
   */
  private mayFire(plan: RulePlan, a: Lane, b: Lane | null, row: EventRow): boolean {
    switch (plan.kind) {
      case K_ANCHORED: {
        const f = b as Lane;
        return a.hi > a.lo && f.hi - f.lo >= plan.minCount;
      }
      case K_MEMORY: {
        return a.samples >= plan.minCount && a.lastRatioAtLeast(plan.minValue);
      }
      case K_THROTTLE: {
        const t = b as Lane;
        if (a.samples < plan.minCount || t.hi === t.lo) return false;
        if (t.t(t.hi - 1) < row.timestamp - plan.lookbackMs) return false;
        return a.sum / a.samples >= plan.minValue - FILTER_MARGIN;
      }
      case K_CONTENTION:
        return (a.podCounts as Map<string, number>).size >= plan.minCount;
      case K_HIGH_CPU:
        return (
          a.samples >= plan.minCount &&
          a.spikes * 100 >= a.samples * plan.minPercent &&
          a.sum / a.samples >= plan.minValue - FILTER_MARGIN
        );
      case K_COUNT:
        return a.hi - a.lo >= plan.minCount;
      case K_FAILURES:
        return a.hi - a.lo >= plan.minCount && (a.podCounts as Map<string, number>).size >= plan.minPods;
      case K_DISK:
        // decide's null case: both ratios below their thresholds (a missing one reads as NaN here, -Infinity there).
        return row.attr('usage_ratio') >= plan.minValue || row.attr('inode_ratio') >= plan.minValue2;
      default:
        return true;
    }
  }

  /** The rule's summary, exactly as its `summarize` computes it over V1's window, then its `decide`. */
  private decide(plan: RulePlan, lanes: readonly Lane[], now: number, trigger: EventRow): Decision | null {
    const a = lanes[0] as Lane;
    switch (plan.kind) {
      case K_ANCHORED: {
        const f = lanes[1] as Lane;
        const anchorAt = a.t(a.lo);
        const pods = new Set<string>();
        let followers = 0;
        for (let i = f.lowerBound(f.lo, f.hi, anchorAt); i < f.hi; i++) {
          followers += 1;
          const pod = f.pods[i] ?? null;
          if (pod !== null) pods.add(pod);
        }
        const s: AnchoredSummary = { anchorAt, followers, distinctFollowerPods: pods.size };
        return plan.rule.decide(s, now);
      }
      case K_MEMORY: {
        const lsq = emptySums(now - plan.rule.windowMs, 0);
        let first = true;
        for (let i = a.lo; i < a.hi; i++) {
          const v = a.v(i);
          if (Number.isNaN(v)) continue;
          if (first) {
            lsq.originY = v;
            first = false;
          }
          addPoint(lsq, a.t(i), v);
        }
        const j = a.lastSample();
        const limit = j === -1 ? NaN : a.v2(j);
        const s: MemoryTrendSummary = {
          lsq,
          latestUsage: j === -1 ? NaN : a.v(j),
          latestLimit: Number.isNaN(limit) ? null : limit,
        };
        return plan.rule.decide(s, now);
      }
      case K_THROTTLE: {
        const t = lanes[1] as Lane;
        const s: ThrottleImpactSummary = {
          throttleCount: a.samples,
          throttleSum: exactSum(a),
          latestTimeoutAt: t.t(t.hi - 1),
        };
        return plan.rule.decide(s, now);
      }
      case K_CONTENTION: {
        const u = lanes[1] as Lane;
        const j = u.lastSample();
        const s: CpuContentionSummary = {
          throttledPods: (a.podCounts as Map<string, number>).size,
          latestNodeUsage: j === -1 ? null : u.v(j),
        };
        return plan.rule.decide(s, now);
      }
      case K_HIGH_CPU: {
        const s: HighCpuSummary = { samples: a.samples, sum: exactSum(a), spikes: a.spikes };
        return plan.rule.decide(s, now);
      }
      case K_COUNT: {
        let maxGapMs = 0;
        for (let i = a.lo + 1; i < a.hi; i++) maxGapMs = Math.max(maxGapMs, a.t(i) - a.t(i - 1));
        const s: CountSummary = { count: a.hi - a.lo, maxGapMs };
        return plan.rule.decide(s, now);
      }
      case K_FAILURES: {
        const trouble = lanes.length > 1 ? (lanes[1] as Lane) : null;
        const s: FailureSpreadSummary = {
          failures: a.hi - a.lo,
          distinctPods: (a.podCounts as Map<string, number>).size,
          latestPodTroubleAt: trouble === null || trouble.hi === trouble.lo ? null : trouble.t(trouble.hi - 1),
        };
        return plan.rule.decide(s, now);
      }
      case K_DISK: {
        const usage = trigger.attr('usage_ratio');
        const inodes = trigger.attr('inode_ratio');
        const s: DiskSummary = {
          usageRatio: Number.isNaN(usage) ? null : usage,
          inodeRatio: Number.isNaN(inodes) ? null : inodes,
        };
        return plan.rule.decide(s, now);
      }
      default: {
        // A rule without a known summary: V1's window (the horizon) and its own summarize.
        const window = a.events.slice(a.lo, a.hi) as Event[];
        return plan.rule.decide(plan.rule.summarize(window, now, asEvent(trigger.toEvent())), now);
      }
    }
  }

  private reportError(ruleId: string, err: TapioError): void {
    if (err.code === 'RULE_TIMEOUT' || err.code === 'RULE_FAILED') this.stats.ruleErrors[err.code] += 1;
    this.onRuleError?.(ruleId, err);
  }

  /** V1's idle-key policy, step for step, so that both engines forget the same state at the same time. */
  private afterEvent(row: EventRow): void {
    const timestamp = row.timestamp;
    if (timestamp > this.newest) this.newest = timestamp;
    if (this.newest - this.lastSweepAt < SWEEP_INTERVAL_MS) return;
    this.lastSweepAt = this.newest;
    const idleBefore = this.newest - this.keyIdleMs;
    // No key is idle: the loop below would free none.
    if (this.oldestNewest >= idleBefore) return;
    let oldest = Infinity;
    // values(), not entries(): no [scope, key] pair per key and sweep (an allocation profile of V2 on
    // bench/engine.ts's stream showed those pairs).
    for (const key of this.keys.values()) {
      if (key.newest < idleBefore) {
        for (let i = 0; i < this.plans.length; i++) {
          const state = key.state(i);
          if (state === null) continue;
          for (const l of state.lanes) {
            this.stats.storedEvents -= l.stored;
            l.release();
          }
          key.setState(i, null);
        }
        this.keys.delete(key.scope);
        // Out of the cache too, and emptied, so that a cache slot never holds a freed key's lanes.
        if (key.slot !== -1 && this.keyCache[key.slot] === key) this.keyCache[key.slot] = null;
        key.code = -1;
        this.stats.keysFreed += 1;
      } else if (key.newest < oldest) {
        oldest = key.newest;
      }
    }
    this.oldestNewest = oldest;
    this.stats.keys = this.keys.size;
  }
}

/** The window's measurements added in V1's scan order (timestamp, then arrival). */
function exactSum(l: Lane): number {
  let sum = 0;
  for (let i = l.lo; i < l.hi; i++) {
    const v = l.v(i);
    if (!Number.isNaN(v)) sum += v;
  }
  return sum;
}

/**
 * RULES.md evidence, as selectEvidence: the rule's input events with now - W <= t <= now, sorted by
 * timestamp then id, at most 50 with the trigger kept. The trigger is the last event of its lane's
 * cursor: it was inserted after every event with t <= now, and nothing has arrived since.
 */
function evidenceOf(plan: RulePlan, lanes: readonly Lane[], triggerLane: number, now: number): string[] {
  const from = now - plan.rule.windowMs;
  const inWindow: EvidenceEntry[] = [];
  for (let li = 0; li < lanes.length; li++) {
    const l = lanes[li] as Lane;
    const last = li === triggerLane ? l.hi - 1 : -1;
    for (let i = l.lowerBound(l.lo, l.hi, from); i < l.hi; i++) {
      inWindow.push(new EvidenceEntry(l.t(i), l.id(i), i === last));
    }
  }
  inWindow.sort(byTimestampThenId);
  if (inWindow.length <= MAX_EVIDENCE) return inWindow.map(idOf);
  const others = inWindow.filter(notTrigger);
  const kept = others.slice(others.length - (MAX_EVIDENCE - 1));
  const trigger = inWindow.find((e) => e.trigger) as EvidenceEntry;
  kept.push(trigger);
  kept.sort(byTimestampThenId);
  return kept.map(idOf);
}
