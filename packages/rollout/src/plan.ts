/**
 * A rollout plan (the seed plan's `ProgressiveRollout` / `RolloutStage`, Phase 3): stages of V2
 * percentage, each held at least `minDurationMs`, optionally behind a manual gate, and judged by
 * success criteria each with a threshold and a minimum sample count.
 */
import { z } from 'zod';
import { TapioError } from '@tapio/errors';

export const CRITERIA = ['errorRate', 'slowCallRate', 'mismatchRate', 'lag'] as const;
export type CriterionName = (typeof CRITERIA)[number];

export const criterionSchema = z
  .object({
    /** The criterion breaches when its value exceeds this (a ratio 0..1, or records for `lag`). */
    max: z.number().nonnegative(),
    /** Samples (see `Figures`) needed before the criterion is judged at all. */
    minSamples: z.number().int().nonnegative(),
    /**
     * true: too few samples holds the stage (inconclusive). false: the criterion is judged only when
     * it has enough samples and never holds the stage (the mismatch rate without a shadow comparator).
     */
    required: z.boolean(),
  })
  .strict();
export type Criterion = z.output<typeof criterionSchema>;

export const criteriaSchema = z
  .object({
    /** V2 errors / V2 calls (health snapshots). Samples: V2 calls. */
    errorRate: criterionSchema,
    /**
     * V2 slow calls / V2 calls: the share slower than `correlator.slowCallMs`. `max: 0.01` reads as
     * "V2 p99 processing latency below slowCallMs" (snapshots carry counts, not percentiles). Samples: V2 calls.
     */
    slowCallRate: criterionSchema,
    /** (missing + extra + differing) / compared, from the comparator's snapshots. Samples: compared results. */
    mismatchRate: criterionSchema,
    /** V2 consumer lag, records (the highest of the instances' latest reports). Samples: V2 snapshots. */
    lag: criterionSchema,
  })
  .strict();
export type Criteria = z.output<typeof criteriaSchema>;

export const stageSchema = z
  .object({
    percentage: z.number().min(0).max(100),
    minDurationMs: z.number().int().nonnegative(),
    /** When the stage's criteria are met, wait for a `promote` command instead of advancing. */
    manualGate: z.boolean(),
    criteria: criteriaSchema,
  })
  .strict();
export type RolloutStage = z.output<typeof stageSchema>;

/** A stage as a plan gives it (a start command, the config): criteria may be left to the defaults. */
export interface StageInput {
  percentage: number;
  minDurationMs: number;
  manualGate?: boolean;
  criteria?: Partial<Criteria>;
}

export const stageInputSchema = z
  .object({
    percentage: z.number().min(0).max(100),
    minDurationMs: z.number().int().nonnegative(),
    manualGate: z.boolean().optional(),
    criteria: criteriaSchema.partial().optional(),
  })
  .strict();

/** Complete stages: each gets the default criteria where it names none. Throws INVALID_CONFIG. */
export function resolveStages(stages: readonly StageInput[], defaults: Criteria): RolloutStage[] {
  if (stages.length === 0) {
    throw new TapioError('INVALID_CONFIG', 'rollout plan: at least one stage is needed', {
      context: { field: 'stages' },
    });
  }
  let previous = -1;
  return stages.map((s, i) => {
    if (s.percentage <= previous) {
      throw new TapioError(
        'INVALID_CONFIG',
        `rollout plan: stage ${i + 1} (${s.percentage} %) must raise the percentage of stage ${i} (${previous} %)`,
        { context: { field: `stages.${i}.percentage` } },
      );
    }
    previous = s.percentage;
    return stageSchema.parse({
      percentage: s.percentage,
      minDurationMs: s.minDurationMs,
      manualGate: s.manualGate ?? false,
      criteria: { ...defaults, ...(s.criteria ?? {}) },
    });
  });
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses the CLI's stage list: `10:60s,50:5m:gate,100:10m` (percentage : minimum duration, a bare
 * number is ms, `:gate` adds a manual gate). Throws INVALID_CONFIG naming the bad item.
 */
export function parseStageSpec(spec: string): StageInput[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((item, i) => {
      const [pct, dur, gate, ...rest] = item.split(':');
      const percentage = Number(pct);
      const m = DURATION.exec(dur ?? '');
      const bad = (what: string): TapioError =>
        new TapioError('INVALID_CONFIG', `--stages item ${i + 1} '${item}': ${what}`, {
          context: { field: `stages.${i}` },
        });
      if (pct === undefined || pct.trim() === '' || !Number.isFinite(percentage) || percentage < 0 || percentage > 100)
        throw bad('expected a percentage 0..100 before the first colon');
      if (m === null) throw bad('expected a duration such as 60s, 5m or 1h after the percentage');
      if ((gate !== undefined && gate !== 'gate') || rest.length > 0) throw bad("the only suffix allowed is ':gate'");
      return {
        percentage,
        minDurationMs: Math.round(Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] as number)),
        manualGate: gate === 'gate',
      };
    });
}

/** The stage list in the CLI's notation (for status output). */
export function formatStages(stages: readonly Pick<RolloutStage, 'percentage' | 'minDurationMs' | 'manualGate'>[]) {
  return stages
    .map((s) => `${s.percentage}:${formatDuration(s.minDurationMs)}${s.manualGate ? ':gate' : ''}`)
    .join(',');
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
