/**
 * Route plans: which records the router emits for one event (ARCHITECTURE.md, "re-keying by
 * correlation scope" and "Routing"), including shadow copies and the route-change handoff.
 *
 * Handoff scheme (why no incident that spans a route change is missed):
 * A route change for a (category, scope key) happens when a new config epoch is applied, when the
 * load strategy's V1-overloaded state flips, when a time window of the day starts or ends, or when
 * the breaker stops being open. Each change is anchored at a time F (for a config, the control
 * record's timestamp, which every router reads alike) and lasts until U = F + warmupMs, where
 * warmupMs >= the longest rule horizon (window or look-back) + the allowed lateness.
 * For a record with event time t < U whose decision differs before and after the change:
 *  - the engine that held the key before the change (A) keeps receiving it, unsuppressed;
 *  - the new engine (B) receives it too, with header `tapio-suppress-until` = U: results triggered by
 *    that record are neither published nor start a cooldown; the record still feeds B's windows.
 * Records with t >= U go to B only, unsuppressed.
 * Proof sketch, for an incident of rule r on key k triggered at event time tau:
 *  - tau < U: A has received every event of k with t < U (before the change it was k's engine,
 *    during the handoff it still is), so A sees the complete window [tau - W, tau] and publishes.
 *  - tau >= U: the window starts at tau - H >= U - H = F + lateness. Every event with t > F + lateness
 *    reached the router after the change was applied (events are at most `lateness` ahead of
 *    the wall clock that anchors F, and routers apply a config within a second), so B has the complete
 *    window and, tau >= U, is not suppressed.
 * Several changes within one warm-up chain: the engine that held the key before the OLDEST change
 * still active for t is the one with complete data (induction over the chain), so it is the one left
 * unsuppressed; every other engine of the chain receives the record suppressed. Opening the breaker
 * is the exception: V2 is failing, so keys move to V1 at once and windows open on V2 are lost.
 *
 * Shadow copies warm up the same way. A key that starts being shadowed (shadow enabled, percentage
 * raised, salt changed, breaker closed again) has a shadow engine without its history, so until the
 * change's U its shadow copies are suppressed and its V1 records are not marked `compared`; the
 * comparator pairs only results of `compared` records, so neither a cold shadow engine nor a key
 * that is not shadowed at all shows up as a mismatch.
 */
import type { Event } from '@tapio/events';
import { RULES_BY_ID, routesFor } from '@tapio/rules';
import type { Category } from '@tapio/rules';
import type { Engine, RoutingConfig } from './config';
import type { BreakerStateName, DecisionContext, EntityNames } from './decide';
import { decide, entityNamesOfScopeKey, inPercentage, lastTimeBoundary, shadowBucketOf } from './decide';

/** Where a planned record goes: an engine's topic or the V2 shadow topic. */
export type RouteTarget = Engine | 'v2-shadow';

export interface PlannedRoute {
  target: RouteTarget;
  /** The record key. */
  scopeKey: string;
  /** Rule ids to evaluate, in catalogue order. */
  ruleIds: string[];
  /** Event time until which results triggered by this record must not be published; null: publish. */
  suppressUntilMs: number | null;
  /**
   * On a V1 record: its results are to be compared with V2 shadow's, because the key has a shadow
   * copy and had one under every config of the last warm-up (the shadow engine's windows are
   * complete). False on every other record.
   */
  compared: boolean;
}

/** What decided before a change: a config (with the V1 lag and, for time windows, the instant), or "all V1". */
export type Decider = { kind: 'config'; config: RoutingConfig; v1Lag: number; nowMs?: number } | { kind: 'v1-only' };

export interface Handoff {
  /** The decider in effect before the change. */
  before: Decider;
  /** The change's anchor (ms). */
  fromMs: number;
  /** fromMs + warmupMs of the config after the change: event time from which only the new route holds. */
  untilMs: number;
  /** Why (for logs): `epoch 7`, `load`, `breaker`. */
  cause: string;
}

export interface RoutingState {
  readonly config: RoutingConfig;
  /** V1 lag as last reported, for the load strategy. */
  readonly v1Lag: number;
  /** Changes, oldest first; ones that no event time can still reach are pruned by RoutingTable. */
  readonly handoffs: readonly Handoff[];
}

function decideWith(
  decider: Decider,
  category: Category,
  scopeKey: string,
  names: EntityNames,
  breaker: BreakerStateName,
  nowMs: number,
): Engine {
  if (decider.kind === 'v1-only') return 'v1';
  const ctx: DecisionContext = { config: decider.config, breaker, v1Lag: decider.v1Lag, nowMs: decider.nowMs ?? nowMs };
  return decide(category, scopeKey, names, ctx);
}

/** The time strategy's own change: a window boundary within the last warm-up. */
function timeBoundaryHandoff(state: RoutingState, nowMs: number): Handoff | null {
  const { config } = state;
  if (config.strategy !== 'time') return null;
  const b = lastTimeBoundary(config, nowMs);
  if (b === null || nowMs - b >= config.handoff.warmupMs) return null;
  return {
    before: { kind: 'config', config, v1Lag: state.v1Lag, nowMs: b - 1 },
    fromMs: b,
    untilMs: b + config.handoff.warmupMs,
    cause: 'time window',
  };
}

/**
 * The records to emit for one event: for each scope key of `routesFor(event)`, one record per
 * (target, suppression) with the rule ids routed there. `nowMs` is the wall clock (time windows).
 */
export function planRoutes(
  event: Event,
  state: RoutingState,
  breaker: BreakerStateName,
  nowMs: number,
): PlannedRoute[] {
  const routes = routesFor(event);
  const out: PlannedRoute[] = [];
  if (routes.length === 0) return out;
  const t = event.timestamp;
  const { config } = state;
  const current: Decider = { kind: 'config', config, v1Lag: state.v1Lag };
  let active: Handoff[] = [];
  if (breaker !== 'open') {
    active = state.handoffs.filter((h) => t < h.untilMs);
    const boundary = timeBoundaryHandoff(state, nowMs);
    if (boundary !== null && t < boundary.untilMs) active.push(boundary);
  }
  const maxUntil = active.reduce((m, h) => Math.max(m, h.untilMs), 0);
  const shadowOn = breaker !== 'open' && shadows(config, null);

  for (const { scopeKey, ruleIds } of routes) {
    const names = entityNamesOfScopeKey(scopeKey);
    // Groups in a fixed order: unsuppressed v1, v2, then suppressed v1, v2.
    const groups = new Map<string, PlannedRoute>();
    const add = (target: Engine, suppressUntilMs: number | null, ruleId: string): void => {
      const id = `${suppressUntilMs === null ? 0 : 1}${target}`;
      let g = groups.get(id);
      if (g === undefined) {
        g = { target, scopeKey, ruleIds: [], suppressUntilMs, compared: false };
        groups.set(id, g);
      }
      g.ruleIds.push(ruleId);
    };
    for (const ruleId of ruleIds) {
      const category = (RULES_BY_ID.get(ruleId) as { category: Category }).category;
      const now = decideWith(current, category, scopeKey, names, breaker, nowMs);
      if (active.length === 0) {
        add(now, null, ruleId);
        continue;
      }
      const warm = decideWith((active[0] as Handoff).before, category, scopeKey, names, breaker, nowMs);
      const engines = new Set<Engine>([warm, now]);
      for (let i = 1; i < active.length; i++) {
        engines.add(decideWith((active[i] as Handoff).before, category, scopeKey, names, breaker, nowMs));
      }
      for (const e of engines) add(e, e === warm ? null : maxUntil, ruleId);
    }
    const ordered = ['0v1', '0v2', '1v1', '1v2'].flatMap((id) => {
      const g = groups.get(id);
      return g === undefined ? [] : [g];
    });
    for (const g of ordered) out.push(g);
    if (shadowOn && shadows(config, scopeKey)) {
      // Cold until the last change under which the key was not shadowed has passed its warm-up.
      let coldUntil: number | null = null;
      for (const h of active) {
        if (h.before.kind === 'config' && shadows(h.before.config, scopeKey)) continue;
        coldUntil = Math.max(coldUntil ?? h.untilMs, h.untilMs);
      }
      for (const g of ordered) {
        if (g.target !== 'v1') continue;
        const suppressUntilMs =
          coldUntil === null ? g.suppressUntilMs : Math.max(g.suppressUntilMs ?? coldUntil, coldUntil);
        out.push({ ...g, target: 'v2-shadow', ruleIds: [...g.ruleIds], suppressUntilMs });
        if (coldUntil === null) g.compared = true;
      }
    }
  }
  return out;
}

/** Whether `config` shadows `scopeKey` (null: whether it shadows any key). */
function shadows(config: RoutingConfig, scopeKey: string | null): boolean {
  const { enabled, percentage } = config.shadow;
  if (!enabled || percentage <= 0) return false;
  return scopeKey === null || inPercentage(shadowBucketOf(config.salt, scopeKey), percentage);
}

export interface ApplyOutcome {
  applied: boolean;
  /** Why not, when not applied. */
  reason?: string;
}

/**
 * Holds the routing state of one router: the current config, the V1 lag, the breaker state seen
 * last, and the chain of recent changes that `planRoutes` needs for the handoff.
 */
export class RoutingTable {
  private config: RoutingConfig;
  private v1Lag = 0;
  private breaker: BreakerStateName = 'closed';
  private handoffs: Handoff[] = [];
  /** Whether the current config has decided anything yet (a config that never routed needs no handoff). */
  private inEffect = false;
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private readonly maxHandoffs: number;

  constructor(initial: RoutingConfig, options: { maxHandoffs?: number } = {}) {
    this.config = initial;
    this.maxHandoffs = options.maxHandoffs ?? 32;
  }

  get current(): RoutingConfig {
    return this.config;
  }

  get breakerState(): BreakerStateName {
    return this.breaker;
  }

  get state(): RoutingState {
    return { config: this.config, v1Lag: this.v1Lag, handoffs: this.handoffs };
  }

  /**
   * Applies a newer epoch, anchored at `anchorMs` (the control record's timestamp). An older or
   * equal epoch is refused.
   */
  apply(config: RoutingConfig, anchorMs: number): ApplyOutcome {
    if (config.epoch <= this.config.epoch && this.inEffect) {
      return { applied: false, reason: `epoch ${config.epoch} is not newer than ${this.config.epoch}` };
    }
    if (this.inEffect) {
      this.push({
        before: { kind: 'config', config: this.config, v1Lag: this.v1Lag },
        fromMs: anchorMs,
        untilMs: anchorMs + config.handoff.warmupMs,
        cause: `epoch ${config.epoch}`,
      });
    }
    this.config = config;
    this.inEffect = true;
    return { applied: true };
  }

  /** New V1 lag; under the load strategy a flip of "V1 overloaded" is a route change. */
  setV1Lag(lag: number, anchorMs: number): void {
    const threshold = this.config.load.v1LagThreshold;
    const flipped = lag > threshold !== this.v1Lag > threshold;
    if (flipped && this.inEffect && this.config.strategy === 'load') {
      this.push({
        before: { kind: 'config', config: this.config, v1Lag: this.v1Lag },
        fromMs: anchorMs,
        untilMs: anchorMs + this.config.handoff.warmupMs,
        cause: 'load',
      });
    }
    this.v1Lag = lag;
  }

  /**
   * The breaker's state: opening drops the chain (everything goes to V1); leaving open starts a
   * handoff from "all V1", because V1 is the engine that held every key meanwhile.
   */
  setBreaker(state: BreakerStateName, anchorMs: number): void {
    const was = this.breaker;
    this.breaker = state;
    if (state === was) return;
    if (state === 'open') {
      this.handoffs = [];
    } else if (was === 'open') {
      this.handoffs = [
        {
          before: { kind: 'v1-only' },
          fromMs: anchorMs,
          untilMs: anchorMs + this.config.handoff.warmupMs,
          cause: 'breaker',
        },
      ];
    }
  }

  /** The plan for one event; also advances the event-time watermark that prunes old handoffs. */
  plan(event: Event, nowMs: number): PlannedRoute[] {
    this.inEffect = true;
    if (event.timestamp > this.watermarkMs) {
      this.watermarkMs = event.timestamp;
      this.prune();
    }
    return planRoutes(event, this.state, this.breaker, nowMs);
  }

  private push(h: Handoff): void {
    this.handoffs = [...this.handoffs, h];
    if (this.handoffs.length > this.maxHandoffs) this.handoffs = this.handoffs.slice(-this.maxHandoffs);
  }

  /**
   * Drops changes that no record can still reach: once the watermark passes untilMs by a warm-up
   * (which includes the allowed lateness), a record older than untilMs would be late for every rule.
   */
  private prune(): void {
    const keep = this.handoffs.filter((h) => this.watermarkMs < h.untilMs + this.config.handoff.warmupMs);
    if (keep.length !== this.handoffs.length) this.handoffs = keep;
  }
}
