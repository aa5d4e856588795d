/**
 * What the CLI and the status page show: the split the routing config gives each rule category,
 * the routing change a rollout state asks for, and the state as a readable table.
 */
import { CATEGORIES, categoryOverride } from '@tapio/routing';
import type { RoutingConfig } from '@tapio/routing';
import type { CriterionResult, RolloutState } from './machine';
import { isActive, targetPercentage } from './machine';
import { formatDuration } from './plan';

export interface CategorySplit {
  category: string;
  /** Share of the category's scope keys on V2, percent (entity overrides aside); null when lag or time decides. */
  v2Percentage: number | null;
  /** What decides it: breaker, category override, feature flag or strategy. */
  by: string;
}

/** The split per category as the router decides it (ARCHITECTURE.md "Routing" order, entity overrides aside). */
export function categorySplit(config: RoutingConfig): CategorySplit[] {
  return CATEGORIES.map((category) => {
    if (config.breaker.mode === 'forced-open') return { category, v2Percentage: 0, by: 'breaker forced open' };
    const pinned = categoryOverride(config, category);
    if (pinned !== undefined) {
      const by = config.categoryOverrides[category] !== undefined ? 'category override' : 'feature flag';
      return { category, v2Percentage: pinned === 'v2' ? 100 : 0, by };
    }
    switch (config.strategy) {
      case 'percentage':
      case 'progressive':
        return { category, v2Percentage: config.v2Percentage, by: `strategy ${config.strategy}` };
      case 'load':
        return { category, v2Percentage: null, by: 'strategy load (V1 lag decides)' };
      case 'time':
        return { category, v2Percentage: null, by: 'strategy time (windows decide)' };
    }
  });
}

export interface RoutingChange {
  strategy: 'progressive';
  v2Percentage: number;
  breaker?: { mode: 'forced-open' | 'auto' };
}

/**
 * The change of the routing config a state asks for, or null when the config already says it.
 * A rolled-back or aborted rollout sends V2 0 % and, with `forceBreaker`, forces the breaker open
 * (so that category overrides and feature flags that pin V2 fall back to V1 too). `releaseBreaker`
 * (on start and retry) lets a breaker that the rollback forced open go back to auto.
 */
export function routingChange(
  state: RolloutState,
  current: RoutingConfig,
  options: { forceBreaker: boolean; releaseBreaker: boolean },
): RoutingChange | null {
  const pct = targetPercentage(state);
  if (pct === null) return null;
  const change: RoutingChange = { strategy: 'progressive', v2Percentage: pct };
  const stopped = state.status === 'rolled-back' || state.status === 'aborted';
  if (stopped && options.forceBreaker && current.breaker.mode !== 'forced-open')
    change.breaker = { mode: 'forced-open' };
  if (!stopped && options.releaseBreaker && current.breaker.mode === 'forced-open') change.breaker = { mode: 'auto' };
  const same =
    current.strategy === change.strategy &&
    current.v2Percentage === change.v2Percentage &&
    change.breaker === undefined;
  return same ? null : change;
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

function value(c: CriterionResult): string {
  if (c.value === null) return '-';
  return c.name === 'lag' ? String(c.value) : `${(c.value * 100).toFixed(2)} %`;
}

function limit(c: CriterionResult): string {
  return c.name === 'lag' ? String(c.max) : `${(c.max * 100).toFixed(2)} %`;
}

/** The state as text (`tapio rollout status`). */
export function formatRolloutStatus(state: RolloutState, nowMs: number): string {
  if (state.status === 'idle') return 'rollout: none started (tapio rollout start)\n';
  const stage = state.stages[state.stageIndex];
  const lines: string[] = [];
  lines.push(`rollout   ${state.id}`);
  lines.push(`status    ${state.status}`);
  lines.push(
    `stage     ${state.stageIndex + 1} of ${state.stages.length}` +
      (stage ? ` (${stage.percentage} % V2${stage.manualGate ? ', manual gate' : ''})` : '') +
      (isActive(state.status)
        ? `, for ${formatDuration(Math.max(0, Math.round((nowMs - state.stageStartedAtMs) / 1000)) * 1000)}`
        : ''),
  );
  lines.push(`V2 target ${targetPercentage(state) ?? '-'} %`);
  if (state.rollback) {
    lines.push(
      `rollback  ${new Date(state.rollback.atMs).toISOString()} ${state.rollback.cause}: ${state.rollback.reason}`,
    );
  }
  lines.push('');
  lines.push(`${pad('#', 3)} ${pad('V2 %', 6)} ${pad('min', 8)} ${pad('gate', 5)} state`);
  state.stages.forEach((s, i) => {
    const mark =
      i < state.stageIndex || (i === state.stageIndex && state.status === 'completed')
        ? 'passed'
        : i === state.stageIndex
          ? state.status
          : 'pending';
    lines.push(
      `${pad(String(i + 1), 3)} ${pad(String(s.percentage), 6)} ${pad(formatDuration(s.minDurationMs), 8)} ${pad(s.manualGate ? 'yes' : 'no', 5)} ${mark}`,
    );
  });
  const last = [...state.history].reverse().find((h) => h.criteria !== undefined);
  if (last?.criteria) {
    lines.push('');
    lines.push(`criteria at ${new Date(last.atMs).toISOString()} (${last.kind}):`);
    lines.push(`${pad('criterion', 14)} ${pad('value', 10)} ${pad('max', 10)} ${pad('samples', 12)} verdict`);
    for (const c of last.criteria) {
      lines.push(
        `${pad(c.name, 14)} ${pad(value(c), 10)} ${pad(limit(c), 10)} ${pad(`${c.samples}/${c.minSamples}`, 12)} ${c.verdict}`,
      );
    }
  }
  lines.push('');
  lines.push('history:');
  for (const h of state.history.slice(-15)) {
    lines.push(
      `  ${new Date(h.atMs).toISOString()}  ${pad(h.kind, 17)} stage ${h.stageIndex + 1} (${h.percentage} %)  ${h.reason}${h.by ? ` [${h.by}]` : ''}`,
    );
  }
  return lines.join('\n') + '\n';
}
