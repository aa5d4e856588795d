export type { RuleStats, V1EngineOptions, V1Stats } from './engine';
export { V1Engine } from './engine';
export { replay } from './replay';
