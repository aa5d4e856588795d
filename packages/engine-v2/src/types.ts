import type { Event } from '@tapio/events';

/**
 * The entity fields that scope keys and distinct-pod counts read (RULES.md, "Scope keys"); `cluster`
 * is read by no rule.
 */
export interface RuleEntity {
  namespace: string | null;
  kind: string;
  name: string;
  node: string | null;
  pod: string | null;
  container: string | null;
  service: string | null;
}

/**
 * The part of an Event that the rule catalogue reads: what V2 decodes (see RULE_EVENT_FIELDS) and
 * what the engine takes. A full `Event` is one too. `source`, `severity`, `message` and
 * `entity.cluster` are read by no rule, so the projected decode skips them.
 */
export interface RuleEvent {
  id: string;
  timestamp: number;
  type: string;
  entity: RuleEntity;
  attributes: Record<string, number>;
  labels: Record<string, string>;
}

/**
 * The shared helpers of @tapio/rules (scopeKey, podIdentity, buildResult, a custom rule's
 * summarize) are typed on Event but read only RuleEvent's fields; this is the one place that says so.
 */
export function asEvent(event: RuleEvent): Event {
  return event as Event;
}

/** One record of a batch: an event, and for a routed record its scope key and rule ids. */
export interface V2Record {
  event: RuleEvent;
  /** Absent or null: the engine derives the routes itself, as `process` does. */
  scopeKey?: string | null;
  ruleIds?: readonly string[] | null;
}

// Compile-time check that a full Event is a RuleEvent, so V1's inputs feed V2 unchanged.
const _eventIsRuleEvent: (e: Event) => RuleEvent = (e) => e;
void _eventIsRuleEvent;
