/**
 * HTTP sinks for results: a generic JSON webhook and Alertmanager's v2 API. Each request is
 * retried on network errors, timeouts, 5xx and 429 with exponential backoff and jitter; other
 * statuses are final. Receivers deduplicate by result id (the webhook's Idempotency-Key header),
 * so a retry after a lost response is harmless.
 */
import { resultToJsonLine } from '@tapio/events';
import type { Result } from '@tapio/events';

export interface HttpRequestSpec {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface HttpSink {
  readonly name: 'webhook' | 'alertmanager';
  request(result: Result): HttpRequestSpec;
}

export function webhookSink(url: string): HttpSink {
  return {
    name: 'webhook',
    request: (result) => ({
      url,
      headers: { 'content-type': 'application/json', 'idempotency-key': result.id },
      body: resultToJsonLine(result),
    }),
  };
}

/** One Alertmanager alert (https://prometheus.io/docs/alerting/latest/clients/): labels identify it. */
export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
}

export function alertOf(result: Result): AlertmanagerAlert {
  return {
    labels: {
      alertname: result.ruleId,
      severity: result.severity,
      entity_key: result.entityKey,
      category: result.category,
      engine: result.engine,
    },
    // Annotations, unlike labels, do not split one incident into several alerts.
    annotations: {
      summary: `${result.ruleId} on ${result.entityKey}`,
      confidence: String(result.confidence),
      evidence: result.evidence.join(','),
      result_id: result.id,
      trigger_event_id: result.triggerEventId,
    },
    startsAt: new Date(result.triggeredAt).toISOString(),
  };
}

export function alertmanagerSink(baseUrl: string): HttpSink {
  const url = `${baseUrl.replace(/\/+$/, '')}/api/v2/alerts`;
  return {
    name: 'alertmanager',
    request: (result) => ({
      url,
      headers: { 'content-type': 'application/json', 'idempotency-key': result.id },
      body: JSON.stringify([alertOf(result)]),
    }),
  };
}

export type AttemptOutcome =
  | { readonly kind: 'ok'; readonly status: number }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs?: number }
  | { readonly kind: 'fail'; readonly reason: string };

/** One POST. Never throws: the outcome says whether to retry. */
export async function attempt(spec: HttpRequestSpec, timeoutMs: number): Promise<AttemptOutcome> {
  let res: Response;
  try {
    res = await fetch(spec.url, {
      method: 'POST',
      headers: spec.headers,
      body: spec.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { kind: 'retry', reason: `network: ${cause?.code ?? (err as Error).name}` };
  }
  // Drain the body so the connection can be reused.
  await res.arrayBuffer().catch(() => undefined);
  if (res.status >= 200 && res.status < 300) return { kind: 'ok', status: res.status };
  if (res.status === 429 || res.status >= 500) {
    const retryAfterS = Number(res.headers.get('retry-after'));
    return {
      kind: 'retry',
      reason: `status ${res.status}`,
      ...(Number.isFinite(retryAfterS) && retryAfterS > 0 ? { retryAfterMs: retryAfterS * 1000 } : {}),
    };
  }
  return { kind: 'fail', reason: `status ${res.status}` };
}
