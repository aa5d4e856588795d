/**
 * What every service shares for being observed: a pino logger, a prom-client registry with the
 * `tapio_` prefix, and a small HTTP server for /metrics and /healthz.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type { DestinationStream, Logger } from 'pino';

const REDACTED = '[Redacted]';

/**
 * A URL fit for a log line or an error message: the userinfo becomes `***` and every query value
 * `***` (names stay, so a reader still sees which parameters were sent); the fragment is dropped.
 * What does not parse as a URL is not shown at all, since it may still hold a password.
 */
export function redactUrl(url: unknown): string {
  if (typeof url !== 'string' && !(url instanceof URL)) return REDACTED;
  // A request's path (`/x?token=...`, as a server sees it) is redacted like a whole URL.
  const relative = typeof url === 'string' && url.startsWith('/') && !url.startsWith('//');
  let parsed: URL;
  try {
    parsed = relative ? new URL(url, 'http://relative.invalid') : new URL(url);
  } catch {
    return '[unparseable URL]';
  }
  if (parsed.username !== '' || parsed.password !== '') {
    parsed.username = '***';
    parsed.password = '';
  }
  if (parsed.search !== '') {
    const names = new URLSearchParams();
    for (const [name] of parsed.searchParams) names.append(name, '***');
    parsed.search = names.toString();
  }
  parsed.hash = '';
  return relative ? parsed.pathname + parsed.search : parsed.href;
}

/** Keys whose values are credentials wherever they appear (headers, config sections, client options). */
const SECRET_KEY = /(?:password|passwd|secret|token|authorization|cookie|api[-_]?key)$|^sasl$/i;
/** Whether a key (a field name, a header name, a config key's last segment) holds a credential. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}
/** Keys whose values are URLs: logged through `redactUrl`, so the host stays readable. */
const URL_KEY = /url$/i;
const MAX_DEPTH = 8;

/**
 * `value` with every credential replaced (keys matching SECRET_KEY, userinfo and query values of
 * URLs under keys ending in `url`), at any depth up to MAX_DEPTH. Copies only what it changes, so a
 * log object without secrets costs a walk and no allocation. Errors are left to the `err` serializer.
 */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH) return value;
  if (value instanceof Error || value instanceof Date || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const redacted = redactSecrets(value[i], depth + 1);
      if (redacted !== value[i]) (out ??= value.slice())[i] = redacted;
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    let redacted: unknown;
    if (v === undefined || v === null || v === '') redacted = v;
    else if (SECRET_KEY.test(key)) redacted = REDACTED;
    else if (URL_KEY.test(key) && (typeof v === 'string' || v instanceof URL)) redacted = redactUrl(v);
    else redacted = redactSecrets(v, depth + 1);
    if (redacted !== v) (out ??= { ...value })[key] = redacted;
  }
  return out ?? value;
}

const redactRecord = (o: Record<string, unknown>): Record<string, unknown> =>
  redactSecrets(o) as Record<string, unknown>;

/**
 * The service logger: JSON lines with credentials redacted (`redactSecrets`) in the logged object,
 * in child bindings and in `err`. pino's own `redact` names every depth as a path and made a line
 * 8-20x dearer here (64 paths: 61-168 us vs 8 us); a message string is not seen by either, so pass
 * URLs through `redactUrl` before putting them in one.
 */
export function createLogger(service: string, level = 'info', destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    name: service,
    level,
    base: { service, pid: process.pid },
    formatters: { log: redactRecord },
    serializers: { err: (err: unknown) => redactSecrets(pino.stdSerializers.err(err as Error)) },
  };
  const logger = destination === undefined ? pino(options) : pino(options, destination);
  // pino applies formatters.bindings to the root's base only; children inherit this `child`.
  const child = logger.child; // eslint-disable-line @typescript-eslint/unbound-method
  logger.child = function (this: Logger, bindings, childOptions) {
    return child.call(this, redactRecord(bindings), childOptions);
  } as Logger['child'];
  return logger;
}

export function createMetricsRegistry(service: string, collectDefaults = true): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (collectDefaults) collectDefaultMetrics({ register: registry, prefix: 'tapio_process_' });
  return registry;
}

export interface HealthReport {
  ok: boolean;
  [detail: string]: unknown;
}

export interface ObservabilityServerOptions {
  host: string;
  port: number;
  registry: Registry;
  health: () => HealthReport;
  logger?: Logger;
}

export interface ObservabilityServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics (Prometheus text) and GET /healthz (200 when ok, else 503, JSON body). */
export async function startObservabilityServer(options: ObservabilityServerOptions): Promise<ObservabilityServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/metrics') {
      const body = await options.registry.metrics();
      res.writeHead(200, { 'content-type': options.registry.contentType }).end(body);
    } else if (path === '/healthz') {
      const report = options.health();
      res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(report));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.logger?.error({ err }, 'observability endpoint failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/**
 * The correlators' metrics, named after the seed plan's dashboard list with a `tapio_` prefix.
 * V1 and V2 register the same names; the `engine` label tells them apart.
 */
export class EngineMetrics {
  readonly eventsProcessed: Counter<'engine'>;
  readonly results: Counter<'engine' | 'rule_id'>;
  readonly ruleExecutionMs: Histogram<'engine' | 'rule_id'>;
  readonly processingLatencyMs: Histogram<'engine'>;
  readonly errors: Counter<'engine' | 'type'>;
  readonly deadLettered: Counter<'engine' | 'reason'>;
  readonly lateEvents: Counter<'engine'>;
  readonly throughput: Gauge<'engine'>;
  readonly memoryUsage: Gauge<'engine'>;
  readonly errorRate: Gauge<'engine'>;
  private lastEvents = 0;
  private lastErrors = 0;
  private lastAt = process.hrtime.bigint();
  private processed = 0;
  private errorCount = 0;

  constructor(
    registry: Registry,
    readonly engine: string,
  ) {
    const registers = [registry];
    this.eventsProcessed = new Counter({
      name: 'tapio_events_processed_total',
      help: 'Routed records evaluated by the engine',
      labelNames: ['engine'],
      registers,
    });
    this.results = new Counter({
      name: 'tapio_results_total',
      help: 'Results produced, by rule',
      labelNames: ['engine', 'rule_id'],
      registers,
    });
    this.ruleExecutionMs = new Histogram({
      name: 'tapio_rule_execution_time_ms',
      help: 'Time of one rule evaluation, ms',
      labelNames: ['engine', 'rule_id'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50, 100],
      registers,
    });
    this.processingLatencyMs = new Histogram({
      name: 'tapio_processing_latency_ms',
      help: 'Time from receiving a record to its results being acknowledged, ms',
      labelNames: ['engine'],
      buckets: [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers,
    });
    this.errors = new Counter({
      name: 'tapio_errors_total',
      help: 'Errors by type: timeout (rule over budget), panic (rule threw), invalid (record dead-lettered)',
      labelNames: ['engine', 'type'],
      registers,
    });
    this.deadLettered = new Counter({
      name: 'tapio_dlq_total',
      help: 'Records sent to the dead-letter topic, by reason code',
      labelNames: ['engine', 'reason'],
      registers,
    });
    this.lateEvents = new Counter({
      name: 'tapio_late_events_total',
      help: '(event, rule, key) triples ignored as late',
      labelNames: ['engine'],
      registers,
    });
    this.throughput = new Gauge({
      name: 'tapio_throughput_events_per_second',
      help: 'Records evaluated per second since the previous scrape',
      labelNames: ['engine'],
      registers,
      collect: () => this.sampleRates(),
    });
    this.errorRate = new Gauge({
      name: 'tapio_error_rate',
      help: 'Errors per evaluated record since the previous scrape',
      labelNames: ['engine'],
      registers,
    });
    this.memoryUsage = new Gauge({
      name: 'tapio_memory_usage_bytes',
      help: 'Resident set size of the engine process',
      labelNames: ['engine'],
      registers,
      collect: () => this.memoryUsage.set({ engine }, process.memoryUsage().rss),
    });
  }

  countEvents(n: number): void {
    this.processed += n;
    this.eventsProcessed.inc({ engine: this.engine }, n);
  }

  countError(type: 'timeout' | 'panic' | 'invalid' | 'produce', n = 1): void {
    this.errorCount += n;
    this.errors.inc({ engine: this.engine, type }, n);
  }

  private sampleRates(): void {
    const now = process.hrtime.bigint();
    const seconds = Number(now - this.lastAt) / 1e9;
    if (seconds <= 0) return;
    const events = this.processed - this.lastEvents;
    this.throughput.set({ engine: this.engine }, events / seconds);
    this.errorRate.set({ engine: this.engine }, events > 0 ? (this.errorCount - this.lastErrors) / events : 0);
    this.lastAt = now;
    this.lastEvents = this.processed;
    this.lastErrors = this.errorCount;
  }
}
