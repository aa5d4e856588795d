export { RULE_IDS } from './types';
export type {
  DetectionSeverity,
  ExpectedDetection,
  GeneratedScenario,
  RuleId,
  ScenarioInfo,
  ScenarioKind,
} from './types';
export { ALLOWED_LATENESS_MS, generateScenario, generateStream, listScenarios } from './generate';
export type { GeneratedStream, ScenarioOptions, StreamOptions } from './generate';
export { createEventSource } from './source';
export type { EventSource, EventSourceOptions } from './source';
export { NoiseGenerator, generateNoise } from './noise';
export type { NoiseGeneratorOptions, NoiseOptions } from './noise';
export { buildFleet, SCENARIO_NODE_BASE } from './entities';
export type { Fleet, FleetOptions, Pod } from './entities';
export { Rng, deriveSeed } from './prng';
export { expectedToJsonLine } from './json';
