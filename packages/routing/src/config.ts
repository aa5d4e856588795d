/**
 * The routing config document (ARCHITECTURE.md, "Routing"): one JSON object with a monotonically
 * increasing epoch, kept under a fixed key in the compacted control topic. Validated with zod; an
 * invalid document is rejected with an INVALID_CONFIG error naming the field.
 */
import { z } from 'zod';
import type { TapioConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import { RULES } from '@tapio/rules';
import type { Category, RuleDefinition } from '@tapio/rules';

export const ENGINES = ['v1', 'v2'] as const;
export type Engine = (typeof ENGINES)[number];

export const CATEGORIES: readonly Category[] = ['resource', 'performance', 'reliability', 'network', 'storage'];

export const STRATEGIES = ['percentage', 'load', 'time', 'progressive'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/**
 * The seed plan's feature flags and the category each one names (RULES.md, last paragraph).
 * Reading chosen here: `true` pins the category to V2 (like a category override); `false` does not
 * pin it to V1, it leaves the category to the strategy. An explicit `categoryOverrides` entry wins.
 */
export const FEATURE_CATEGORIES = {
  v2_memory_rules: 'resource',
  v2_cpu_rules: 'performance',
  v2_network_rules: 'network',
} as const satisfies Record<string, Category>;

const engine = z.enum(ENGINES);
const names = z.record(z.string().min(1), engine);
const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const hhmm = z.string().regex(HHMM, 'expected a time of day HH:MM (00:00 to 23:59)');
const percentage = z.number().min(0).max(100);
const ratio = z.number().min(0).max(1);
const ms = z.number().int().nonnegative();

/**
 * Routers apply only an epoch above the one in force, so an accepted 1e300 (or anything past 2^53,
 * where epoch + 1 === epoch) froze routing. No writer that bumps by one reaches 2^48, and it still
 * admits epochs taken from a millisecond clock.
 */
export const MAX_ROUTING_EPOCH = 2 ** 48;

export const routingConfigSchema = z
  .object({
    epoch: z.number().int().nonnegative().max(MAX_ROUTING_EPOCH),
    strategy: z.enum(STRATEGIES),
    /** 0..100; `progressive` reads the value the rollout controller writes here. */
    v2Percentage: percentage,
    /** Salts the sticky hash; changing it reshuffles every key (a full route change). */
    salt: z.string(),
    entityOverrides: z
      .object({ namespace: names.optional(), node: names.optional(), pod: names.optional(), service: names.optional() })
      .strict(),
    categoryOverrides: z.record(z.enum(CATEGORIES as [Category, ...Category[]]), engine),
    features: z
      .object({
        v2_memory_rules: z.boolean().optional(),
        v2_cpu_rules: z.boolean().optional(),
        v2_network_rules: z.boolean().optional(),
      })
      .strict(),
    load: z.object({ v1LagThreshold: z.number().int().nonnegative() }).strict(),
    time: z
      .object({
        windows: z.array(z.object({ start: hhmm, end: hhmm, v2Percentage: percentage }).strict()),
        timezone: z.literal('UTC'),
      })
      .strict(),
    shadow: z.object({ enabled: z.boolean(), percentage }).strict(),
    breaker: z
      .object({
        mode: z.enum(['auto', 'forced-open', 'disabled']),
        /** Number of health snapshots in the sliding window. */
        windowSize: z.number().int().positive(),
        /** Calls summed over the window below which the rates are not judged. */
        minimumCalls: z.number().int().nonnegative(),
        failureRateThreshold: ratio,
        slowCallRateThreshold: ratio,
        slowCallMs: ms,
        openMs: ms,
        halfOpenTrials: z.number().int().positive(),
      })
      .strict(),
    handoff: z.object({ warmupMs: ms }).strict(),
  })
  .strict()
  .superRefine((doc, ctx) => {
    // With windows and gaps at least one warm-up long, at most one boundary lies within any
    // warm-up span, which is what the time strategy's handoff assumes (plan.ts).
    const minutes = (s: string): number => {
      const m = HHMM.exec(s) as RegExpExecArray;
      return Number(m[1]) * 60 + Number(m[2]);
    };
    // Refinements run on dirty data too: judge the windows only once every time reads well.
    if (!doc.time.windows.every((w) => HHMM.test(w.start) && HHMM.test(w.end))) return;
    const spans = doc.time.windows.map((w) => ({ s: minutes(w.start), e: minutes(w.end) }));
    spans.forEach((w, i) => {
      if (w.s === w.e) {
        ctx.addIssue({ code: 'custom', path: ['time', 'windows', i, 'end'], message: 'a window must not be empty' });
      }
    });
    const warmupMin = Math.ceil(doc.handoff.warmupMs / 60_000);
    const sorted = [...spans].map((w, i) => ({ ...w, i })).sort((a, b) => a.s - b.s);
    sorted.forEach((w, k) => {
      const len = (w.e - w.s + 1440) % 1440;
      if (len < warmupMin) {
        ctx.addIssue({
          code: 'custom',
          path: ['time', 'windows', w.i],
          message: `a window must last at least handoff.warmupMs (${warmupMin} min)`,
        });
      }
      const next = sorted[(k + 1) % sorted.length] as (typeof sorted)[number];
      if (sorted.length > 1) {
        const gap = (next.s - w.e + 1440) % 1440;
        if (gap < warmupMin) {
          ctx.addIssue({
            code: 'custom',
            path: ['time', 'windows', next.i, 'start'],
            message: `windows must not overlap and must be at least handoff.warmupMs (${warmupMin} min) apart`,
          });
        }
      }
    });
  });

export type RoutingConfig = z.output<typeof routingConfigSchema>;
export type RoutingConfigInput = z.input<typeof routingConfigSchema>;
export type BreakerSettings = RoutingConfig['breaker'];

/**
 * The longest span of event time a rule looks back from "now" (horizon = max(window, look-back))
 * plus the allowed lateness: after that long, an engine that started receiving a key holds every
 * event any window of that key can contain.
 */
export function defaultWarmupMs(allowedLatenessMs: number, rules: readonly RuleDefinition[] = RULES): number {
  return Math.max(0, ...rules.map((r) => r.horizonMs)) + allowedLatenessMs;
}

/**
 * The initial document (epoch 0) from `config.correlation.hybrid`: its percentage, strategy and
 * feature flags, its rollback error threshold and latency threshold as the breaker's failure rate
 * and slow-call time. `enabled: false` routes everything to V1 (percentage 0, no flags).
 */
export function defaultRoutingConfig(
  config: Pick<TapioConfig, 'correlation'>,
  rules: readonly RuleDefinition[] = RULES,
): RoutingConfig {
  const hybrid = config.correlation.hybrid;
  const features: RoutingConfig['features'] = {};
  if (hybrid.enabled) {
    for (const flag of Object.keys(FEATURE_CATEGORIES) as (keyof typeof FEATURE_CATEGORIES)[]) {
      const value = hybrid.features[flag];
      if (value !== undefined) features[flag] = value;
    }
  }
  return {
    epoch: 0,
    strategy: hybrid.routing_strategy,
    v2Percentage: hybrid.enabled ? hybrid.v2_percentage : 0,
    salt: 'tapio',
    entityOverrides: {},
    categoryOverrides: {},
    features,
    load: { v1LagThreshold: 10_000 },
    time: { windows: [], timezone: 'UTC' },
    shadow: { enabled: false, percentage: 0 },
    breaker: {
      mode: 'auto',
      windowSize: 10,
      minimumCalls: 100,
      failureRateThreshold: hybrid.rollback.error_threshold,
      slowCallRateThreshold: 0.5,
      slowCallMs: hybrid.rollback.latency_threshold,
      openMs: 30_000,
      halfOpenTrials: 3,
    },
    handoff: { warmupMs: defaultWarmupMs(config.correlation.allowedLatenessMs, rules) },
  };
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? 'undefined' : text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * Validates a document (parsed JSON). Throws TapioError INVALID_CONFIG whose message starts with the
 * field path and whose context.field is that path.
 */
export function validateRoutingConfig(value: unknown): RoutingConfig {
  const parsed = routingConfigSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0] as z.ZodIssue;
  const field = issue.path.join('.') || '(root)';
  const found = issue.path.reduce<unknown>(
    (v, k) => (typeof v === 'object' && v !== null ? (v as Record<string | number, unknown>)[k] : undefined),
    value,
  );
  const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  throw new TapioError('INVALID_CONFIG', `routing config: ${field} = ${describe(found)}: ${issue.message}${extra}`, {
    context: { field },
  });
}

/** Parses the control record's bytes (JSON) and validates them. */
export function parseRoutingConfig(bytes: Buffer | string | null): RoutingConfig {
  if (bytes === null) {
    throw new TapioError('INVALID_CONFIG', 'routing config: the control record has no value', {
      context: { field: '(root)' },
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString());
  } catch (cause) {
    throw new TapioError('INVALID_CONFIG', `routing config is not valid JSON: ${(cause as Error).message}`, {
      cause,
      context: { field: '(root)' },
    });
  }
  return validateRoutingConfig(value);
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: unknown, patch: unknown): unknown {
  if (!isPlain(base) || !isPlain(patch)) return patch === undefined ? base : patch;
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    // null deletes a map entry (e.g. an entity override), so that `route set` can remove one.
    if (v === null) delete out[k];
    else out[k] = merge(base[k], v);
  }
  return out;
}

/**
 * A document with a patch merged in (objects deeply, arrays and scalars replaced, null removes an
 * entry), validated. The epoch is kept: `writeRoutingConfig` bumps it.
 */
export function patchRoutingConfig(doc: RoutingConfig, patch: Record<string, unknown>): RoutingConfig {
  const merged = merge(structuredClone(doc), patch) as Plain;
  merged['epoch'] = doc.epoch;
  return validateRoutingConfig(merged);
}
