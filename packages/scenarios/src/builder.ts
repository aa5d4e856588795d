import type { Entity, Event } from '@tapio/events';
import type { Pod } from './entities';
import { containerEntity, nodeEntity, podEntity } from './entities';

export const MIB = 1024 * 1024;

/** Builds one event with every field set (nullable fields null, maps objects). */
export function makeEvent(
  id: string,
  timestamp: number,
  source: string,
  type: string,
  severity: string,
  entity: Entity,
  attributes: Record<string, number>,
  labels: Record<string, string>,
  message: string | null,
): Event {
  return { id, timestamp, source, type, severity, entity, attributes, labels, message };
}

/**
 * Appends the events of one scenario instance with ids `<prefix>-<n>`, at `t0 + offset`. Offsets
 * must strictly increase, so the events' order is both timestamp and delivery order and no two
 * events of a scenario tie.
 */
export class ScenarioBuilder {
  readonly events: Event[] = [];
  private lastTimestamp = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly idPrefix: string,
    private readonly t0: number,
  ) {}

  private add(
    offsetMs: number,
    source: string,
    type: string,
    severity: string,
    entity: Entity,
    attributes: Record<string, number>,
    labels: Record<string, string>,
    message: string | null,
  ): Event {
    const timestamp = this.t0 + Math.round(offsetMs);
    if (timestamp <= this.lastTimestamp) {
      throw new RangeError(`scenario ${this.idPrefix}: offsets must strictly increase (${offsetMs} ms)`);
    }
    this.lastTimestamp = timestamp;
    const event = makeEvent(
      `${this.idPrefix}-${this.events.length}`,
      timestamp,
      source,
      type,
      severity,
      entity,
      attributes,
      labels,
      message,
    );
    this.events.push(event);
    return event;
  }

  memoryUsage(offsetMs: number, pod: Pod, container: string, ratio: number, limitBytes: number): Event {
    const usage = Math.round(ratio * limitBytes);
    return this.add(
      offsetMs,
      'metrics',
      'memory.usage',
      'info',
      containerEntity(pod, container),
      { usage_bytes: usage, limit_bytes: limitBytes },
      {},
      null,
    );
  }

  oomKill(offsetMs: number, pod: Pod, container: string, source: string): Event {
    return this.add(
      offsetMs,
      source,
      'memory.oom_kill',
      'error',
      containerEntity(pod, container),
      {},
      {},
      `Memory cgroup out of memory: killed process in container ${container}`,
    );
  }

  podRestart(offsetMs: number, pod: Pod, restartCount: number, exitCode: number): Event {
    return this.add(
      offsetMs,
      'kubernetes',
      'pod.restart',
      'warning',
      podEntity(pod),
      { restart_count: restartCount, exit_code: exitCode },
      { reason: exitCode === 137 ? 'OOMKilled' : 'Error' },
      `Back-off restarting failed container (exit code ${exitCode})`,
    );
  }

  podEvicted(offsetMs: number, pod: Pod, reason: string): Event {
    return this.add(
      offsetMs,
      'kubernetes',
      'pod.evicted',
      'warning',
      podEntity(pod),
      {},
      { reason },
      `The node was low on resource: ${reason}`,
    );
  }

  podNotReady(offsetMs: number, pod: Pod): Event {
    return this.add(
      offsetMs,
      'kubernetes',
      'pod.not_ready',
      'warning',
      podEntity(pod),
      {},
      {},
      'Readiness probe failed',
    );
  }

  cpuThrottle(offsetMs: number, pod: Pod, ratio: number): Event {
    return this.add(offsetMs, 'ebpf', 'cpu.throttle', 'warning', podEntity(pod), { throttle_ratio: ratio }, {}, null);
  }

  podCpuUsage(offsetMs: number, pod: Pod, ratio: number): Event {
    return this.add(offsetMs, 'metrics', 'cpu.usage', 'info', podEntity(pod), { usage_ratio: ratio }, {}, null);
  }

  nodeCpuUsage(offsetMs: number, cluster: string, node: string, ratio: number): Event {
    return this.add(
      offsetMs,
      'metrics',
      'cpu.usage',
      'info',
      nodeEntity(cluster, node),
      { usage_ratio: ratio },
      {},
      null,
    );
  }

  syscallTimeout(offsetMs: number, pod: Pod, durationMs: number, syscall: string): Event {
    return this.add(
      offsetMs,
      'ebpf',
      'syscall.timeout',
      'warning',
      podEntity(pod),
      { duration_ms: durationMs },
      { syscall },
      null,
    );
  }

  dnsFailure(offsetMs: number, pod: Pod, query: string, rcode: string): Event {
    return this.add(offsetMs, 'ebpf', 'network.dns_failure', 'warning', podEntity(pod), {}, { query, rcode }, null);
  }

  connectionFailure(offsetMs: number, pod: Pod, destination: string, error: string): Event {
    return this.add(
      offsetMs,
      'ebpf',
      'network.connection_failure',
      'warning',
      podEntity(pod),
      {},
      { destination, error },
      null,
    );
  }

  diskUsage(offsetMs: number, cluster: string, node: string, usageRatio: number, inodeRatio: number): Event {
    return this.add(
      offsetMs,
      'metrics',
      'disk.usage',
      'info',
      nodeEntity(cluster, node),
      { usage_ratio: usageRatio, inode_ratio: inodeRatio },
      { mount: '/var/lib/kubelet' },
      null,
    );
  }

  volumeMountFailed(offsetMs: number, pod: Pod, volume: string): Event {
    return this.add(
      offsetMs,
      'kubernetes',
      'volume.mount_failed',
      'warning',
      podEntity(pod),
      {},
      { volume },
      `MountVolume.SetUp failed for volume "${volume}"`,
    );
  }

  nodePressure(offsetMs: number, cluster: string, node: string, condition: string): Event {
    return this.add(
      offsetMs,
      'kubernetes',
      'node.pressure',
      'warning',
      nodeEntity(cluster, node),
      {},
      { condition },
      `Node condition ${condition} is now True`,
    );
  }
}
