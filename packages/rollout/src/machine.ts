/**
 * The rollout state machine (seed plan Phase 3-4: ProgressiveRollout and automatic rollback),
 * pure: `evaluate(state, figures, nowMs)` once per evaluation interval, `applyCommand` for the
 * operator's commands. The state is plain JSON, stored on the control topic so that a restarted
 * controller resumes where the last one was.
 *
 * Readings chosen here:
 * - A breach rolls back at once, in any active status (running, waiting for promote, paused):
 *   pausing stops advancing, never the safety net.
 * - Criteria are judged on the snapshots received since the current stage started (within the
 *   sliding window), so a stage is judged on traffic at its own percentage.
 * - Time paused counts towards the stage's minimum duration.
 * - `promote` advances past a manual gate, or past the minimum duration of a running stage; it never
 *   overrides a breach (a breach has already rolled back).
 * - `abort` rolls back like a breach (V2 to 0 %), by the operator; `retry` restarts the stage that
 *   was rolled back or aborted, from its beginning.
 */
import type { Criterion, CriterionName, RolloutStage } from './plan';
import { CRITERIA } from './plan';
import type { Figures } from './window';

export const STATUSES = [
  'idle',
  'running',
  'waiting-promote',
  'paused',
  'completed',
  'rolled-back',
  'aborted',
] as const;
export type RolloutStatus = (typeof STATUSES)[number];

export const DECISIONS = ['advance', 'hold', 'wait-for-promote', 'rollback', 'complete', 'none'] as const;
export type DecisionKind = (typeof DECISIONS)[number];

export const COMMANDS = ['start', 'pause', 'resume', 'promote', 'abort', 'retry'] as const;
export type CommandName = (typeof COMMANDS)[number];

export type Verdict = 'met' | 'breached' | 'inconclusive' | 'not-judged';

export interface CriterionResult {
  name: CriterionName;
  /** null when there are no samples. */
  value: number | null;
  max: number;
  samples: number;
  minSamples: number;
  required: boolean;
  verdict: Verdict;
}

export interface Decision {
  decision: DecisionKind;
  /** Why, as a stable word: paused, min-duration, inconclusive, gate, breach, passed, or the status. */
  code: string;
  /** Why, in words (e.g. `errorRate 0.42 > 0.05 (120 samples)`). */
  reason: string;
  stageIndex: number;
  criteria: CriterionResult[];
}

export interface HistoryEntry {
  atMs: number;
  /** A decision of the machine, or `command:<name>` for an operator's command. */
  kind: DecisionKind | `command:${CommandName}`;
  stageIndex: number;
  percentage: number;
  reason: string;
  /** The figures that led to a decision (absent for commands). */
  criteria?: CriterionResult[];
  by?: string;
}

export interface RollbackRecord {
  atMs: number;
  stageIndex: number;
  /** `breach` (automatic) or `abort` (an operator). */
  cause: 'breach' | 'abort';
  reason: string;
  breaches: CriterionResult[];
  by?: string;
}

export interface RolloutState {
  version: 1;
  /** Changes whenever something worth storing changes (the controller writes the state then). */
  revision: number;
  /** Identifies one rollout (from its start command). */
  id: string;
  status: RolloutStatus;
  stages: RolloutStage[];
  stageIndex: number;
  startedAtMs: number;
  stageStartedAtMs: number;
  updatedAtMs: number;
  /** The status a paused rollout returns to on resume. */
  pausedFrom: 'running' | 'waiting-promote' | null;
  rollback: RollbackRecord | null;
  /** Control-topic offset of the last command applied: a restarted controller skips older ones. */
  lastCommandOffset: string | null;
  /** The last decision recorded in the history, to record changes only. */
  lastDecision: { decision: DecisionKind; code: string; stageIndex: number } | null;
  history: HistoryEntry[];
}

/** History entries kept in the state (the oldest are dropped). */
export const HISTORY_LIMIT = 200;

export const ACTIVE: readonly RolloutStatus[] = ['running', 'waiting-promote', 'paused'];

export function isActive(status: RolloutStatus): boolean {
  return ACTIVE.includes(status);
}

export function idleState(): RolloutState {
  return {
    version: 1,
    revision: 0,
    id: '',
    status: 'idle',
    stages: [],
    stageIndex: 0,
    startedAtMs: 0,
    stageStartedAtMs: 0,
    updatedAtMs: 0,
    pausedFrom: null,
    rollback: null,
    lastCommandOffset: null,
    lastDecision: null,
    history: [],
  };
}

/** The V2 percentage the routing config should carry in this state. */
export function targetPercentage(state: RolloutState): number | null {
  if (state.status === 'idle') return null;
  if (state.status === 'rolled-back' || state.status === 'aborted') return 0;
  return state.stages[state.stageIndex]?.percentage ?? 0;
}

const ratio = (part: number, whole: number): number | null => (whole === 0 ? null : part / whole);

function judge(name: CriterionName, c: Criterion, value: number | null, samples: number): CriterionResult {
  let verdict: Verdict;
  if (samples < c.minSamples || value === null)
    verdict = c.required && samples < c.minSamples ? 'inconclusive' : 'not-judged';
  else verdict = value > c.max ? 'breached' : 'met';
  return { name, value, max: c.max, samples, minSamples: c.minSamples, required: c.required, verdict };
}

/** Each criterion of the stage against the figures. */
export function judgeCriteria(stage: RolloutStage, f: Figures): CriterionResult[] {
  const values: Record<CriterionName, [number | null, number]> = {
    errorRate: [ratio(f.v2.errors, f.v2.calls), f.v2.calls],
    slowCallRate: [ratio(f.v2.slowCalls, f.v2.calls), f.v2.calls],
    mismatchRate: [ratio(f.comparison.mismatches, f.comparison.compared), f.comparison.compared],
    lag: [f.v2.lag, f.v2.snapshots],
  };
  return CRITERIA.map((name) => judge(name, stage.criteria[name], values[name][0], values[name][1]));
}

const fmt = (v: number | null): string => (v === null ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(4));

export function describeCriterion(r: CriterionResult): string {
  switch (r.verdict) {
    case 'breached':
      return `${r.name} ${fmt(r.value)} > ${r.max} (${r.samples} samples)`;
    case 'inconclusive':
      return `${r.name}: ${r.samples}/${r.minSamples} samples`;
    case 'met':
      return `${r.name} ${fmt(r.value)} <= ${r.max}`;
    case 'not-judged':
      return `${r.name} not judged (${r.samples}/${r.minSamples} samples)`;
  }
}

function record(state: RolloutState, entry: HistoryEntry): void {
  state.history.push(entry);
  if (state.history.length > HISTORY_LIMIT) state.history.splice(0, state.history.length - HISTORY_LIMIT);
}

function bump(state: RolloutState, nowMs: number): void {
  state.revision++;
  state.updatedAtMs = nowMs;
}

/** Records a decision in the history when it differs from the last one recorded. */
function noteDecision(state: RolloutState, d: Decision, nowMs: number, percentage: number): boolean {
  const last = state.lastDecision;
  // The figures change every evaluation; the history records changes of decision only.
  if (last !== null && last.decision === d.decision && last.code === d.code && last.stageIndex === d.stageIndex)
    return false;
  state.lastDecision = { decision: d.decision, code: d.code, stageIndex: d.stageIndex };
  record(state, {
    atMs: nowMs,
    kind: d.decision,
    stageIndex: d.stageIndex,
    percentage,
    reason: d.reason,
    criteria: d.criteria,
  });
  return true;
}

function advance(state: RolloutState, nowMs: number): 'advance' | 'complete' {
  if (state.stageIndex + 1 >= state.stages.length) {
    state.status = 'completed';
    return 'complete';
  }
  state.stageIndex++;
  state.stageStartedAtMs = nowMs;
  state.status = 'running';
  return 'advance';
}

export interface Evaluation {
  state: RolloutState;
  decision: Decision;
  /** true when the state changed in a way worth storing (its revision was bumped). */
  changed: boolean;
}

/**
 * One evaluation: `figures` must cover the snapshots received since `state.stageStartedAtMs`.
 * Returns a new state (the input is not modified).
 */
export function evaluate(input: RolloutState, figures: Figures, nowMs: number): Evaluation {
  const state = structuredClone(input);
  const stage = state.stages[state.stageIndex];
  if (!isActive(state.status) || stage === undefined) {
    return {
      state: input,
      decision: {
        decision: 'none',
        code: state.status,
        reason: state.status,
        stageIndex: state.stageIndex,
        criteria: [],
      },
      changed: false,
    };
  }
  const criteria = judgeCriteria(stage, figures);
  const at = (decision: DecisionKind, code: string, reason: string): Decision => ({
    decision,
    code,
    reason,
    stageIndex: state.stageIndex,
    criteria,
  });

  const breaches = criteria.filter((c) => c.verdict === 'breached');
  if (breaches.length > 0) {
    const reason = breaches.map(describeCriterion).join('; ');
    const d = at('rollback', 'breach', reason);
    state.status = 'rolled-back';
    state.pausedFrom = null;
    state.rollback = { atMs: nowMs, stageIndex: state.stageIndex, cause: 'breach', reason, breaches };
    noteDecision(state, d, nowMs, stage.percentage);
    bump(state, nowMs);
    return { state, decision: d, changed: true };
  }

  let d: Decision;
  let moved = false;
  const elapsedMs = nowMs - state.stageStartedAtMs;
  const inconclusive = criteria.filter((c) => c.verdict === 'inconclusive');
  if (state.status === 'paused') d = at('hold', 'paused', 'paused');
  else if (state.status === 'waiting-promote')
    d = at('wait-for-promote', 'gate', `stage ${state.stageIndex + 1}: waiting for promote`);
  else if (elapsedMs < stage.minDurationMs)
    d = at('hold', 'min-duration', `stage ${state.stageIndex + 1}: ${elapsedMs} of ${stage.minDurationMs} ms`);
  else if (inconclusive.length > 0)
    d = at('hold', 'inconclusive', `inconclusive: ${inconclusive.map(describeCriterion).join('; ')}`);
  else if (stage.manualGate) {
    state.status = 'waiting-promote';
    d = at('wait-for-promote', 'gate', `stage ${state.stageIndex + 1}: waiting for promote`);
    moved = true;
  } else {
    const from = state.stageIndex;
    const kind = advance(state, nowMs);
    d = {
      decision: kind,
      code: 'passed',
      reason:
        kind === 'complete'
          ? `stage ${from + 1} passed: rollout complete`
          : `stage ${from + 1} passed: ${criteria.map(describeCriterion).join('; ')}`,
      stageIndex: from,
      criteria,
    };
    moved = true;
  }
  const noted = noteDecision(state, d, nowMs, stage.percentage);
  if (noted || moved) bump(state, nowMs);
  return { state: noted || moved ? state : input, decision: d, changed: noted || moved };
}

export interface RolloutCommand {
  command: CommandName;
  /** When it was issued (epoch ms). */
  at: number;
  /** Who issued it (free text: a user, `cli`, `status-page`). */
  by: string;
  /** `start` only: the plan, complete (see `resolveStages`). */
  stages?: RolloutStage[];
  /** `start` only: an id for the rollout; default derived from `at`. */
  id?: string;
}

export interface CommandOutcome {
  state: RolloutState;
  accepted: boolean;
  /** Why it was refused, or what it did. */
  reason: string;
}

/**
 * Applies an operator's command. A refused command leaves the state as it was except for the
 * history entry that says why (and the command offset, so it is not applied again).
 */
export function applyCommand(
  input: RolloutState,
  cmd: RolloutCommand,
  nowMs: number,
  offset: string | null = null,
): CommandOutcome {
  const state = structuredClone(input);
  if (offset !== null) state.lastCommandOffset = offset;
  const stage = state.stages[state.stageIndex];
  const refuse = (reason: string): CommandOutcome => {
    record(state, {
      atMs: nowMs,
      kind: `command:${cmd.command}`,
      stageIndex: state.stageIndex,
      percentage: stage?.percentage ?? 0,
      reason: `refused: ${reason}`,
      by: cmd.by,
    });
    bump(state, nowMs);
    return { state, accepted: false, reason };
  };
  const accept = (reason: string): CommandOutcome => {
    state.lastDecision = null;
    record(state, {
      atMs: nowMs,
      kind: `command:${cmd.command}`,
      stageIndex: state.stageIndex,
      percentage: state.stages[state.stageIndex]?.percentage ?? 0,
      reason,
      by: cmd.by,
    });
    bump(state, nowMs);
    return { state, accepted: true, reason };
  };

  switch (cmd.command) {
    case 'start': {
      if (isActive(state.status)) return refuse(`a rollout is ${state.status}; abort it first`);
      if (cmd.stages === undefined || cmd.stages.length === 0) return refuse('no stages');
      state.id = cmd.id ?? `rollout-${cmd.at}`;
      state.status = 'running';
      state.stages = cmd.stages;
      state.stageIndex = 0;
      state.startedAtMs = nowMs;
      state.stageStartedAtMs = nowMs;
      state.pausedFrom = null;
      state.rollback = null;
      state.history = [];
      return accept(`started: ${cmd.stages.map((s) => `${s.percentage}%`).join(' → ')}`);
    }
    case 'pause':
      if (state.status !== 'running' && state.status !== 'waiting-promote') return refuse(`rollout is ${state.status}`);
      state.pausedFrom = state.status;
      state.status = 'paused';
      return accept('paused');
    case 'resume':
      if (state.status !== 'paused') return refuse(`rollout is ${state.status}`);
      state.status = state.pausedFrom ?? 'running';
      state.pausedFrom = null;
      return accept(`resumed (${state.status})`);
    case 'promote': {
      if (state.status !== 'waiting-promote' && state.status !== 'running') return refuse(`rollout is ${state.status}`);
      const from = state.stageIndex;
      const kind = advance(state, nowMs);
      return accept(
        kind === 'complete' ? `promoted past stage ${from + 1}: complete` : `promoted to stage ${from + 2}`,
      );
    }
    case 'abort':
      if (!isActive(state.status)) return refuse(`rollout is ${state.status}`);
      state.status = 'aborted';
      state.pausedFrom = null;
      state.rollback = {
        atMs: nowMs,
        stageIndex: state.stageIndex,
        cause: 'abort',
        reason: `aborted by ${cmd.by}`,
        breaches: [],
        by: cmd.by,
      };
      return accept('aborted: V2 back to 0 %');
    case 'retry':
      if (state.status !== 'rolled-back' && state.status !== 'aborted') return refuse(`rollout is ${state.status}`);
      state.status = 'running';
      state.stageStartedAtMs = nowMs;
      return accept(`retrying stage ${state.stageIndex + 1}`);
  }
}
