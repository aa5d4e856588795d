export type {
  Category,
  ConfidenceSpec,
  Decision,
  RuleDefinition,
  RuleInput,
  Scope,
  ServiceKeySource,
  Severity,
} from './types';
export type {
  AnchoredSummary,
  CountSummary,
  CpuContentionSummary,
  DiskSummary,
  FailureSpreadSummary,
  HighCpuSummary,
  MemoryTrendSummary,
  ThrottleImpactSummary,
} from './catalogue';
export {
  RULES,
  RULES_BY_ID,
  connectionFailureCascade,
  cpuContention,
  cpuThrottleImpact,
  crashLoop,
  diskPressure,
  dnsFailureStorm,
  highCpuPattern,
  memoryLeak,
  memoryPressureCascade,
  nodePressureEviction,
  oomPrediction,
  volumeMountFailure,
} from './catalogue';
export type { LeastSquaresSums } from './numeric';
export {
  EPSILON,
  above,
  addPoint,
  atLeast,
  atMost,
  emptySums,
  pearson,
  pearsonOf,
  removePoint,
  roundHalfAwayFromZero,
  slope,
  slopeOf,
  sumsOf,
} from './numeric';
export { inputOf, podIdentity, scopeKey, scopeKeyOf } from './scope';
export type { Route } from './routing';
export { consumedTypes, routesFor, scopeKeysFor } from './routing';
export {
  MAX_EVIDENCE,
  buildResult,
  confidenceOf,
  evaluateRule,
  fingerprint,
  resultId,
  selectEvidence,
  summarizeWindow,
} from './results';
