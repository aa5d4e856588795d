/**
 * `tapio route show|set` and `tapio migrate rules|analyze-rules`: read and write the routing
 * document on the control topic (routers apply a newer epoch within a second).
 */
import type { TapioConfig } from '@tapio/config';
import { createKafka } from '@tapio/kafka';
import {
  CATEGORIES,
  FEATURE_CATEGORIES,
  defaultRoutingConfig,
  patchRoutingConfig,
  readRoutingConfig,
  writeRoutingConfig,
} from '@tapio/routing';
import type { Engine, RoutingConfig } from '@tapio/routing';
import { RULES } from '@tapio/rules';

export interface LoadedRouting {
  doc: RoutingConfig;
  /** False when the topic holds no routing document yet (the defaults are in force). */
  stored: boolean;
}

export async function loadRouting(config: Readonly<TapioConfig>): Promise<LoadedRouting> {
  const doc = await readRoutingConfig(createKafka(config, undefined, '-route'), config.topics.control);
  return doc === null ? { doc: defaultRoutingConfig(config), stored: false } : { doc, stored: true };
}

export async function saveRouting(config: Readonly<TapioConfig>, doc: RoutingConfig): Promise<RoutingConfig> {
  const producer = createKafka(config, undefined, '-route').producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    return await writeRoutingConfig(producer, config.topics.control, doc);
  } finally {
    await producer.disconnect();
  }
}

/** Where a category's keys go under a document, as the router decides it (breaker aside). */
export function categoryPlacement(doc: RoutingConfig, category: string): string {
  const override = (doc.categoryOverrides as Record<string, Engine | undefined>)[category];
  if (override !== undefined) return `${override} (category override)`;
  for (const [flag, cat] of Object.entries(FEATURE_CATEGORIES)) {
    if (cat === category && (doc.features as Record<string, boolean | undefined>)[flag] === true) {
      return `v2 (feature ${flag})`;
    }
  }
  switch (doc.strategy) {
    case 'percentage':
    case 'progressive':
      return `${doc.v2Percentage} % of keys on v2 (${doc.strategy})`;
    case 'load':
      return `v2 while V1 lag > ${doc.load.v1LagThreshold} (load)`;
    case 'time':
      return `by time of day, ${doc.time.windows.length} window(s) (time)`;
  }
}

export function formatRouting(r: LoadedRouting): string {
  const d = r.doc;
  const lines = [
    `routing config epoch ${d.epoch}${r.stored ? '' : ' (nothing on the control topic yet: defaults in force)'}`,
    `strategy       ${d.strategy}, v2 ${d.v2Percentage} %, salt "${d.salt}"`,
    `breaker        ${d.breaker.mode} (failure rate > ${d.breaker.failureRateThreshold}, slow calls > ${d.breaker.slowCallRateThreshold})`,
    `shadow         ${d.shadow.enabled ? `on, ${d.shadow.percentage} % of V1 records` : 'off'}`,
    `handoff        warm-up ${Math.round(d.handoff.warmupMs / 1000)} s`,
    'categories',
    ...CATEGORIES.map((c) => `  ${c.padEnd(12)} ${categoryPlacement(d, c)}`),
  ];
  const entities = Object.entries(d.entityOverrides).flatMap(([kind, map]) =>
    Object.entries(map ?? {}).map(([name, engine]) => `  ${kind} ${name} -> ${engine}`),
  );
  lines.push(entities.length === 0 ? 'entity overrides: none' : 'entity overrides', ...entities);
  return lines.join('\n');
}

export function analyzeRules(doc: RoutingConfig): string {
  const header = `${'rule'.padEnd(28)} ${'category'.padEnd(12)} ${'scope'.padEnd(10)} ${'runs on'.padEnd(44)} v2 support`;
  const rows = RULES.map(
    (r) =>
      `${r.id.padEnd(28)} ${r.category.padEnd(12)} ${r.scope.padEnd(10)} ${categoryPlacement(doc, r.category).padEnd(44)} ` +
      // Both engines run the shared catalogue; V2 keeps an incremental plan for every catalogue rule.
      'yes (incremental)',
  );
  return [header, ...rows].join('\n');
}

/** `name=engine` pairs into an override map. */
export function parseAssignments(pairs: readonly string[], what: string): Record<string, Engine> {
  const out: Record<string, Engine> = {};
  for (const pair of pairs) {
    const m = /^(.+)=(v1|v2)$/.exec(pair);
    if (m === null) throw new Error(`${what} '${pair}': expected <name>=v1 or <name>=v2`);
    out[m[1] as string] = m[2] as Engine;
  }
  return out;
}

export { patchRoutingConfig };
