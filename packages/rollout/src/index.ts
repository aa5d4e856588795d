/**
 * @tapio/rollout: the progressive rollout of V2 (seed plan Phase 3-4), pure logic plus its records
 * on the control topic. services/rollout-controller runs it; the CLI sends commands and reads the state.
 */
export {
  CRITERIA,
  criteriaSchema,
  criterionSchema,
  formatDuration,
  formatStages,
  parseStageSpec,
  resolveStages,
  stageInputSchema,
  stageSchema,
} from './plan';
export type { Criteria, Criterion, CriterionName, RolloutStage, StageInput } from './plan';
export { SnapshotWindow, comparisonCountsOf } from './window';
export type { ComparisonCounts, EngineFigures, Figures } from './window';
export {
  ACTIVE,
  COMMANDS,
  DECISIONS,
  HISTORY_LIMIT,
  STATUSES,
  applyCommand,
  describeCriterion,
  evaluate,
  idleState,
  isActive,
  judgeCriteria,
  targetPercentage,
} from './machine';
export type {
  CommandName,
  CommandOutcome,
  CriterionResult,
  Decision,
  DecisionKind,
  Evaluation,
  HistoryEntry,
  RollbackRecord,
  RolloutCommand,
  RolloutState,
  RolloutStatus,
  Verdict,
} from './machine';
export {
  ROLLOUT_COMMAND_KEY,
  ROLLOUT_STATE_KEY,
  encodeRolloutCommand,
  encodeRolloutState,
  parseRolloutCommand,
  parseRolloutState,
  readRolloutState,
  rolloutCommandSchema,
  rolloutStateSchema,
  sendRolloutCommand,
  writeRolloutState,
} from './control';
export type { RolloutStateRecord } from './control';
export { categorySplit, formatRolloutStatus, routingChange } from './view';
export type { CategorySplit, RoutingChange } from './view';
