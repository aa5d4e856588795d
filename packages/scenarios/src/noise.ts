/**
 * Background noise: healthy metrics and ordinary events over a fleet of ~2 000 pods on tens of nodes.
 *
 * Noise must never satisfy a rule's condition, alone or with scenario events, whatever subset of it a
 * rule sees (late events are dropped) and in whatever order it arrives. Hence every bound below holds
 * per event or per key over any window, not on average:
 * - memory.usage <= 0.58 of the limit (R2 and R3 need >= 0.8 and >= 0.7);
 * - pod cpu.usage <= 0.6 (R6 needs a mean >= 0.8), node cpu.usage <= 0.7 (R5 needs >= 0.8);
 * - cpu.throttle <= 0.08 (R4 needs a mean >= 0.25, R5 a ratio >= 0.1);
 * - disk.usage <= 0.7, inodes <= 0.5 (R10 needs 0.85 / 0.9);
 * - per pod, restarts more than 3600 s apart (R7 needs 3 in 900 s) and no oom_kill at all (R1);
 * - per namespace, DNS failures more than 61 s apart (R8 needs 5 in 60 s);
 * - per destination service, connection failures more than 61 s apart (R9 needs 10 in 60 s);
 * - per pod, mount failures more than 1200 s apart (R11 needs 2 in 600 s);
 * - no node.pressure and no pod.evicted (R12).
 * Scenario instances use their own namespace and node, so no scope key is shared with them.
 */
import type { Event } from '@tapio/events';
import { MIB, makeEvent } from './builder';
import type { Fleet, FleetOptions, Pod } from './entities';
import { buildFleet, containerEntity, deploymentEntity, nodeEntity, podEntity, processEntity } from './entities';
import { Rng, deriveSeed } from './prng';

const RESTART_GAP_MS = 3_600_000;
const DNS_GAP_MS = 61_000;
const CONNECTION_GAP_MS = 61_000;
const MOUNT_GAP_MS = 1_200_000;

const LIMITS_MIB: readonly number[] = [256, 512, 1024, 2048];
const PROCESSES: readonly string[] = ['java', 'node', 'python3', 'envoy', 'nginx', 'sh'];
const UNITS: readonly string[] = ['kubelet.service', 'containerd.service', 'node-exporter.service'];

type NoiseKind =
  | 'memory'
  | 'podCpu'
  | 'nodeCpu'
  | 'throttle'
  | 'disk'
  | 'scheduled'
  | 'started'
  | 'pulled'
  | 'scaled'
  | 'exec'
  | 'unit'
  | 'journal'
  | 'restart'
  | 'notReady'
  | 'timeout'
  | 'dns'
  | 'connection'
  | 'mount';

/** Relative frequencies; metrics dominate, as in a real fleet. */
const WEIGHTS: ReadonlyArray<readonly [NoiseKind, number]> = [
  ['memory', 30],
  ['podCpu', 14],
  ['nodeCpu', 6],
  ['throttle', 6],
  ['disk', 4],
  ['scheduled', 6],
  ['started', 3],
  ['pulled', 3],
  ['scaled', 2],
  ['exec', 3],
  ['unit', 2],
  ['journal', 2],
  ['restart', 2],
  ['notReady', 2],
  ['timeout', 2],
  ['dns', 2],
  ['connection', 2],
  ['mount', 0.5],
];

export interface NoiseGeneratorOptions {
  seed: number;
  fleet?: FleetOptions;
}

/**
 * Produces one noise event per call, for timestamps given in non-decreasing order (the rate limits
 * above compare with the previous event of the same key). State is bounded by the fleet's size.
 */
export class NoiseGenerator {
  readonly fleet: Fleet;
  private readonly rng: Rng;
  private readonly idPrefix: string;
  private readonly cumulative: number[];
  private readonly kinds: NoiseKind[];
  private readonly total: number;
  private count = 0;
  private readonly lastRestart = new Map<string, number>();
  private readonly lastMount = new Map<string, number>();
  private readonly lastDns = new Map<string, number>();
  private readonly lastConnection = new Map<string, number>();

  constructor(options: NoiseGeneratorOptions) {
    this.fleet = buildFleet(options.seed, options.fleet);
    this.rng = new Rng(deriveSeed(options.seed, 'noise'));
    this.idPrefix = `noise-${options.seed}`;
    this.kinds = WEIGHTS.map(([k]) => k);
    let sum = 0;
    this.cumulative = WEIGHTS.map(([, w]) => (sum += w));
    this.total = sum;
  }

  /** The next noise event, at `timestamp`. */
  at(timestamp: number): Event {
    const id = `${this.idPrefix}-${this.count++}`;
    const rng = this.rng;
    const pod = rng.pick(this.fleet.pods);
    switch (this.pickKind()) {
      case 'memory': {
        const container = rng.pick(pod.containers);
        const h = deriveSeed(pod.name, container);
        const limit = (LIMITS_MIB[h % LIMITS_MIB.length] ?? 512) * MIB;
        const baseline = 0.15 + ((h >>> 8) % 1000) / 1000 / 3;
        const usage = Math.round((baseline + rng.float(-0.08, 0.08)) * limit);
        const attributes = { usage_bytes: usage, limit_bytes: limit };
        return makeEvent(
          id,
          timestamp,
          'metrics',
          'memory.usage',
          'info',
          containerEntity(pod, container),
          attributes,
          {},
          null,
        );
      }
      case 'podCpu':
        return this.metric(id, timestamp, 'cpu.usage', podEntity(pod), { usage_ratio: rng.float(0.05, 0.6) });
      case 'nodeCpu':
        return this.metric(id, timestamp, 'cpu.usage', this.node(), { usage_ratio: rng.float(0.1, 0.7) });
      case 'throttle': {
        const entity = rng.chance(0.3) ? containerEntity(pod, rng.pick(pod.containers)) : podEntity(pod);
        return makeEvent(
          id,
          timestamp,
          'ebpf',
          'cpu.throttle',
          'info',
          entity,
          { throttle_ratio: rng.float(0, 0.08) },
          {},
          null,
        );
      }
      case 'disk': {
        const attributes = { usage_ratio: rng.float(0.2, 0.7), inode_ratio: rng.float(0.05, 0.5) };
        return makeEvent(
          id,
          timestamp,
          'metrics',
          'disk.usage',
          'info',
          this.node(),
          attributes,
          { mount: '/var/lib/kubelet' },
          null,
        );
      }
      case 'scheduled':
        return this.scheduled(id, timestamp, pod);
      case 'started': {
        const container = rng.pick(pod.containers);
        const entity = containerEntity(pod, container);
        return makeEvent(
          id,
          timestamp,
          'kubernetes',
          'container.started',
          'info',
          entity,
          {},
          {},
          `Started container ${container}`,
        );
      }
      case 'pulled': {
        const labels = { image: `registry.internal/${pod.namespace}/${pod.service}:v${rng.int(1, 40)}` };
        return makeEvent(
          id,
          timestamp,
          'kubernetes',
          'image.pulled',
          'info',
          podEntity(pod),
          {},
          labels,
          'Successfully pulled image',
        );
      }
      case 'scaled': {
        const entity = deploymentEntity(pod.cluster, pod.namespace, pod.service);
        const attributes = { replicas: rng.int(2, 30) };
        return makeEvent(id, timestamp, 'kubernetes', 'deployment.scaled', 'info', entity, attributes, {}, null);
      }
      case 'exec': {
        const entity = processEntity(pod, rng.pick(PROCESSES));
        return makeEvent(id, timestamp, 'ebpf', 'process.exec', 'debug', entity, { pid: rng.int(2, 65535) }, {}, null);
      }
      case 'unit':
        return makeEvent(
          id,
          timestamp,
          'systemd',
          'systemd.unit_started',
          'info',
          this.node(),
          {},
          { unit: rng.pick(UNITS) },
          null,
        );
      case 'journal':
        return makeEvent(
          id,
          timestamp,
          'journald',
          'journald.log',
          'debug',
          this.node(),
          {},
          {},
          'kubelet: PLEG is healthy',
        );
      case 'restart': {
        if (!this.allow(this.lastRestart, pod.name, timestamp, RESTART_GAP_MS))
          return this.scheduled(id, timestamp, pod);
        const attributes = { restart_count: rng.int(1, 3), exit_code: rng.pick([0, 1, 143]) };
        return makeEvent(id, timestamp, 'kubernetes', 'pod.restart', 'warning', podEntity(pod), attributes, {}, null);
      }
      case 'notReady':
        return makeEvent(
          id,
          timestamp,
          'kubernetes',
          'pod.not_ready',
          'warning',
          podEntity(pod),
          {},
          {},
          'Readiness probe failed',
        );
      case 'timeout': {
        const attributes = { duration_ms: rng.int(1000, 5000) };
        return makeEvent(
          id,
          timestamp,
          'ebpf',
          'syscall.timeout',
          'warning',
          podEntity(pod),
          attributes,
          { syscall: 'read' },
          null,
        );
      }
      case 'dns': {
        if (!this.allow(this.lastDns, pod.namespace, timestamp, DNS_GAP_MS)) return this.scheduled(id, timestamp, pod);
        const labels = { query: `${rng.pick(this.fleet.namespaces)}.svc.cluster.local`, rcode: 'NXDOMAIN' };
        return makeEvent(id, timestamp, 'ebpf', 'network.dns_failure', 'warning', podEntity(pod), {}, labels, null);
      }
      case 'connection': {
        const destination = rng.pick(this.fleet.destinations);
        if (!this.allow(this.lastConnection, destination, timestamp, CONNECTION_GAP_MS)) {
          return this.scheduled(id, timestamp, pod);
        }
        const labels = { destination, error: 'ECONNRESET' };
        return makeEvent(
          id,
          timestamp,
          'ebpf',
          'network.connection_failure',
          'warning',
          podEntity(pod),
          {},
          labels,
          null,
        );
      }
      case 'mount': {
        if (!this.allow(this.lastMount, pod.name, timestamp, MOUNT_GAP_MS)) return this.scheduled(id, timestamp, pod);
        const labels = { volume: 'config' };
        return makeEvent(
          id,
          timestamp,
          'kubernetes',
          'volume.mount_failed',
          'warning',
          podEntity(pod),
          {},
          labels,
          null,
        );
      }
    }
  }

  private pickKind(): NoiseKind {
    const x = this.rng.next() * this.total;
    let i = 0;
    while (i < this.cumulative.length - 1 && (this.cumulative[i] ?? 0) <= x) i++;
    return this.kinds[i] ?? 'scheduled';
  }

  private node() {
    return nodeEntity(this.fleet.cluster, this.rng.pick(this.fleet.nodes));
  }

  private metric(
    id: string,
    timestamp: number,
    type: string,
    entity: Event['entity'],
    attributes: Record<string, number>,
  ): Event {
    return makeEvent(id, timestamp, 'metrics', type, 'info', entity, attributes, {}, null);
  }

  private scheduled(id: string, timestamp: number, pod: Pod): Event {
    const message = `Successfully assigned ${pod.namespace}/${pod.name} to ${pod.node ?? 'a node'}`;
    return makeEvent(id, timestamp, 'kubernetes', 'pod.scheduled', 'info', podEntity(pod), {}, {}, message);
  }

  /** Records `timestamp` for `key` and returns true when the previous one is more than `gapMs` older. */
  private allow(last: Map<string, number>, key: string, timestamp: number, gapMs: number): boolean {
    const previous = last.get(key);
    if (previous !== undefined && timestamp - previous <= gapMs) return false;
    last.set(key, timestamp);
    return true;
  }
}

export interface NoiseOptions {
  seed: number;
  startMs: number;
  count: number;
  /** Event-time span of the noise; timestamps are uniform in [startMs, startMs + durationMs). */
  durationMs: number;
  fleet?: FleetOptions;
}

/** `count` noise events in timestamp order, ids `noise-<seed>-<n>`. */
export function generateNoise(options: NoiseOptions): Event[] {
  const { seed, startMs, count, durationMs } = options;
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`noise count must be a non-negative integer, got ${count}`);
  if (!(durationMs > 0)) throw new RangeError(`noise durationMs must be positive, got ${durationMs}`);
  const rng = new Rng(deriveSeed(seed, 'noise-times'));
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(startMs + Math.floor(rng.next() * durationMs));
  times.sort((a, b) => a - b);
  const generator = new NoiseGenerator(options.fleet === undefined ? { seed } : { seed, fleet: options.fleet });
  return times.map((t) => generator.at(t));
}
