import { createHash } from 'node:crypto';
import type { Result } from '@tapio/events';

/** A contract-shaped result; the id follows RULES.md from ruleId, entityKey and triggerEventId. */
export function makeResult(
  ruleId: string,
  entityKey: string,
  triggerEventId: string,
  overrides: Partial<Omit<Result, 'id' | 'ruleId' | 'entityKey' | 'triggerEventId'>> = {},
): Result {
  return {
    id: createHash('sha256').update(`${ruleId}|${entityKey}|${triggerEventId}`).digest('hex').slice(0, 32),
    ruleId,
    category: 'reliability',
    entityKey,
    triggeredAt: 1_750_000_000_000,
    triggerEventId,
    severity: 'high',
    confidence: 0.75,
    evidence: [triggerEventId],
    engine: 'v1',
    ...overrides,
  };
}

/** The value of one Prometheus sample in /metrics text (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const brace = line.indexOf('{');
    const labelText = brace === -1 ? '' : line.slice(brace + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}
