/**
 * The routing decision for one (rule category, scope key), in ARCHITECTURE.md's order:
 * breaker open → V1; entity override; category override (and the seed's feature flags); strategy;
 * default V1.
 */
import { RULES_BY_ID } from '@tapio/rules';
import type { Category, RuleDefinition } from '@tapio/rules';
import type { Engine, RoutingConfig } from './config';
import { FEATURE_CATEGORIES } from './config';

export type BreakerStateName = 'closed' | 'half-open' | 'open';

/** Buckets of the sticky hash: a percentage p sends buckets [0, p * 100) to V2. */
export const BUCKETS = 10_000;

/** 32-bit FNV-1a over the UTF-16 code units of the text (stable, fast, no allocation). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The key's bucket, 0..9999: salted so that a new salt reshuffles keys. A key's bucket never depends
 * on the percentage, so raising the percentage only moves keys from V1 to V2.
 */
export function bucketOf(salt: string, scopeKey: string): number {
  return fnv1a(`${salt}\u0000${scopeKey}`) % BUCKETS;
}

/** The shadow sample's bucket: an independent hash, so shadowed keys are not the ones next in line for V2. */
export function shadowBucketOf(salt: string, scopeKey: string): number {
  return fnv1a(`shadow\u0000${salt}\u0000${scopeKey}`) % BUCKETS;
}

export function inPercentage(bucket: number, percentage: number): boolean {
  return bucket < Math.round(percentage * (BUCKETS / 100));
}

/** The names an entity override can match. */
export interface EntityNames {
  namespace?: string;
  node?: string;
  /** Pod name; overrides match `<namespace>/<pod>` or the bare pod name. */
  pod?: string;
  /** Service name; overrides match `<namespace>/<service>` or the bare service name. */
  service?: string;
}

/**
 * The names a scope key holds (RULES.md, "Scope keys"). Entity overrides are matched against these,
 * not against the event's own entity: every event of a (category, scope key) must reach the same
 * engine, or the key's window would be split (a node key is fed by pods of many namespaces).
 */
export function entityNamesOfScopeKey(scopeKey: string): EntityNames {
  const parts = scopeKey.split('/');
  switch (parts[0]) {
    case 'container':
      return { namespace: parts[1], pod: parts[2] };
    case 'pod':
      return { namespace: parts[1], pod: parts[2] };
    case 'node':
      return { node: parts.slice(1).join('/') };
    case 'namespace':
      return { namespace: parts[1] };
    case 'service':
      return { namespace: parts[1], service: parts[2] };
    default:
      return {};
  }
}

export interface DecisionContext {
  config: RoutingConfig;
  breaker: BreakerStateName;
  /** V1 consumer lag (sum over instances) as the health snapshots last reported it. */
  v1Lag: number;
  /** Wall-clock time, for the `time` strategy's windows of the day. */
  nowMs: number;
}

function overrideOf(map: Record<string, Engine> | undefined, ...names: (string | undefined)[]): Engine | undefined {
  if (map === undefined) return undefined;
  for (const n of names) {
    if (n === undefined) continue;
    const e = map[n];
    if (e !== undefined) return e;
  }
  return undefined;
}

/**
 * Entity override, most specific name first: pod, service, node, namespace. Undefined when none
 * matches.
 */
export function entityOverride(config: RoutingConfig, names: EntityNames): Engine | undefined {
  const o = config.entityOverrides;
  const qualified = (n: string | undefined): string | undefined =>
    n === undefined || names.namespace === undefined ? undefined : `${names.namespace}/${n}`;
  return (
    overrideOf(o.pod, qualified(names.pod), names.pod) ??
    overrideOf(o.service, qualified(names.service), names.service) ??
    overrideOf(o.node, names.node) ??
    overrideOf(o.namespace, names.namespace)
  );
}

/** Category override, then the feature flag that names the category (true pins V2). */
export function categoryOverride(config: RoutingConfig, category: Category): Engine | undefined {
  const pinned = config.categoryOverrides[category];
  if (pinned !== undefined) return pinned;
  for (const [flag, cat] of Object.entries(FEATURE_CATEGORIES)) {
    if (cat === category && config.features[flag as keyof typeof FEATURE_CATEGORIES] === true) return 'v2';
  }
  return undefined;
}

function minutesOf(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

const DAY_MS = 86_400_000;

/** The V2 percentage of the time window containing `nowMs` (UTC), or 0 outside every window. */
export function timeWindowPercentage(config: RoutingConfig, nowMs: number): number {
  const minute = Math.floor((((nowMs % DAY_MS) + DAY_MS) % DAY_MS) / 60_000);
  for (const w of config.time.windows) {
    const s = minutesOf(w.start);
    const e = minutesOf(w.end);
    const inside = s < e ? minute >= s && minute < e : minute >= s || minute < e;
    if (inside) return w.v2Percentage;
  }
  return 0;
}

/** The latest window boundary (start or end) at or before `nowMs`, as epoch ms; null without windows. */
export function lastTimeBoundary(config: RoutingConfig, nowMs: number): number | null {
  let latest: number | null = null;
  const dayStart = nowMs - (((nowMs % DAY_MS) + DAY_MS) % DAY_MS);
  for (const w of config.time.windows) {
    for (const hhmm of [w.start, w.end]) {
      let at = dayStart + minutesOf(hhmm) * 60_000;
      if (at > nowMs) at -= DAY_MS;
      if (latest === null || at > latest) latest = at;
    }
  }
  return latest;
}

/** What the strategy alone decides (step 4). */
export function strategyDecision(scopeKey: string, ctx: DecisionContext): Engine {
  const { config } = ctx;
  switch (config.strategy) {
    case 'percentage':
    case 'progressive':
      return inPercentage(bucketOf(config.salt, scopeKey), config.v2Percentage) ? 'v2' : 'v1';
    case 'load':
      return ctx.v1Lag > config.load.v1LagThreshold ? 'v2' : 'v1';
    case 'time':
      return inPercentage(bucketOf(config.salt, scopeKey), timeWindowPercentage(config, ctx.nowMs)) ? 'v2' : 'v1';
  }
}

/**
 * The engine for one (category, rule or rule id, scope key). `entity` holds the names overrides match; the
 * router passes `entityNamesOfScopeKey(scopeKey)` (see there why not the event's entity).
 */
export function decide(
  categoryOrRule: RuleDefinition | string,
  scopeKey: string,
  entity: EntityNames,
  ctx: DecisionContext,
): Engine {
  if (ctx.breaker === 'open') return 'v1';
  const byEntity = entityOverride(ctx.config, entity);
  if (byEntity !== undefined) return byEntity;
  const category = categoryOf(categoryOrRule);
  if (category !== undefined) {
    const byCategory = categoryOverride(ctx.config, category);
    if (byCategory !== undefined) return byCategory;
  }
  return strategyDecision(scopeKey, ctx);
}

/** A category name, a rule, or a rule id, as its category (undefined for an unknown name). */
export function categoryOf(categoryOrRule: RuleDefinition | string): Category | undefined {
  if (typeof categoryOrRule !== 'string') return categoryOrRule.category;
  const rule = RULES_BY_ID.get(categoryOrRule);
  if (rule !== undefined) return rule.category;
  return (['resource', 'performance', 'reliability', 'network', 'storage'] as string[]).includes(categoryOrRule)
    ? (categoryOrRule as Category)
    : undefined;
}
