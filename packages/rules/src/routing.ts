import type { Event } from '@tapio/events';
import { RULES } from './catalogue';
import { scopeKeyOf } from './scope';
import type { RuleDefinition } from './types';

export interface Route {
  scopeKey: string;
  /** Rules that consume the event under this key, in catalogue order. */
  ruleIds: string[];
}

/**
 * One route per distinct scope key of the event, keys in order of first appearance while walking the
 * catalogue, rule ids in catalogue order. The router emits one record per route; `process` in the
 * engines walks the same list, so both see the same order.
 */
export function routesFor(event: Event, rules: readonly RuleDefinition[] = RULES): Route[] {
  const routes: Route[] = [];
  for (const rule of rules) {
    const key = scopeKeyOf(rule, event);
    if (key === null) continue;
    const route = routes.find((r) => r.scopeKey === key);
    if (route === undefined) routes.push({ scopeKey: key, ruleIds: [rule.id] });
    else route.ruleIds.push(rule.id);
  }
  return routes;
}

/** The distinct scope keys of the event over the catalogue, in route order. */
export function scopeKeysFor(event: Event, rules: readonly RuleDefinition[] = RULES): string[] {
  return routesFor(event, rules).map((r) => r.scopeKey);
}

/** The event types that some rule consumes (the router may skip every other type). */
export function consumedTypes(rules: readonly RuleDefinition[] = RULES): ReadonlySet<string> {
  return new Set(rules.flatMap((r) => r.inputs.map((i) => i.type)));
}
