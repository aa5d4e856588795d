/**
 * @tapio/routing: the hybrid engine's routing logic, pure and unit-testable. The router service
 * (services/router) applies it to the event stream; the CLI and the rollout controller read and
 * write the config document with `readRoutingConfig` / `writeRoutingConfig`.
 */
export {
  CATEGORIES,
  ENGINES,
  FEATURE_CATEGORIES,
  MAX_ROUTING_EPOCH,
  STRATEGIES,
  defaultRoutingConfig,
  defaultWarmupMs,
  parseRoutingConfig,
  patchRoutingConfig,
  routingConfigSchema,
  validateRoutingConfig,
} from './config';
export type { BreakerSettings, Engine, RoutingConfig, RoutingConfigInput, Strategy } from './config';
export {
  BUCKETS,
  bucketOf,
  categoryOf,
  categoryOverride,
  decide,
  entityNamesOfScopeKey,
  entityOverride,
  fnv1a,
  inPercentage,
  lastTimeBoundary,
  shadowBucketOf,
  strategyDecision,
  timeWindowPercentage,
} from './decide';
export type { BreakerStateName, DecisionContext, EntityNames } from './decide';
export { BREAKER_GAUGE, CircuitBreaker } from './breaker';
export type { BreakerStatus } from './breaker';
export {
  encodeHealthSnapshot,
  encodeRouterFrontier,
  healthRecordKind,
  healthSnapshotOf,
  healthSnapshotSchema,
  parseHealthSnapshot,
  parseRouterFrontier,
  routerFrontierSchema,
} from './health';
export type { HealthRecordKind, RouterFrontier } from './health';
export type { HealthSnapshot } from './health';
export { RoutingTable, planRoutes } from './plan';
export type { ApplyOutcome, Decider, Handoff, PlannedRoute, RouteTarget, RoutingState } from './plan';
export {
  ROUTING_CONTROL_KEY,
  encodeRoutingConfig,
  readRoutingConfig,
  readRoutingConfigRecord,
  writeRoutingConfig,
} from './control';
export type { ReadRoutingConfigOptions, RoutingConfigRecord } from './control';
export { PartitionAligner } from './align';
export type { AlignEntry, AlignerOptions, Taken } from './align';
