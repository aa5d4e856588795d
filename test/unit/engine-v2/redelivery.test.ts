// RULES.md "Redelivery": an event whose id is already among a rule's stored events for the key is
// ignored by that rule. What an at-least-once stream does to V1 and V2, and small cases of the rule
// itself, each run through both engines (field for field equal).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TapioError } from '@tapio/errors';
import { EVENT_SCHEMA, encodeWire, eventAvroType } from '@tapio/events';
import type { AvroSchema, Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import { RowBatch, RuleEventDecoder, V2Engine } from '@tapio/engine-v2';
import {
  RULES,
  crashLoop,
  memoryLeak,
  memoryPressureCascade,
  nodePressureEviction,
  oomPrediction,
  routesFor,
} from '@tapio/rules';
import { generateStream } from '@tapio/scenarios';
import { EventsBuilder } from '../../helpers/events-builder';
import { withRedeliveries } from '../../helpers/redeliver';
import { fuzzStream } from './fuzz';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
/** Generous budget: a GC pause must not discard a result in one engine and not the other. */
const NO_TIMEOUT = { ruleTimeoutMs: 60_000 };

function asV1(results: readonly Result[]): Result[] {
  return results.map((r) => ({ ...r, engine: 'v1' }));
}

interface Run {
  /** V1's results; V2's equal them (checked). */
  results: Result[];
  v1: V1Engine;
  v2: V2Engine;
}

/** A record as the router sends it: one scope key and the rules listed for it. */
interface Routed {
  event: Event;
  scopeKey: string;
  ruleIds: readonly string[];
}

/** Both engines over the same records (an Event is processed, a Routed record processed as routed). */
function runBoth(records: ReadonlyArray<Event | Routed>): Run {
  const v1 = new V1Engine(NO_TIMEOUT);
  const v2 = new V2Engine(NO_TIMEOUT);
  const r1: Result[] = [];
  const r2: Result[] = [];
  for (const r of records) {
    if ('scopeKey' in r) {
      r1.push(...v1.processRouted(r.event, r.scopeKey, r.ruleIds));
      r2.push(...v2.processRouted(r.event, r.scopeKey, r.ruleIds));
    } else {
      r1.push(...v1.process(r));
      r2.push(...v2.process(r));
    }
  }
  assert.deepEqual(asV1(r2), r1, 'V2 = V1');
  assertSameStats(v1, v2);
  return { results: r1, v1, v2 };
}

function assertSameStats(v1: V1Engine, v2: V2Engine): void {
  assert.equal(v2.stats.duplicateEvents, v1.stats.duplicateEvents, 'duplicate events');
  assert.equal(v2.stats.lateEvents, v1.stats.lateEvents, 'late events');
  assert.equal(v2.stats.storedEvents, v1.stats.storedEvents, 'stored events');
  for (const [id, s] of Object.entries(v1.stats.rules)) {
    assert.equal(v2.stats.rules[id]!.duplicateEvents, s.duplicateEvents, `${id} duplicate events`);
    assert.equal(v2.stats.rules[id]!.evaluations, s.evaluations, `${id} evaluations`);
    assert.equal(v2.stats.rules[id]!.results, s.results, `${id} results`);
  }
}

/** The event as a second delivery brings it: equal, not the same object. */
function again(e: Event): Event {
  return structuredClone(e);
}

function routed(records: readonly Event[]): Routed[] {
  return records.flatMap((event) => routesFor(event).map((r) => ({ event, scopeKey: r.scopeKey, ruleIds: r.ruleIds })));
}

const noRegistry = {
  fetchSchema: (id: number) =>
    Promise.reject(new TapioError('UNKNOWN_SCHEMA_ID', `no schema ${id}`, { context: { schemaId: id } })),
};

/** V2's service path: the events' wire form decoded in batches into reused rows (shared id texts). */
function v2Rows(events: readonly Event[], batch: number): { results: Result[]; engine: V2Engine } {
  const decoder = new RuleEventDecoder(noRegistry);
  decoder.addWriterSchema(5, EVENT_SCHEMA as unknown as AvroSchema);
  const engine = new V2Engine(NO_TIMEOUT);
  decoder.projectTypes(engine.fieldNeeds());
  const buffers = events.map((e) => encodeWire(5, eventAvroType, e));
  const rows = new RowBatch();
  const results: Result[] = [];
  for (let i = 0; i < buffers.length; i += batch) {
    assert.equal(decoder.decodeRows(buffers.slice(i, i + batch), rows), 0);
    engine.processRows(rows, results);
  }
  return { results, engine };
}

describe('a stream with 3 % of its events delivered again 1-4 records later gives the results of the stream without them', () => {
  const stream = generateStream({
    seed: 41,
    startMs: START_MS,
    scenarios: 'all',
    incidentsPerScenario: 2,
    noiseEvents: 20_000,
    outOfOrderMs: 30_000,
    lateShare: 0.01,
  });
  const twice = withRedeliveries(stream.events, 41);

  test('process: V1 and V2 each return, field for field, the results of the stream without redeliveries', () => {
    assert.ok(twice.redelivered > 500, `${twice.redelivered} redelivered`);
    const once = runBoth(stream.events);
    assert.equal(once.results.length, stream.expected.length, 'every incident detected once');
    const run = runBoth(twice.events);
    assert.deepEqual(run.results, once.results);
    assert.ok(run.v1.stats.duplicateEvents > twice.redelivered, `${run.v1.stats.duplicateEvents} ignored`);
    // What the rules keep is what they kept without the redeliveries.
    assert.equal(run.v1.stats.storedEvents, once.v1.stats.storedEvents);
  });

  test("routed records (the router's, one per scope key) into V1 and V2", () => {
    const once = runBoth(routed(stream.events));
    const run = runBoth(routed(twice.events));
    assert.deepEqual(run.results, once.results);
    assert.ok(run.v1.stats.duplicateEvents > twice.redelivered);
  });

  test("V2's batches of decoded rows, redeliveries within one batch and across batches", () => {
    const once = runBoth(stream.events);
    const run = v2Rows(twice.events, 100);
    assert.deepEqual(asV1(run.results), once.results);
    assert.equal(run.engine.stats.storedEvents, once.v1.stats.storedEvents);
  });

  test('a dense fuzz stream (ties, out of order, late): the same results and stats in V1 and V2', () => {
    const events = fuzzStream({ seed: 43, events: 40_000, outOfOrderMs: 20_000, lateShare: 0.01 });
    const redelivered = withRedeliveries(events, 43, 0.05);
    const once = runBoth(events);
    const run = runBoth(redelivered.events);
    assert.deepEqual(run.results, once.results);
    assert.equal(new Set(run.results.map((r) => r.ruleId)).size, RULES.length, 'every rule fires');
    assert.equal(run.v1.stats.storedEvents, once.v1.stats.storedEvents);
    const rows = v2Rows(redelivered.events, 333);
    assert.deepEqual(asV1(rows.results), once.results, 'decoded rows');
    assert.equal(rows.engine.stats.duplicateEvents, run.v1.stats.duplicateEvents);
  });
});

describe('which events a rule ignores as redelivered', () => {
  test("a restart delivered again inside crash-loop's window is neither counted nor evaluated", () => {
    const b = new EventsBuilder();
    const r1 = b.pod('pod.restart', 0);
    const r2 = b.pod('pod.restart', 20);
    const r3 = b.pod('pod.restart', 40);
    const r4 = b.pod('pod.restart', 200);
    // r1 again after r4: older than the watermark minus the lateness, so late before it is a redelivery.
    const { results, v1 } = runBoth([r1, r2, again(r2), r3, r4, again(r1)]);
    // Counted, the redelivery would be a third restart and fire at r2 (and r3 would then be cooling down).
    assert.deepEqual(
      results.map((r) => [r.ruleId, r.triggerEventId, r.severity, r.confidence, r.evidence]),
      [
        [crashLoop.id, r3.id, 'critical', 0.7, [r1.id, r2.id, r3.id]],
        [crashLoop.id, r4.id, 'high', 0.75, [r1.id, r2.id, r3.id, r4.id]],
      ],
    );
    // Ignored by both rules that stored r2: R7 (pod key) and R1 (node key); R9 needs a service.
    assert.equal(v1.stats.duplicateEvents, 2);
    assert.equal(v1.stats.rules[crashLoop.id]!.duplicateEvents, 1);
    assert.equal(v1.stats.rules[crashLoop.id]!.evaluations, 4);
    assert.equal(v1.stats.rules[crashLoop.id]!.lateEvents, 1);
    assert.equal(v1.stats.rules[memoryPressureCascade.id]!.duplicateEvents, 1);
  });

  test('only the same id at the same timestamp is a redelivery; the same id at another time is counted', () => {
    // Our reading of RULES.md: "an event whose id is already among the rule's stored events", with
    // "Ids are unique per source". An id names one event of its source, and a redelivery is that same
    // event, so it carries its original's timestamp. The same id at another timestamp cannot be a
    // redelivery from a source with unique ids: it is another event (another source's, whose ids may
    // coincide with these), and counting it is what "must not count an event twice" allows.
    const b = new EventsBuilder();
    const a0 = b.pod('pod.restart', 0, { id: 'a' });
    const a10 = b.pod('pod.restart', 10, { id: 'a' });
    const b10 = b.pod('pod.restart', 10, { id: 'b' });
    const { results, v1 } = runBoth([a0, a10, again(a10), again(a0), b10]);
    assert.deepEqual(
      results.map((r) => [r.ruleId, r.triggerEventId, r.confidence, r.evidence]),
      [[crashLoop.id, 'b', 0.7, ['a', 'a', 'b']]],
    );
    // again(a0) arrives behind the rule's newest event: found by the search back, not at the tail.
    assert.equal(v1.stats.rules[crashLoop.id]!.duplicateEvents, 2);
  });

  test('a redelivery behind the newest event, among events of equal timestamps, into the second input of a rule', () => {
    const b = new EventsBuilder();
    const e1 = b.pod('pod.evicted', 10, { name: 'a' });
    const e2 = b.pod('pod.evicted', 10, { name: 'b' });
    const e3 = b.pod('pod.evicted', 12, { name: 'c' });
    const pressure = b.node('node.pressure', 8, { labels: { condition: 'DiskPressure' } });
    const e4 = b.pod('pod.evicted', 20, { name: 'd' });
    // e1 again: older than e3, and compared past e2 (the same timestamp, another id).
    const { results, v1 } = runBoth([e1, e2, e3, again(e1), pressure, e4]);
    // Four evictions after the pressure: high; counted twice, e1 would make five: critical.
    assert.deepEqual(
      results.map((r) => [r.ruleId, r.triggerEventId, r.severity, r.confidence, r.evidence]),
      [[nodePressureEviction.id, e4.id, 'high', 0.8, [pressure.id, e1.id, e2.id, e3.id, e4.id]]],
    );
    assert.equal(v1.stats.rules[nodePressureEviction.id]!.duplicateEvents, 1);
  });

  test("the check covers all of a rule's stored events, of each input type, and only that rule's", () => {
    // R1 stores the oom_kill 'x'; a restart with the same id and time is among R1's stored events,
    // not among R7's (which reads no oom_kill).
    const b = new EventsBuilder();
    const oom = b.pod('memory.oom_kill', 0, { id: 'x' });
    const restart = b.pod('pod.restart', 0, { id: 'x' });
    const next = b.pod('pod.restart', 10, { name: 'web-2' });
    const { results, v1 } = runBoth([oom, restart, next]);
    // Counted by R1, 'x' would be its second restart after the oom_kill: memory-pressure-cascade.
    assert.deepEqual(results, []);
    assert.equal(v1.stats.rules[memoryPressureCascade.id]!.duplicateEvents, 1);
    assert.equal(v1.stats.rules[crashLoop.id]!.duplicateEvents, 0);
  });

  test('per rule: an event is ignored by the rules that stored it and taken by the others (R2 and R3 on one key)', () => {
    // Samples of one container; m3's first delivery was routed to R3 alone, its redelivery to both.
    const b = new EventsBuilder();
    const m = [5e8, 5.5e8, 6e8, 6.5e8, 9e8].map((usage, i) =>
      b.container('memory.usage', i * 15, { attributes: { usage_bytes: usage, limit_bytes: 1e9 } }),
    );
    const key = 'container/shop/web-1/app';
    const both = [memoryLeak.id, oomPrediction.id];
    const [m1, m2, m3, m4, m5] = m as [Event, Event, Event, Event, Event];
    const { results, v1 } = runBoth([
      { event: m1, scopeKey: key, ruleIds: both },
      { event: m2, scopeKey: key, ruleIds: both },
      { event: m3, scopeKey: key, ruleIds: [oomPrediction.id] },
      { event: m4, scopeKey: key, ruleIds: both },
      { event: again(m3), scopeKey: key, ruleIds: both },
      { event: m5, scopeKey: key, ruleIds: both },
    ]);
    // R3 counts m3 once (five samples); counted twice, six: confidence 0.86 and m3 twice in evidence.
    assert.deepEqual(
      results.map((r) => [r.ruleId, r.triggerEventId, r.confidence, r.evidence]),
      [[oomPrediction.id, m5.id, 0.84, [m1.id, m2.id, m3.id, m4.id, m5.id]]],
    );
    assert.equal(v1.stats.rules[oomPrediction.id]!.duplicateEvents, 1);
    assert.equal(v1.stats.rules[memoryLeak.id]!.duplicateEvents, 0);
    assert.equal(v1.stats.storedEvents, 10, 'R2 stores m3 once (its redelivery), R3 once (its first delivery)');
  });
});
