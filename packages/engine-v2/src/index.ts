export { V2Engine } from './engine';
export type { V2EngineOptions, V2RuleStats, V2Stats } from './engine';
export type { RuleEntity, RuleEvent, V2Record } from './types';
export { RULE_EVENT_FIELDS, RuleEventDecoder } from './decoder';
export type { BatchContext } from './decoder';
export { EventRow, RowBatch } from './row';
