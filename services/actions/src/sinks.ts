/**
 * HTTP sinks for results: a generic JSON webhook and Alertmanager's v2 API. Each request is
 * retried on network errors, timeouts, redirects (never followed), 5xx and 429 with exponential
 * backoff and jitter; other statuses are final (`postOnce`). Receivers deduplicate by result id
 * (the webhook's Idempotency-Key header), so a retry after a lost response is harmless.
 */
import { resultToJsonLine } from '@tapio/events';
import type { Result } from '@tapio/events';
import { httpEndpoint } from '@tapio/runtime';
import type { HttpEndpoint } from '@tapio/runtime';

export interface HttpRequestSpec {
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface HttpSink {
  readonly name: 'webhook' | 'alertmanager';
  /** Where it posts, with its authorization; log `endpoint.shown` only. */
  readonly endpoint: HttpEndpoint;
  request(result: Result): HttpRequestSpec;
}

export function webhookSink(url: string, authorization = ''): HttpSink {
  return {
    name: 'webhook',
    endpoint: httpEndpoint(url, authorization),
    request: (result) => ({
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

export function alertmanagerSink(baseUrl: string, authorization = ''): HttpSink {
  // Through URL, so a query string of the base URL stays after the path.
  const url = new URL(baseUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v2/alerts`;
  return {
    name: 'alertmanager',
    endpoint: httpEndpoint(url.href, authorization),
    request: (result) => ({
      headers: { 'content-type': 'application/json', 'idempotency-key': result.id },
      body: JSON.stringify([alertOf(result)]),
    }),
  };
}
