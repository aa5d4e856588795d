import type { Entity, Event } from '@tapio/events';
import { Rng, deriveSeed } from '@tapio/scenarios';

export interface FuzzOptions {
  seed: number;
  events: number;
  /** Largest delivery delay of an on-time event. */
  outOfOrderMs: number;
  /** Share of events delivered 60 s + 1 ms to 180 s after their timestamp. */
  lateShare: number;
}

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
const NAMESPACES = ['a', 'b'];
const PODS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
const NODES = ['n0', 'n1', 'n2'];
const CONTAINERS = ['c0', 'c1'];
const SERVICES = ['s0', 's1'];
const TYPES = [
  'memory.usage',
  'memory.usage',
  'memory.usage',
  'memory.oom_kill',
  'pod.restart',
  'pod.restart',
  'pod.evicted',
  'pod.not_ready',
  'cpu.throttle',
  'cpu.throttle',
  'cpu.usage',
  'cpu.usage',
  'syscall.timeout',
  'network.dns_failure',
  'network.dns_failure',
  'network.connection_failure',
  'network.connection_failure',
  'network.connection_failure',
  'disk.usage',
  'volume.mount_failed',
  'node.pressure',
  'process.exec',
];

/**
 * A dense random stream over a tiny fleet, so that every rule's condition turns true and false many
 * times: values straddle every threshold, timestamps repeat (ties), some attributes, pods and nodes
 * are missing, ids do not follow time order, event time sometimes jumps (idle keys), and delivery is
 * out of order within the lateness or late beyond it. Noise of this kind is what the scenario
 * library avoids on purpose; here it is the point.
 */
export function fuzzStream(o: FuzzOptions): Event[] {
  const rng = new Rng(deriveSeed(o.seed, 'engine-v2-fuzz'));
  const usage = new Map<string, number>();
  const entries: Array<{ event: Event; deliverAt: number; seq: number }> = [];
  let t = START_MS;
  for (let i = 0; i < o.events; i++) {
    if (!rng.chance(0.1)) t += rng.int(0, 300);
    if (rng.chance(0.0005)) t += rng.int(300_000, 900_000);
    const type = rng.pick(TYPES);
    const ns = rng.chance(0.02) ? null : rng.pick(NAMESPACES);
    const pod = rng.pick(PODS);
    const node = rng.chance(0.05) ? null : rng.pick(NODES);
    const container = rng.pick(CONTAINERS);
    const kindRoll = rng.next();
    let entity: Entity;
    const base = { cluster: null, namespace: ns, node, service: rng.chance(0.5) ? rng.pick(SERVICES) : null };
    if (type === 'disk.usage' || type === 'node.pressure' || (type === 'cpu.usage' && kindRoll < 0.4)) {
      entity = { ...base, kind: 'node', name: node ?? 'n0', node: null, pod: null, container: null };
    } else if (type === 'memory.usage' || (kindRoll < 0.3 && type !== 'pod.restart')) {
      entity = { ...base, kind: 'container', name: container, pod: rng.chance(0.03) ? null : pod, container: null };
    } else {
      entity = { ...base, kind: 'pod', name: pod, pod: null, container: null };
    }
    const attributes: Record<string, number> = {};
    const labels: Record<string, string> = {};
    switch (type) {
      case 'memory.usage': {
        const k = `${ns}/${pod}/${container}`;
        let u = usage.get(k) ?? rng.float(500, 800);
        u = rng.chance(0.01) ? rng.float(500, 700) : Math.min(1000, u + rng.float(-4, 12));
        usage.set(k, u);
        if (!rng.chance(0.03)) attributes['usage_bytes'] = Math.round(u * 1e6);
        if (!rng.chance(0.03)) attributes['limit_bytes'] = 1e9;
        break;
      }
      case 'cpu.throttle':
        if (!rng.chance(0.05)) attributes['throttle_ratio'] = rng.chance(0.2) ? 0.1 : rng.float(0, 1);
        break;
      case 'cpu.usage':
        if (!rng.chance(0.05)) attributes['usage_ratio'] = rng.chance(0.1) ? 0.9 : rng.float(0.7, 1);
        break;
      case 'disk.usage':
        attributes['usage_ratio'] = rng.float(0.7, 1);
        if (rng.chance(0.5)) attributes['inode_ratio'] = rng.float(0.7, 1);
        break;
      case 'network.connection_failure':
        labels['destination'] = rng.chance(0.05) ? 'malformed' : `${rng.pick(NAMESPACES)}/${rng.pick(SERVICES)}`;
        break;
      case 'network.dns_failure':
        labels['query'] = 'x.svc';
        break;
      default:
        break;
    }
    // Ids in no particular relation to time, so evidence order (timestamp, then id) is exercised.
    const event: Event = {
      id: `${rng.chars('abcdef', 3)}-${i}`,
      timestamp: t,
      source: 'fuzz',
      type,
      severity: 'info',
      entity,
      attributes,
      labels,
      message: null,
    };
    const late = o.lateShare > 0 && rng.chance(o.lateShare);
    const delay = late ? 60_001 + rng.int(0, 120_000) : rng.int(0, o.outOfOrderMs);
    entries.push({ event, deliverAt: t + delay, seq: i });
  }
  entries.sort((a, b) => a.deliverAt - b.deliverAt || a.seq - b.seq);
  return entries.map((e) => e.event);
}
