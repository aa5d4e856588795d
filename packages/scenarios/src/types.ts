import type { Event } from '@tapio/events';

export const RULE_IDS = [
  'memory-pressure-cascade',
  'memory-leak',
  'oom-prediction',
  'cpu-throttle-impact',
  'cpu-contention',
  'high-cpu-pattern',
  'crash-loop',
  'dns-failure-storm',
  'connection-failure-cascade',
  'disk-pressure',
  'volume-mount-failure',
  'node-pressure-eviction',
] as const;

export type RuleId = (typeof RULE_IDS)[number];

export type DetectionSeverity = 'medium' | 'high' | 'critical';

/** The detection a scenario must cause (RULES.md, Evaluation semantics). */
export interface ExpectedDetection {
  ruleId: RuleId;
  /** The rule's scope key, e.g. `node/node-517`. */
  entityKey: string;
  severity: DetectionSeverity;
  /** The event whose arrival first makes the rule's condition true. */
  triggerEventId: string;
}

export type ScenarioKind = 'incident' | 'near-miss';

export interface GeneratedScenario {
  name: string;
  ruleId: RuleId;
  kind: ScenarioKind;
  /** In timestamp order, strictly increasing, which is also the intended delivery order. */
  events: Event[];
  /** One detection for an incident, none for a near miss. */
  expected: ExpectedDetection[];
}

export interface ScenarioInfo {
  /** `<ruleId>:incident` or `<ruleId>:<near-miss variant>`. */
  name: string;
  ruleId: RuleId;
  kind: ScenarioKind;
  description: string;
}
