/**
 * Configuration: one YAML file plus environment overrides, validated at start-up, then frozen.
 *
 * Precedence: defaults < file < environment. An environment override is `TAPIO_<PATH>`, the path's
 * segments upper-cased and joined with `__` (e.g. `TAPIO_KAFKA__BROKERS=a:9092,b:9092`,
 * `TAPIO_CORRELATION__HYBRID__V2_PERCENTAGE=25`). `TAPIO_CONFIG` names the file.
 * The defaults live in DEFAULTS below and are documented in config/defaults.yaml (a test keeps the two equal).
 *
 * Secrets: a string key `<name>` with a sibling `<name>File` (e.g. `actions.webhook.authorization`
 * and `authorizationFile`) can be read from a file such as a mounted Kubernetes secret. A config
 * error names a secret's key but never shows its value (`describeValue`).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { TapioError } from '@tapio/errors';
import { isSecretKey, redactSecrets, redactUrl } from '@tapio/observability';

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration: milliseconds as a number, or a string such as "100ms", "30s", "5m". */
const durationMs = z.union(
  [
    z.number().int().nonnegative(),
    z
      .string()
      .regex(DURATION, 'expected a duration such as 100ms, 30s, 5m or 1h')
      .transform((s) => {
        const m = DURATION.exec(s) as RegExpExecArray;
        return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
      }),
  ],
  { errorMap: () => ({ message: 'expected milliseconds or a duration such as 100ms, 30s, 5m or 1h' }) },
);

const port = z.number().int().min(0).max(65535);
const rolloutCriterion = z
  .object({ max: z.number().nonnegative(), minSamples: z.number().int().nonnegative(), required: z.boolean() })
  .strict();
const topicName = z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/, 'expected a Kafka topic name');
const httpUrl = z.union([z.literal(''), z.string().url()]);
/** What fetch accepts in a header: no control character but tab, nothing above U+00FF. */
const headerValue = z
  .string()
  .regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'expected an HTTP header value (no line breaks or control characters)');

export const configSchema = z
  .object({
    kafka: z
      .object({
        brokers: z.array(z.string().min(1)).min(1),
        clientId: z.string().min(1),
        connectionTimeoutMs: z.number().int().positive(),
        requestTimeoutMs: z.number().int().positive(),
        sessionTimeoutMs: z.number().int().positive(),
        heartbeatIntervalMs: z.number().int().positive(),
        /** Batches of different partitions handled at once by one consumer (their produce waits overlap). */
        partitionsConsumedConcurrently: z.number().int().positive(),
        /**
         * Consumers commit acknowledged offsets in the background at most this often, never once per
         * batch (a commit per batch cost most of a hop's latency). Also bounds the committed lag's lead.
         */
        commitIntervalMs: z.number().int().positive(),
      })
      .strict(),
    registry: z.object({ url: z.string().url() }).strict(),
    redis: z
      .object({
        /** redis://[user:password@]host:port[/db]; rediss:// turns TLS on. */
        url: z
          .string()
          .regex(/^rediss?:\/\//, 'expected a redis:// URL')
          .refine(
            (url) => URL.canParse(url),
            'expected a valid redis:// URL such as redis://user:password@host:6379/0',
          ),
        /** TLS even with a redis:// URL. */
        tls: z.boolean(),
        /** Verify the server certificate (TLS only); false for self-signed test setups. */
        tlsRejectUnauthorized: z.boolean(),
        /** Overrides the URL's password when not empty (so a secret can come from TAPIO_REDIS__PASSWORD). */
        password: z.string(),
        /** A file whose content is `password` (a mounted secret); empty: none. */
        passwordFile: z.string(),
      })
      .strict(),
    topics: z
      .object({
        events: topicName,
        eventsV1: topicName,
        eventsV2: topicName,
        eventsV2Shadow: topicName,
        results: topicName,
        resultsShadow: topicName,
        resultsDeduped: topicName,
        control: topicName,
        health: topicName,
        dlq: topicName,
        eventPartitions: z.number().int().positive(),
        resultPartitions: z.number().int().positive(),
        replicationFactor: z.number().int().positive(),
      })
      .strict(),
    correlation: z
      .object({
        allowedLatenessMs: z.number().int().nonnegative(),
        ruleTimeoutMs: z.number().int().positive(),
        /**
         * The router dead-letters an event whose timestamp is more than this ahead of its wall clock:
         * one such event would raise its key's watermark and make every later event of the key late.
         */
        maxFutureSkewMs: z.number().int().positive(),
        // The seed plan's block, with its own key names.
        hybrid: z
          .object({
            enabled: z.boolean(),
            v2_percentage: z.number().min(0).max(100),
            routing_strategy: z.enum(['percentage', 'load', 'time', 'progressive']),
            rollback: z.object({ error_threshold: z.number().min(0).max(1), latency_threshold: durationMs }).strict(),
            features: z.record(z.string(), z.boolean()),
          })
          .strict(),
      })
      .strict(),
    collector: z
      .object({
        ratePerSecond: z.number().positive(),
        /** 0 runs until stopped. */
        durationSeconds: z.number().nonnegative(),
        /** Scenario names or rule ids, or ["all"]. */
        scenarios: z.array(z.string().min(1)).min(1),
        noiseRatio: z.number().gt(0).max(1),
        seed: z.number().int().nonnegative(),
        maxBatch: z.number().int().positive(),
      })
      .strict(),
    dedup: z
      .object({
        /** How long a fingerprint blocks different results (RULES.md: dedup within a TTL). */
        ttlMs: z.number().int().positive(),
        keyPrefix: z.string(),
        /** 0 = never: results wait for Redis. Otherwise forward without dedup after Redis is down this long. */
        failOpenAfterMs: z.number().int().nonnegative(),
        retryInitialMs: z.number().int().positive(),
        retryMaxMs: z.number().int().positive(),
        /** A Redis command slower than this counts as a Redis failure (the batch is retried). */
        commandTimeoutMs: z.number().int().positive(),
      })
      .strict(),
    actions: z
      .object({
        log: z.boolean(),
        webhook: z
          .object({
            url: httpUrl,
            /** Authorization header of each POST (e.g. "Bearer ..."); empty: none. A secret: set it from the environment. */
            authorization: headerValue,
            /** A file whose content is `authorization` (a mounted secret); empty: none. */
            authorizationFile: z.string(),
            timeoutMs: z.number().int().positive(),
            maxAttempts: z.number().int().positive(),
            backoffInitialMs: z.number().int().positive(),
            backoffMaxMs: z.number().int().positive(),
          })
          .strict(),
        alertmanager: z.object({ url: httpUrl, authorization: headerValue, authorizationFile: z.string() }).strict(),
        dlqTopic: topicName,
      })
      .strict(),
    comparator: z
      .object({
        windowMs: z.number().int().positive(),
        healthIntervalMs: z.number().int().positive(),
      })
      .strict(),
    router: z
      .object({
        /** Merge the input partitions by event time, so a backlog reaches the engines in order (see packages/routing/src/align.ts). */
        alignPartitions: z.boolean(),
        /** Longest time (ms) a lagging partition that ran dry may hold the others back. */
        alignMaxHoldMs: z.number().int().nonnegative(),
        /** Producers' event-time skew allowed (ARCHITECTURE.md reorderSlackMs): records wait this long (event time) for older ones. */
        reorderSlackMs: z.number().int().nonnegative().max(600_000),
        /** Event time (ms) a router may run ahead of the slowest peer router of its group (their frontiers on the health topic); 0: strict order, which stalls a live stream (README). */
        peerSlackMs: z.number().int().nonnegative(),
        /** A partition with more records buffered than this is paused until half of them are routed. */
        maxBufferedPerPartition: z.number().int().positive(),
        /** Records routed per produce round. */
        chunkSize: z.number().int().positive(),
        /** Bytes fetched per partition per fetch (kafkajs maxBytesPerPartition). */
        fetchMaxBytesPerPartition: z.number().int().positive(),
        /** Input partitions whose batches the router takes at once (one produce round serves them all). */
        partitionsConsumedConcurrently: z.number().int().positive(),
        /** How often (ms) a router checks whether to publish its event-time frontier to the other routers of its group. */
        frontierIntervalMs: z.number().int().positive(),
        /** A peer router's frontier not renewed for this long (ms) no longer holds this router back. */
        peerStaleMs: z.number().int().positive(),
      })
      .strict(),
    correlator: z
      .object({
        /** primary: tapio.events.v2 -> tapio.results; shadow: tapio.events.v2.shadow -> tapio.results.shadow (V2 only). */
        role: z.enum(['primary', 'shadow']),
        /** How often each correlator writes a health snapshot to the health topic. */
        healthIntervalMs: z.number().int().positive(),
        /** A record slower than this counts as a slow call in health snapshots. */
        slowCallMs: z.number().positive(),
      })
      .strict(),
    rollout: z
      .object({
        /** The default plan of `tapio rollout start`; percentages rise from stage to stage. */
        stages: z
          .array(
            z
              .object({
                percentage: z.number().min(0).max(100),
                minDurationMs: durationMs,
                /** Wait for `tapio rollout promote` once the stage's criteria are met. */
                manualGate: z.boolean(),
              })
              .strict(),
          )
          .min(1),
        /** Each: breach above `max`, judged from `minSamples` on; `required` holds the stage while samples are few. */
        criteria: z
          .object({
            errorRate: rolloutCriterion,
            slowCallRate: rolloutCriterion,
            mismatchRate: rolloutCriterion,
            lag: rolloutCriterion,
          })
          .strict(),
        evaluateIntervalMs: z.number().int().positive(),
        /** The health snapshots the criteria look back over (never before the stage's start). */
        snapshotWindowMs: durationMs,
        /** On rollback also force the V2 breaker open, so pinned categories fall back to V1 too. */
        forceBreakerOnRollback: z.boolean(),
        /** POST JSON on stage change, rollback and completion; empty: off. */
        webhookUrl: httpUrl,
        /** Authorization header of the notifications; empty: none. A secret: set it from the environment. */
        webhookAuthorization: headerValue,
        /** A file whose content is `webhookAuthorization`; empty: none. */
        webhookAuthorizationFile: z.string(),
        /** The status page (its own small server beside /metrics); 0 picks a free port. */
        statusPort: port,
        /** Bearer token the status page's buttons need; empty: the buttons are refused. */
        uiToken: z.string(),
        /** A file whose content is `uiToken`; empty: none. */
        uiTokenFile: z.string(),
      })
      .strict(),
    /** Consumer group ids (a test run or a second pipeline on one cluster sets its own). */
    groups: z
      .object({
        router: z.string().min(1),
        v1: z.string().min(1),
        v2: z.string().min(1),
        v2Shadow: z.string().min(1),
        dedup: z.string().min(1),
        actions: z.string().min(1),
        comparator: z.string().min(1),
        rolloutController: z.string().min(1),
      })
      .strict(),
    http: z.object({ host: z.string().min(1), port }).strict(),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) }).strict(),
  })
  .strict()
  .superRefine((config, ctx) => {
    // A sink sends a URL's userinfo as Basic authorization; with an explicit one too, which is meant?
    const endpoints = [
      [['actions', 'webhook', 'url'], config.actions.webhook.url, config.actions.webhook.authorization],
      [['actions', 'alertmanager', 'url'], config.actions.alertmanager.url, config.actions.alertmanager.authorization],
      [['rollout', 'webhookUrl'], config.rollout.webhookUrl, config.rollout.webhookAuthorization],
    ] as const;
    for (const [path, url, authorization] of endpoints) {
      if (authorization === '' || !URL.canParse(url)) continue;
      const { username, password } = new URL(url);
      if (username !== '' || password !== '') {
        ctx.addIssue({
          code: 'custom',
          path: [...path],
          message: 'has credentials and an authorization header is configured too: keep one of them',
        });
      }
    }
  });

export type TapioConfig = z.output<typeof configSchema>;
type Input = z.input<typeof configSchema>;

export const DEFAULTS: Input = {
  kafka: {
    brokers: ['127.0.0.1:9092'],
    clientId: 'tapio',
    connectionTimeoutMs: 3000,
    requestTimeoutMs: 30000,
    sessionTimeoutMs: 30000,
    heartbeatIntervalMs: 3000,
    partitionsConsumedConcurrently: 4,
    commitIntervalMs: 500,
  },
  registry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7' },
  redis: { url: 'redis://127.0.0.1:6379', tls: false, tlsRejectUnauthorized: true, password: '', passwordFile: '' },
  topics: {
    events: 'tapio.events',
    eventsV1: 'tapio.events.v1',
    eventsV2: 'tapio.events.v2',
    eventsV2Shadow: 'tapio.events.v2.shadow',
    results: 'tapio.results',
    resultsShadow: 'tapio.results.shadow',
    resultsDeduped: 'tapio.results.deduped',
    control: 'tapio.control',
    health: 'tapio.health',
    dlq: 'tapio.events.dlq',
    eventPartitions: 12,
    resultPartitions: 6,
    replicationFactor: 1,
  },
  correlation: {
    allowedLatenessMs: 60000,
    ruleTimeoutMs: 50,
    maxFutureSkewMs: 86400000,
    hybrid: {
      enabled: true,
      v2_percentage: 10,
      routing_strategy: 'progressive',
      rollback: { error_threshold: 0.05, latency_threshold: '100ms' },
      features: { v2_memory_rules: true, v2_cpu_rules: false, v2_network_rules: false },
    },
  },
  collector: {
    ratePerSecond: 1000,
    durationSeconds: 0,
    scenarios: ['all'],
    noiseRatio: 0.95,
    seed: 1,
    maxBatch: 2000,
  },
  dedup: {
    ttlMs: 300000,
    keyPrefix: 'tapio:dedup:',
    failOpenAfterMs: 0,
    retryInitialMs: 100,
    retryMaxMs: 5000,
    commandTimeoutMs: 2000,
  },
  actions: {
    log: true,
    webhook: {
      url: '',
      authorization: '',
      authorizationFile: '',
      timeoutMs: 5000,
      maxAttempts: 5,
      backoffInitialMs: 200,
      backoffMaxMs: 5000,
    },
    alertmanager: { url: '', authorization: '', authorizationFile: '' },
    dlqTopic: 'tapio.actions.dlq',
  },
  comparator: { windowMs: 30000, healthIntervalMs: 5000 },
  router: {
    alignPartitions: true,
    alignMaxHoldMs: 5000,
    reorderSlackMs: 2000,
    peerSlackMs: 30000,
    maxBufferedPerPartition: 20000,
    chunkSize: 500,
    fetchMaxBytesPerPartition: 2097152,
    partitionsConsumedConcurrently: 16,
    frontierIntervalMs: 200,
    peerStaleMs: 3000,
  },
  correlator: { role: 'primary', healthIntervalMs: 2000, slowCallMs: 100 },
  rollout: {
    stages: [
      { percentage: 10, minDurationMs: 300000, manualGate: false },
      { percentage: 25, minDurationMs: 600000, manualGate: false },
      { percentage: 50, minDurationMs: 900000, manualGate: true },
      { percentage: 100, minDurationMs: 900000, manualGate: false },
    ],
    criteria: {
      errorRate: { max: 0.001, minSamples: 1000, required: true },
      slowCallRate: { max: 0.01, minSamples: 1000, required: true },
      mismatchRate: { max: 0.01, minSamples: 100, required: false },
      lag: { max: 10000, minSamples: 3, required: true },
    },
    evaluateIntervalMs: 1000,
    snapshotWindowMs: 60000,
    forceBreakerOnRollback: true,
    webhookUrl: '',
    webhookAuthorization: '',
    webhookAuthorizationFile: '',
    statusPort: 9465,
    uiToken: '',
    uiTokenFile: '',
  },
  groups: {
    router: 'tapio-router',
    v1: 'tapio-v1',
    v2: 'tapio-v2',
    v2Shadow: 'tapio-v2-shadow',
    dedup: 'tapio-dedup',
    actions: 'tapio-actions',
    comparator: 'tapio-comparator',
    rolloutController: 'tapio-rollout-controller',
  },
  http: { host: '127.0.0.1', port: 9464 },
  log: { level: 'info' },
};

export interface LoadConfigOptions {
  /** Path of the YAML file; when absent, env.TAPIO_CONFIG; when both absent, defaults only. */
  file?: string;
  /** The environment, passed in so tests never touch process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Extra values applied over the file and under the environment (e.g. a service's own defaults). */
  overrides?: Record<string, unknown>;
}

type Plain = Record<string, unknown>;

const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: unknown, over: unknown): unknown {
  if (!isPlain(base) || !isPlain(over)) return over === undefined ? base : over;
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
  return out;
}

function configError(message: string, key: string, cause?: unknown): TapioError {
  return new TapioError('INVALID_CONFIG', message, { cause, context: { field: key } });
}

/**
 * A value as a config error may show it: not at all for a secret's key (isSecretKey), a URL with
 * its credentials and query values hidden, anything else as JSON with the secrets inside it hidden.
 */
function describeValue(key: string, value: unknown): string {
  const leaf = key.slice(key.lastIndexOf('.') + 1);
  if (isSecretKey(leaf)) return '(not shown: a secret)';
  if (/url$/i.test(leaf) && typeof value === 'string') {
    if (!URL.canParse(value)) return '(not shown: not a URL, and it may hold a password)';
    const url = new URL(value);
    if (url.username !== '' || url.password !== '' || url.search !== '') return JSON.stringify(redactUrl(value));
  }
  return JSON.stringify(redactSecrets(value)) ?? 'undefined';
}

/** Applies TAPIO_* variables; each value is converted to the type of the default at that path. */
function applyEnv(target: Plain, env: Readonly<Record<string, string | undefined>>): void {
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('TAPIO_') || name === 'TAPIO_CONFIG' || raw === undefined) continue;
    const wanted = name.slice('TAPIO_'.length).split('__');
    let node: Plain = target;
    let defaults: unknown = DEFAULTS;
    const path: string[] = [];
    for (let i = 0; i < wanted.length; i++) {
      const seg = wanted[i] as string;
      const key = Object.keys(isPlain(defaults) ? defaults : node).find((k) => k.toUpperCase() === seg.toUpperCase());
      if (key === undefined) {
        // Stack scripts and tools share the TAPIO_ prefix; only names that start like a config section count.
        if (i === 0) break;
        throw configError(
          `unknown config key ${[...path, seg.toLowerCase()].join('.')} in environment variable ${name}`,
          name,
        );
      }
      path.push(key);
      defaults = isPlain(defaults) ? defaults[key] : undefined;
      if (i === wanted.length - 1) {
        node[key] = convert(raw, defaults, name, path.join('.'));
      } else {
        if (!isPlain(node[key])) node[key] = {};
        node = node[key] as Plain;
      }
    }
  }
}

function convert(raw: string, like: unknown, name: string, key: string): unknown {
  if (typeof like === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) {
      throw configError(`${name}=${describeValue(key, raw)}: expected a number`, name);
    }
    return n;
  }
  if (typeof like === 'boolean') {
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    throw configError(`${name}=${describeValue(key, raw)}: expected true or false`, name);
  }
  if (Array.isArray(like))
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  if (isPlain(like)) {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      // Without the parser's error: its message can quote the value, and a section holds secrets.
      throw configError(`${name}: expected a JSON object`, name);
    }
  }
  return raw;
}

/** Loads, validates and freezes the configuration. Throws one INVALID_CONFIG error naming the key. */
export function loadConfig(options: LoadConfigOptions = {}): Readonly<TapioConfig> {
  const env = options.env ?? {};
  const file = options.file ?? env['TAPIO_CONFIG'];
  let fromFile: unknown = {};
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw configError(`cannot read config file ${file}: ${(cause as Error).message}`, 'TAPIO_CONFIG', cause);
    }
    try {
      fromFile = parseYaml(text) ?? {};
    } catch (cause) {
      // The first line has the problem and its position; the lines after it quote the file, secrets too.
      const problem = ((cause as Error).message.split('\n')[0] ?? '').replace(/:$/, '');
      throw configError(`config file ${file} is not valid YAML: ${problem}`, 'TAPIO_CONFIG');
    }
    if (!isPlain(fromFile)) throw configError(`config file ${file} must hold a mapping at the top`, '(root)');
  }
  const merged = merge(merge(structuredClone(DEFAULTS), fromFile), options.overrides ?? {}) as Plain;
  applyEnv(merged, env);
  readSecretFiles(merged, DEFAULTS, []);
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.ZodIssue;
    const key = issue.path.join('.') || '(root)';
    const value = issue.path.reduce<unknown>(
      (v, k) => (isPlain(v) || Array.isArray(v) ? (v as Plain)[k] : undefined),
      merged,
    );
    const where = file ? ` in ${file} or the environment` : '';
    // An unknown key cannot be told to be a secret or not (a misspelt password), so its section is not shown.
    const shown = issue.code === 'unrecognized_keys' ? '' : ` = ${describeValue(key, value)}`;
    throw configError(
      `invalid config${where}: ${key}${shown}: ${issue.message}` +
        (issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : ''),
      key,
    );
  }
  return deepFreeze(parsed.data);
}

/**
 * For each `<name>File` beside a string key `<name>` in DEFAULTS, when set: `<name>` becomes that
 * file's content, without its trailing line break. Setting both, or naming an empty file, is an error.
 */
function readSecretFiles(node: Plain, defaults: Plain, path: readonly string[]): void {
  for (const [key, like] of Object.entries(defaults)) {
    const value = node[key];
    if (isPlain(like)) {
      if (isPlain(value)) readSecretFiles(value, like, [...path, key]);
      continue;
    }
    const target = key.slice(0, -'File'.length);
    if (!key.endsWith('File') || typeof defaults[target] !== 'string' || typeof value !== 'string' || value === '') {
      continue;
    }
    const fileKey = [...path, key].join('.');
    const targetKey = [...path, target].join('.');
    if (node[target] !== '' && node[target] !== undefined) {
      throw configError(`${targetKey} and ${fileKey} are both set: set only one`, targetKey);
    }
    let text: string;
    try {
      text = readFileSync(value, 'utf8');
    } catch (cause) {
      throw configError(`${fileKey}: cannot read ${value}: ${(cause as Error).message}`, fileKey, cause);
    }
    const secret = text.replace(/\r?\n$/, '');
    if (secret === '') throw configError(`${fileKey}: ${value} is empty`, fileKey);
    node[target] = secret;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
