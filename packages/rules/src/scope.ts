import type { Event } from '@tapio/events';
import type { RuleDefinition, RuleInput, Scope, ServiceKeySource } from './types';

/** A key piece is missing when null or empty: an empty name cannot identify anything. */
function present(value: string | null | undefined): value is string {
  return value !== null && value !== undefined && value !== '';
}

/**
 * The scope key of an event for one scope (RULES.md, "Scope keys"); null when a piece is missing,
 * and then the rule does not see the event.
 */
export function scopeKey(scope: Scope, event: Event, serviceKey: ServiceKeySource | null = 'entity'): string | null {
  const e = event.entity;
  switch (scope) {
    case 'container': {
      if (!present(e.namespace)) return null;
      const pod = e.pod;
      const container = e.kind === 'container' ? e.name : e.container;
      return present(pod) && present(container) ? `container/${e.namespace}/${pod}/${container}` : null;
    }
    case 'pod': {
      if (!present(e.namespace)) return null;
      const pod = e.kind === 'pod' ? e.name : e.kind === 'container' ? e.pod : null;
      return present(pod) ? `pod/${e.namespace}/${pod}` : null;
    }
    case 'node': {
      const node = e.kind === 'node' ? e.name : e.node;
      return present(node) ? `node/${node}` : null;
    }
    case 'namespace':
      return present(e.namespace) ? `namespace/${e.namespace}` : null;
    case 'service': {
      if (serviceKey === 'destination-label') {
        const destination = event.labels['destination'];
        if (destination === undefined) return null;
        const parts = destination.split('/');
        if (parts.length !== 2 || !present(parts[0]) || !present(parts[1])) return null;
        return `service/${parts[0]}/${parts[1]}`;
      }
      return present(e.namespace) && present(e.service) ? `service/${e.namespace}/${e.service}` : null;
    }
  }
}

/** The input declaration of `rule` that accepts this event (type and kind filter), or null. */
export function inputOf(rule: RuleDefinition, event: Event): RuleInput | null {
  for (const input of rule.inputs) {
    if (input.type !== event.type) continue;
    if (input.kinds !== null && !input.kinds.includes(event.entity.kind)) return null;
    return input;
  }
  return null;
}

/** The scope key under which `rule` sees this event, or null when the rule does not see it. */
export function scopeKeyOf(rule: RuleDefinition, event: Event): string | null {
  const input = inputOf(rule, event);
  return input === null ? null : scopeKey(rule.scope, event, input.serviceKey);
}

/**
 * Identity of the pod an event comes from, for "distinct pods" counts: `<namespace>/<pod>` (pod names
 * are unique only within a namespace; R9's source pods may sit in other namespaces). Kind pod: the
 * entity name; any other kind: `entity.pod`. Null when unknown.
 */
export function podIdentity(event: Event): string | null {
  const e = event.entity;
  const pod = e.kind === 'pod' ? e.name : e.pod;
  return present(pod) ? `${e.namespace ?? ''}/${pod}` : null;
}
