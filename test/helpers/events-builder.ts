import type { Entity, Event } from '@tapio/events';

/** Base event time of the unit tests; offsets are given in seconds from it. */
export const T0 = 1_700_000_000_000;

/** Epoch ms of T0 + seconds. */
export function at(seconds: number): number {
  return T0 + Math.round(seconds * 1000);
}

export interface EventOptions {
  id?: string;
  namespace?: string | null;
  name?: string;
  node?: string | null;
  pod?: string | null;
  container?: string | null;
  service?: string | null;
  attributes?: Record<string, number>;
  labels?: Record<string, string>;
}

/**
 * Builds contract-shaped events by hand. Ids default to e0001, e0002, ... in creation order, so
 * creating events in time order makes id order match time order.
 * Defaults: namespace "shop", pod "web-1", container "app", node "node-1".
 */
export class EventsBuilder {
  private seq = 0;

  nextId(): string {
    this.seq += 1;
    return `e${String(this.seq).padStart(4, '0')}`;
  }

  event(type: string, seconds: number, kind: string, entity: Partial<Entity>, o: EventOptions): Event {
    return {
      id: o.id ?? this.nextId(),
      timestamp: at(seconds),
      source: 'test',
      type,
      severity: 'warning',
      entity: {
        cluster: null,
        namespace: 'namespace' in o ? (o.namespace ?? null) : 'shop',
        kind,
        name: entity.name ?? 'x',
        node: 'node' in o ? (o.node ?? null) : (entity.node ?? null),
        pod: entity.pod ?? null,
        container: entity.container ?? null,
        service: o.service ?? null,
      },
      attributes: o.attributes ?? {},
      labels: o.labels ?? {},
      message: null,
    };
  }

  pod(type: string, seconds: number, o: EventOptions = {}): Event {
    return this.event(type, seconds, 'pod', { name: o.name ?? 'web-1', node: 'node-1' }, o);
  }

  container(type: string, seconds: number, o: EventOptions = {}): Event {
    const pod = 'pod' in o ? (o.pod ?? null) : 'web-1';
    return this.event(type, seconds, 'container', { name: o.name ?? 'app', pod, node: 'node-1' }, o);
  }

  node(type: string, seconds: number, o: EventOptions = {}): Event {
    return this.event(type, seconds, 'node', { name: o.name ?? 'node-1', node: null }, o);
  }
}
