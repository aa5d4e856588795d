import { createHash } from 'node:crypto';
import type { Event, Result } from '@tapio/events';
import { roundHalfAwayFromZero } from './numeric';
import type { ConfidenceSpec, Decision, RuleDefinition } from './types';

/** RULES.md: at most 50 evidence ids, the trigger included. */
export const MAX_EVIDENCE = 50;

/** The summary of `rule` over the key's stored input events (see RuleDefinition.summarize). */
export function summarizeWindow<S extends object>(
  rule: RuleDefinition<S>,
  events: readonly Event[],
  now: number,
  trigger: Event,
): S {
  return rule.summarize(events, now, trigger);
}

/** Runs the rule's condition over the stored events: summarize, then decide. */
export function evaluateRule<S extends object>(
  rule: RuleDefinition<S>,
  events: readonly Event[],
  now: number,
  trigger: Event,
): Decision | null {
  return rule.decide(rule.summarize(events, now, trigger), now);
}

/** Lower-case hex SHA-256 of `<ruleId>|<entityKey>|<triggerEventId>`, first 32 characters. */
export function resultId(ruleId: string, entityKey: string, triggerEventId: string): string {
  return createHash('sha256').update(`${ruleId}|${entityKey}|${triggerEventId}`, 'utf8').digest('hex').slice(0, 32);
}

/** The dedup fingerprint: `<ruleId>|<entityKey>`. */
export function fingerprint(ruleId: string, entityKey: string): string {
  return `${ruleId}|${entityKey}`;
}

/**
 * min(0.99, base + step * (n - min)), rounded to 4 decimals half away from zero on the decimal value
 * (see roundHalfAwayFromZero); 0.6 + 0.02 * 5 is 0.7000000000000001 in doubles and reads 0.7.
 */
export function confidenceOf(spec: ConfidenceSpec, n: number): number {
  return roundHalfAwayFromZero(Math.min(0.99, spec.base + spec.step * (n - spec.min)), 4);
}

function byTimestampThenId(a: Event, b: Event): number {
  if (a.timestamp !== b.timestamp) return a.timestamp - b.timestamp;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Evidence: ids of the rule's input events in its window W (now - W <= t <= now; look-back events
 * outside W are not evidence), sorted by timestamp then id (UTF-16 code-unit order), at most 50.
 * Over 50: the trigger plus the 49 other events that sort greatest, still in sorted order.
 * `events` are the rule's stored input events for the key; `trigger` is matched by identity.
 */
export function selectEvidence(rule: RuleDefinition, events: readonly Event[], now: number, trigger: Event): string[] {
  const from = now - rule.windowMs;
  const inWindow = events.filter((e) => e.timestamp >= from && e.timestamp <= now);
  if (!inWindow.includes(trigger)) inWindow.push(trigger);
  inWindow.sort(byTimestampThenId);
  if (inWindow.length <= MAX_EVIDENCE) return inWindow.map((e) => e.id);
  const others = inWindow.filter((e) => e !== trigger);
  const kept = others.slice(others.length - (MAX_EVIDENCE - 1));
  kept.push(trigger);
  kept.sort(byTimestampThenId);
  return kept.map((e) => e.id);
}

/** A result with its fields in the contract's order. */
export function buildResult(
  rule: RuleDefinition,
  entityKey: string,
  trigger: Event,
  decision: Decision,
  evidence: string[],
  engine: 'v1' | 'v2',
): Result {
  return {
    id: resultId(rule.id, entityKey, trigger.id),
    ruleId: rule.id,
    category: rule.category,
    entityKey,
    triggeredAt: trigger.timestamp,
    triggerEventId: trigger.id,
    severity: decision.severity,
    confidence: confidenceOf(rule.confidence, decision.n),
    evidence,
    engine,
  };
}
