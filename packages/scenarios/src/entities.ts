import type { Entity } from '@tapio/events';
import { Rng, deriveSeed } from './prng';

/** Characters Kubernetes uses in generated name suffixes (no vowels, no 0/1/3, to avoid words). */
const K8S_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export const CLUSTERS: readonly string[] = ['prod-eu-west-1', 'prod-us-east-2', 'prod-ap-south-1'];

export const NAMESPACES: readonly string[] = [
  'checkout',
  'payments',
  'cart',
  'catalog',
  'search',
  'recommendations',
  'shipping',
  'inventory',
  'accounts',
  'auth',
  'notifications',
  'billing',
  'orders',
  'pricing',
  'reviews',
  'media',
  'analytics',
  'ingest',
  'gateway',
  'frontend',
  'ledger',
  'fraud',
  'loyalty',
  'support',
];

const SERVICE_SUFFIXES: readonly string[] = [
  'api',
  'worker',
  'web',
  'consumer',
  'scheduler',
  'cache',
  'sync',
  'indexer',
];

/**
 * Noise nodes are `node-001` .. `node-<count>` and scenario nodes start at this number, so the two
 * never share a node scope key.
 */
export const SCENARIO_NODE_BASE = 500;

export interface Pod {
  readonly cluster: string;
  readonly namespace: string;
  /** The deployment, which is also the service name and the main container name. */
  readonly service: string;
  readonly name: string;
  readonly node: string | null;
  readonly containers: readonly string[];
}

export interface Fleet {
  readonly cluster: string;
  readonly nodes: readonly string[];
  readonly namespaces: readonly string[];
  readonly pods: readonly Pod[];
  /** Every service as `<namespace>/<service>`, the form of label `destination`. */
  readonly destinations: readonly string[];
}

export interface FleetOptions {
  /** Number of noise nodes, at most SCENARIO_NODE_BASE - 1. Default 40. */
  nodes?: number;
  /** Replicas per deployment are drawn from [min, max]. Default [6, 24]. */
  replicas?: readonly [number, number];
}

/** The cluster name of every entity generated from `seed`. */
export function clusterFor(seed: number): string {
  return CLUSTERS[deriveSeed(seed, 'cluster') % CLUSTERS.length] ?? 'prod-eu-west-1';
}

export function nodeName(n: number): string {
  return `node-${String(n).padStart(3, '0')}`;
}

/** `<deployment>-<pod-template-hash>-<suffix>`, the shape of a Deployment's pod names. */
export function podName(deployment: string, templateHash: string, rng: Rng): string {
  return `${deployment}-${templateHash}-${rng.chars(K8S_ALPHABET, 5)}`;
}

export function templateHash(rng: Rng): string {
  return rng.chars(K8S_ALPHABET, rng.int(9, 10));
}

/**
 * The background fleet: every namespace of NAMESPACES with 4 to 8 deployments of 6 to 24 replicas,
 * about 2 000 pods spread over tens of nodes. Deterministic in the seed.
 */
export function buildFleet(seed: number, options: FleetOptions = {}): Fleet {
  const nodeCount = options.nodes ?? 40;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount >= SCENARIO_NODE_BASE) {
    throw new RangeError(`fleet nodes must be an integer in [1, ${SCENARIO_NODE_BASE - 1}], got ${nodeCount}`);
  }
  const [minReplicas, maxReplicas] = options.replicas ?? [6, 24];
  const rng = new Rng(deriveSeed(seed, 'fleet'));
  const cluster = clusterFor(seed);
  const nodes: string[] = [];
  for (let i = 1; i <= nodeCount; i++) nodes.push(nodeName(i));
  const pods: Pod[] = [];
  const destinations: string[] = [];
  for (const namespace of NAMESPACES) {
    const suffixes = rng.shuffled(SERVICE_SUFFIXES).slice(0, rng.int(3, 7));
    const services = [namespace, ...suffixes.map((s) => `${namespace}-${s}`)];
    for (const service of services) {
      destinations.push(`${namespace}/${service}`);
      const hash = templateHash(rng);
      const sidecar = rng.chance(0.4);
      const containers = sidecar ? [service, 'istio-proxy'] : [service];
      const replicas = rng.int(minReplicas, maxReplicas);
      for (let r = 0; r < replicas; r++) {
        pods.push({
          cluster,
          namespace,
          service,
          name: podName(service, hash, rng),
          node: rng.pick(nodes),
          containers,
        });
      }
    }
  }
  return { cluster, nodes, namespaces: NAMESPACES, pods, destinations };
}

/**
 * The entities of one scenario instance: its own namespace (`<team>-inc<instance>`) and its own
 * node (`node-<SCENARIO_NODE_BASE + instance>`), so no noise event and no other instance shares
 * any of its scope keys.
 */
export class ScenarioWorld {
  readonly cluster: string;
  readonly namespace: string;
  readonly node: string;
  private readonly team: string;
  private readonly hashes = new Map<string, string>();

  constructor(
    private readonly rng: Rng,
    instance: number,
    cluster: string,
  ) {
    this.cluster = cluster;
    this.team = rng.pick(NAMESPACES);
    this.namespace = `${this.team}-inc${String(instance).padStart(4, '0')}`;
    this.node = nodeName(SCENARIO_NODE_BASE + instance);
  }

  /** A service name of this instance: index 0 is `<team>`, the others `<team>-<suffix>`. */
  service(index: number): string {
    if (index === 0) return this.team;
    return `${this.team}-${SERVICE_SUFFIXES[(index - 1) % SERVICE_SUFFIXES.length] ?? 'api'}`;
  }

  /** A new pod of `service` on this instance's node, or on no node when `nodeless`. */
  pod(service: string, nodeless = false): Pod {
    let hash = this.hashes.get(service);
    if (hash === undefined) {
      hash = templateHash(this.rng);
      this.hashes.set(service, hash);
    }
    return {
      cluster: this.cluster,
      namespace: this.namespace,
      service,
      name: podName(service, hash, this.rng),
      node: nodeless ? null : this.node,
      containers: [service],
    };
  }
}

export function podEntity(pod: Pod): Entity {
  return {
    cluster: pod.cluster,
    namespace: pod.namespace,
    kind: 'pod',
    name: pod.name,
    node: pod.node,
    pod: null,
    container: null,
    service: pod.service,
  };
}

export function containerEntity(pod: Pod, container: string): Entity {
  return {
    cluster: pod.cluster,
    namespace: pod.namespace,
    kind: 'container',
    name: container,
    node: pod.node,
    pod: pod.name,
    container,
    service: pod.service,
  };
}

export function nodeEntity(cluster: string, node: string): Entity {
  return {
    cluster,
    namespace: null,
    kind: 'node',
    name: node,
    node: null,
    pod: null,
    container: null,
    service: null,
  };
}

export function deploymentEntity(cluster: string, namespace: string, deployment: string): Entity {
  return {
    cluster,
    namespace,
    kind: 'deployment',
    name: deployment,
    node: null,
    pod: null,
    container: null,
    service: deployment,
  };
}

export function processEntity(pod: Pod, process: string): Entity {
  return {
    cluster: pod.cluster,
    namespace: pod.namespace,
    kind: 'process',
    name: process,
    node: pod.node,
    pod: pod.name,
    container: pod.containers[0] ?? null,
    service: pod.service,
  };
}

export const scopeKeys = {
  container: (pod: Pod, container: string): string => `container/${pod.namespace}/${pod.name}/${container}`,
  pod: (pod: Pod): string => `pod/${pod.namespace}/${pod.name}`,
  node: (node: string): string => `node/${node}`,
  namespace: (namespace: string): string => `namespace/${namespace}`,
  service: (namespace: string, service: string): string => `service/${namespace}/${service}`,
};
