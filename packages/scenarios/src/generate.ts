import type { Event } from '@tapio/events';
import { ScenarioBuilder } from './builder';
import type { ScenarioDef } from './catalogue';
import { SCENARIOS } from './catalogue';
import type { FleetOptions } from './entities';
import { ScenarioWorld, clusterFor } from './entities';
import { generateNoise } from './noise';
import { Rng, deriveSeed } from './prng';
import type { ExpectedDetection, GeneratedScenario, ScenarioInfo } from './types';

/** RULES.md, Evaluation semantics: the default allowed lateness. */
export const ALLOWED_LATENESS_MS = 60_000;

const BY_NAME = new Map<string, ScenarioDef>(SCENARIOS.map((s) => [s.name, s]));

export function listScenarios(): ScenarioInfo[] {
  return SCENARIOS.map(({ name, ruleId, kind, description }) => ({ name, ruleId, kind, description }));
}

export interface ScenarioOptions {
  seed: number;
  /** Event time of the scenario's first event. */
  startMs: number;
  /**
   * Distinguishes instances in one stream: it names the namespace (`<team>-inc<instance>`), the
   * node (`node-<500 + instance>`) and the event ids (`<name>-<seed>-<instance>-<n>`). Default 0.
   */
  instance?: number;
}

function lookup(name: string): ScenarioDef {
  const def = BY_NAME.get(name);
  if (def === undefined) {
    throw new RangeError(`unknown scenario '${name}'; listScenarios() names ${SCENARIOS.length} of them`);
  }
  return def;
}

export function generateScenario(name: string, options: ScenarioOptions): GeneratedScenario {
  const def = lookup(name);
  const instance = options.instance ?? 0;
  if (!Number.isInteger(instance) || instance < 0) {
    throw new RangeError(`scenario instance must be a non-negative integer, got ${instance}`);
  }
  const rng = new Rng(deriveSeed(options.seed, name, instance));
  const world = new ScenarioWorld(rng, instance, clusterFor(options.seed));
  const b = new ScenarioBuilder(`${name}-${options.seed}-${instance}`, options.startMs);
  const expected = def.build({ rng, world, b });
  return {
    name,
    ruleId: def.ruleId,
    kind: def.kind,
    events: b.events,
    expected: expected === null ? [] : [expected],
  };
}

/** Resolves `'all'` and validates names; shared by the batch stream and the infinite source. */
export function resolveScenarioNames(scenarios: readonly string[] | 'all'): string[] {
  if (scenarios === 'all') return SCENARIOS.map((s) => s.name);
  for (const name of scenarios) lookup(name);
  return scenarios.slice();
}

export function scenarioSpanMs(scenario: GeneratedScenario): number {
  const first = scenario.events[0];
  const last = scenario.events[scenario.events.length - 1];
  return first === undefined || last === undefined ? 0 : last.timestamp - first.timestamp;
}

export interface StreamOptions {
  seed: number;
  startMs: number;
  scenarios: readonly string[] | 'all';
  /** Instances of each named scenario. Default 1. */
  incidentsPerScenario?: number;
  /** Number of noise events. */
  noiseEvents: number;
  /** Event-time span over which scenarios and noise are spread. Default: 1 h, or the longest scenario. */
  durationMs?: number;
  /**
   * Largest delivery delay of a noise event, so no event is delivered after one more than this much
   * newer (except late ones). At most ALLOWED_LATENESS_MS. Default 0.
   */
  outOfOrderMs?: number;
  /** Share of noise events delivered 60 s + 1 ms to 180 s after their timestamp. Default 0. */
  lateShare?: number;
  fleet?: FleetOptions;
}

export interface GeneratedStream {
  /** Delivery order. */
  events: Event[];
  /** Every instance's expected detection, in trigger timestamp order. */
  expected: ExpectedDetection[];
}

/**
 * Scenario instances and noise merged in delivery order.
 *
 * Each instance gets its own slot of durationMs / instances (instances longer than their slot
 * overlap in time, never in entities). Only noise events are delivered out of order or late: their
 * scope keys are disjoint from every scenario's and noise satisfies no condition under any subset or
 * order (see noise.ts), so displacement cannot change a detection. Scenario events are delivered in
 * timestamp order, and each one after every event with a smaller timestamp.
 */
export function generateStream(options: StreamOptions): GeneratedStream {
  const { seed, startMs, noiseEvents } = options;
  const perScenario = options.incidentsPerScenario ?? 1;
  const outOfOrderMs = options.outOfOrderMs ?? 0;
  const lateShare = options.lateShare ?? 0;
  if (!Number.isInteger(perScenario) || perScenario < 0) {
    throw new RangeError(`incidentsPerScenario must be a non-negative integer, got ${perScenario}`);
  }
  if (!(outOfOrderMs >= 0 && outOfOrderMs <= ALLOWED_LATENESS_MS)) {
    throw new RangeError(`outOfOrderMs must lie in [0, ${ALLOWED_LATENESS_MS}], got ${outOfOrderMs}`);
  }
  if (!(lateShare >= 0 && lateShare <= 1)) throw new RangeError(`lateShare must lie in [0, 1], got ${lateShare}`);

  const names = resolveScenarioNames(options.scenarios);
  const placement = new Rng(deriveSeed(seed, 'placement'));
  const slots: Array<{ name: string; instance: number }> = [];
  let instance = 0;
  for (const name of names) for (let k = 0; k < perScenario; k++) slots.push({ name, instance: instance++ });
  const order = placement.shuffled(slots);
  const spans = order.map((s) => scenarioSpanMs(generateScenario(s.name, { seed, startMs: 0, instance: s.instance })));
  const durationMs = options.durationMs ?? spans.reduce((m, s) => Math.max(m, s + 1), 3_600_000);
  if (!(durationMs > 0)) throw new RangeError(`durationMs must be positive, got ${durationMs}`);
  const slotMs = order.length === 0 ? durationMs : durationMs / order.length;

  const scenarioEvents: Event[] = [];
  const expected: Array<{ at: number; detection: ExpectedDetection }> = [];
  order.forEach((slot, i) => {
    const free = Math.max(0, slotMs - (spans[i] ?? 0));
    const at = startMs + Math.floor(i * slotMs + placement.next() * free);
    const scenario = generateScenario(slot.name, { seed, startMs: at, instance: slot.instance });
    scenarioEvents.push(...scenario.events);
    for (const d of scenario.expected) {
      const trigger = scenario.events.find((e) => e.id === d.triggerEventId);
      expected.push({ at: trigger?.timestamp ?? at, detection: d });
    }
  });

  const noise = generateNoise(
    options.fleet === undefined
      ? { seed, startMs, count: noiseEvents, durationMs }
      : { seed, startMs, count: noiseEvents, durationMs, fleet: options.fleet },
  );
  const delay = new Rng(deriveSeed(seed, 'delivery'));
  const entries: Array<{ event: Event; deliverAt: number; seq: number }> = [];
  for (const event of scenarioEvents) entries.push({ event, deliverAt: event.timestamp, seq: 0 });
  for (const event of noise) {
    const late = lateShare > 0 && delay.chance(lateShare);
    const d = late ? ALLOWED_LATENESS_MS + 1 + delay.int(0, 120_000) : delay.int(0, outOfOrderMs);
    entries.push({ event, deliverAt: event.timestamp + d, seq: 0 });
  }
  // seq = timestamp order, so among equal delivery times an older event goes first.
  entries.sort((a, b) => a.event.timestamp - b.event.timestamp || compareIds(a.event.id, b.event.id));
  entries.forEach((e, i) => (e.seq = i));
  entries.sort((a, b) => a.deliverAt - b.deliverAt || a.seq - b.seq);

  expected.sort((a, b) => a.at - b.at || compareIds(a.detection.triggerEventId, b.detection.triggerEventId));
  return { events: entries.map((e) => e.event), expected: expected.map((e) => e.detection) };
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
