import type { ExpectedDetection } from './types';

/** One JSON line (no newline) with the fields in the fixed order ruleId, entityKey, severity, triggerEventId. */
export function expectedToJsonLine(expected: ExpectedDetection): string {
  return JSON.stringify({
    ruleId: expected.ruleId,
    entityKey: expected.entityKey,
    severity: expected.severity,
    triggerEventId: expected.triggerEventId,
  });
}
