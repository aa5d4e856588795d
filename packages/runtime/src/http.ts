/**
 * The one outbound POST of the HTTP sinks (actions' webhook and Alertmanager, the rollout
 * notifications). Redirects are never followed: fetch would re-send the body of a 307/308 to
 * wherever Location points, another host included, so a 3xx is a failed attempt instead.
 */
import { redactUrl } from '@tapio/observability';

export interface HttpEndpoint {
  /** The configured URL without its userinfo (fetch refuses a URL with credentials). */
  readonly url: string;
  /** The URL as a log line or an error message may show it (`redactUrl`). */
  readonly shown: string;
  /** The Authorization header sent with each POST; '' for none. Never log it. */
  readonly authorization: string;
}

/**
 * An endpoint from a configured URL and authorization (a secret from the config, '' for none).
 * Userinfo in the URL becomes Basic authorization, as curl and Node's http.request send it; the
 * config refuses a URL with userinfo and an authorization together.
 */
export function httpEndpoint(url: string, authorization = ''): HttpEndpoint {
  const parsed = new URL(url);
  let header = authorization;
  if (parsed.username !== '' || parsed.password !== '') {
    const userinfo = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
    if (header === '') header = `Basic ${Buffer.from(userinfo).toString('base64')}`;
    parsed.username = '';
    parsed.password = '';
  }
  return { url: parsed.href, shown: redactUrl(url), authorization: header };
}

export type PostOutcome =
  | { readonly kind: 'ok'; readonly status: number }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs?: number }
  | { readonly kind: 'fail'; readonly reason: string };

/**
 * One POST; never throws. Retry on network errors, timeouts, redirects, 408, 429 and 5xx (with the
 * server's Retry-After); other statuses are final. A reason never holds the URL or a header.
 */
export async function postOnce(
  endpoint: HttpEndpoint,
  headers: Readonly<Record<string, string>>,
  body: string,
  timeoutMs: number,
): Promise<PostOutcome> {
  let res: Response;
  try {
    res = await fetch(endpoint.url, {
      method: 'POST',
      headers: endpoint.authorization === '' ? headers : { ...headers, authorization: endpoint.authorization },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { kind: 'retry', reason: `network: ${cause?.code ?? (err as Error).name}` };
  }
  // Drain the body so the connection can be reused.
  await res.arrayBuffer().catch(() => undefined);
  const { status } = res;
  if (status >= 200 && status < 300) return { kind: 'ok', status };
  if (status >= 300 && status < 400) return { kind: 'retry', reason: `status ${status}: a redirect, not followed` };
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterS = Number(res.headers.get('retry-after'));
    return {
      kind: 'retry',
      reason: `status ${status}`,
      ...(Number.isFinite(retryAfterS) && retryAfterS > 0 ? { retryAfterMs: retryAfterS * 1000 } : {}),
    };
  }
  return { kind: 'fail', reason: `status ${status}` };
}
