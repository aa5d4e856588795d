// V2's batch path (RuleEventDecoder.decodeRows + V2Engine.processRows / processRoutedRowInto: reused
// rows, scope keys found through the key cache) against V1 over the same events, field for field.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TapioError } from '@tapio/errors';
import { EVENT_SCHEMA, encodeWire, eventAvroType } from '@tapio/events';
import type { AvroSchema, Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import type { V1EngineOptions } from '@tapio/engine-v1';
import { RowBatch, RuleEventDecoder, V2Engine } from '@tapio/engine-v2';
import { routesFor } from '@tapio/rules';
import { generateStream } from '@tapio/scenarios';
import { EventsBuilder } from '../../helpers/events-builder';
import { fuzzStream } from './fuzz';

const SCHEMA_ID = 5;
const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
const NO_TIMEOUT = { ruleTimeoutMs: 60_000 };
const noRegistry = {
  fetchSchema: (id: number) =>
    Promise.reject(new TapioError('UNKNOWN_SCHEMA_ID', `no schema ${id}`, { context: { schemaId: id } })),
};

function decoder(): RuleEventDecoder {
  const d = new RuleEventDecoder(noRegistry);
  d.addWriterSchema(SCHEMA_ID, EVENT_SCHEMA as unknown as AvroSchema);
  return d;
}

function asV1(results: readonly Result[]): Result[] {
  return results.map((r) => ({ ...r, engine: 'v1' }));
}

/**
 * V1 over the events, V2 over their wire form in batches of `batch` rows; the same results and stats.
 * Returns how many rows were partial in the partial-rows pass.
 */
function checkRows(events: readonly Event[], what: string, options: V1EngineOptions = {}, batch = 500): number {
  const v1 = new V1Engine({ ...NO_TIMEOUT, ...options });
  const r1: Result[] = [];
  for (const e of events) r1.push(...v1.process(e));

  const buffers = events.map((e) => encodeWire(SCHEMA_ID, eventAvroType, e));
  // In full, with partial rows for the types no rule reads (fullTypesOnly), and with only the
  // fields each type's rules read (projectTypes), as bench/engine.ts and the service run.
  let partials = 0;
  for (const mode of ['full', 'partial rows', 'projected fields'] as const) {
    const partial = mode !== 'full';
    const d = decoder();
    const v2 = new V2Engine({ ...NO_TIMEOUT, ...options });
    if (mode === 'partial rows') d.fullTypesOnly(v2.inputTypes());
    if (mode === 'projected fields') d.projectTypes(v2.fieldNeeds());
    const rows = new RowBatch();
    const r2: Result[] = [];
    let partialRows = 0;
    for (let i = 0; i < buffers.length; i += batch) {
      assert.equal(d.decodeRows(buffers.slice(i, i + batch), rows), 0);
      for (let j = 0; j < rows.length; j++) if (rows.rows[j]?.partial === true) partialRows += 1;
      v2.processRows(rows, r2);
    }
    const w = `${what}${partial ? ` (${mode})` : ''}`;
    if (!partial) assert.equal(partialRows, 0, w);
    assert.equal(r2.length, r1.length, `${w}: result count`);
    assert.deepEqual(asV1(r2), r1, w);
    assert.equal(v2.stats.events, v1.stats.events, w);
    assert.equal(v2.stats.lateEvents, v1.stats.lateEvents, w);
    assert.equal(v2.stats.storedEvents, v1.stats.storedEvents, w);
    assert.equal(v2.stats.keys, v1.stats.keys, w);
    assert.equal(v2.stats.keysFreed, v1.stats.keysFreed, w);
    partials = partialRows;
  }
  return partials;
}

describe('decodeRows + processRows equal V1', () => {
  test('generated stream, out of order and late', () => {
    const stream = generateStream({
      seed: 31,
      startMs: START_MS,
      scenarios: 'all',
      incidentsPerScenario: 2,
      noiseEvents: 20_000,
      outOfOrderMs: 30_000,
      lateShare: 0.02,
    });
    // The noise has types that no rule reads: those rows are partial.
    assert.ok(checkRows(stream.events, 'generated') > 1000);
  });

  test('dense fuzz stream (every rule fires), odd batch size', () => {
    checkRows(fuzzStream({ seed: 32, events: 40_000, outOfOrderMs: 20_000, lateShare: 0.01 }), 'fuzz', {}, 333);
  });

  test('idle keys freed often: a freed key is found afresh, not through the key cache', () => {
    const events = fuzzStream({ seed: 33, events: 40_000, outOfOrderMs: 40_000, lateShare: 0.02 });
    checkRows(events, 'fuzz, keyIdleMs 240000', { keyIdleMs: 240_000 });
  });

  test("ids kept as spans of each batch's id text: ASCII, non-ASCII and long ids mixed in one batch", () => {
    // Lanes keep a decoded row's id as a span of one string per batch (RuleEventDecoder.copyId); an id
    // with a non-ASCII byte keeps its own string. Evidence and result ids must be V1's either way.
    const events = fuzzStream({ seed: 34, events: 20_000, outOfOrderMs: 20_000, lateShare: 0.01 }).map((e, i) => ({
      ...e,
      id: i % 7 === 0 ? `é-${e.id}-ü` : i % 11 === 0 ? `${e.id}-${'x'.repeat(300)}` : e.id,
    }));
    checkRows(events, 'mixed ids', {}, 250);
  });

  test('entity fields that build the same key string share its state (names with "/")', () => {
    const b = new EventsBuilder();
    const events: Event[] = [];
    for (let i = 0; i < 6; i++) {
      // pod/a/b/c both ways; container/a/b/c/d three ways.
      events.push(
        b.pod('pod.restart', i * 10, i % 2 === 0 ? { namespace: 'a/b', name: 'c' } : { namespace: 'a', name: 'b/c' }),
      );
      const container = [
        { namespace: 'a', pod: 'b/c', name: 'd' },
        { namespace: 'a/b', pod: 'c', name: 'd' },
        { namespace: 'a', pod: 'b', name: 'c/d' },
      ][i % 3]!;
      for (let s = 0; s < 4; s++) {
        events.push(
          b.container('memory.usage', i * 10 + s, {
            ...container,
            attributes: { usage_bytes: 5e8 + (i * 4 + s) * 2e7, limit_bytes: 1e9 },
          }),
        );
      }
    }
    checkRows(events, 'colliding key strings', {}, 7);
    const v2 = new V2Engine();
    const out: Result[] = [];
    for (const e of events) v2.processInto(e, out);
    assert.ok(
      out.some((r) => r.entityKey === 'pod/a/b/c'),
      'crash-loop fired on the shared pod key',
    );
  });
});

test('decodeRows + processRoutedRowInto equal V1 processRouted', () => {
  const stream = generateStream({
    seed: 34,
    startMs: START_MS,
    scenarios: 'all',
    incidentsPerScenario: 2,
    noiseEvents: 10_000,
    outOfOrderMs: 20_000,
    lateShare: 0.01,
  });
  const v1 = new V1Engine(NO_TIMEOUT);
  const v2 = new V2Engine(NO_TIMEOUT);
  const d = decoder();
  const rows = new RowBatch();
  const r1: Result[] = [];
  const r2: Result[] = [];
  let routed = 0;
  for (const e of stream.events) {
    assert.equal(d.decodeRows([encodeWire(SCHEMA_ID, eventAvroType, e)], rows), 0);
    const row = rows.rows[0]!;
    for (const r of routesFor(e)) {
      routed += 1;
      r1.push(...v1.processRouted(e, r.scopeKey, r.ruleIds));
      v2.processRoutedRowInto(row, r.scopeKey, r.ruleIds, r2);
    }
  }
  assert.ok(routed > stream.events.length / 2);
  assert.deepEqual(asV1(r2), r1);
  assert.equal(r1.length, stream.expected.length);
  assert.equal(v2.stats.skippedRules, v1.stats.skippedRules);
});

test('a row made into an event is the decoded event', () => {
  const b = new EventsBuilder();
  const e = b.container('memory.usage', 3, {
    service: 'cart',
    attributes: { usage_bytes: 5, limit_bytes: 10 },
    labels: { destination: 'shop/cart' },
  });
  const d = decoder();
  const wire = encodeWire(SCHEMA_ID, eventAvroType, e);
  const rows = new RowBatch();
  assert.equal(d.decodeRows([wire, Buffer.from([1, 2])], rows), 1);
  assert.deepEqual(rows.rows[0]!.toEvent(), d.decode(wire));
  assert.equal(rows.errors[1]!.code, 'BAD_MAGIC_BYTE');
  assert.equal(rows.length, 2);
  assert.equal(rows.rows[0]!.attr('usage_bytes'), 5);
  assert.ok(Number.isNaN(rows.rows[0]!.attr('throttle_ratio')));
  assert.equal(rows.rows[0]!.label('destination'), 'shop/cart');
});

test('id texts: each stored event holds its batch text; freeing the keys lets every text go', () => {
  const stream = generateStream({
    seed: 31,
    startMs: START_MS,
    scenarios: 'all',
    incidentsPerScenario: 2,
    noiseEvents: 6000,
    outOfOrderMs: 20_000,
    lateShare: 0.01,
  });
  // Ids of every kind: most ASCII (in the batch text), some non-ASCII (their own strings).
  const events = stream.events.map((e, i) => (i % 97 === 0 ? { ...e, id: `${e.id}-é` } : e));
  const keyIdleMs = 600_000;
  const v1 = new V1Engine({ ...NO_TIMEOUT, keyIdleMs });
  const v2 = new V2Engine({ ...NO_TIMEOUT, keyIdleMs });
  const d = decoder();
  const buffers = events.map((e) => encodeWire(SCHEMA_ID, eventAvroType, e));
  const rows = new RowBatch();
  const r1: Result[] = [];
  const r2: Result[] = [];
  for (const e of events) r1.push(...v1.process(e));
  for (let i = 0; i < buffers.length; i += 200) {
    d.decodeRows(buffers.slice(i, i + 200), rows);
    v2.processRows(rows, r2);
  }
  assert.deepEqual(asV1(r2), r1, 'evidence ids read back through the texts');
  const batches = Math.ceil(buffers.length / 200);
  const inUse = v2.idTextsInUse;
  assert.ok(inUse > 10, `texts in use while events are stored (${inUse})`);
  assert.ok(
    inUse <= batches + events.filter((e) => e.id.endsWith('é')).length,
    `at most one per batch and own id (${inUse})`,
  );

  // An event far past every window: the next sweep frees every other key, and with it every text.
  const last = events[events.length - 1] as Event;
  const late = new EventsBuilder().pod('pod.restart', 0, { id: 'far-future' });
  const far = { ...late, timestamp: last.timestamp + 10 * keyIdleMs };
  d.decodeRows([encodeWire(SCHEMA_ID, eventAvroType, far)], rows);
  v2.processRows(rows, r2);
  v1.process(far);
  assert.equal(v2.stats.keys, v1.stats.keys);
  assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
  assert.ok(
    v2.stats.storedEvents > 0 && v2.stats.storedEvents <= 3,
    `only the new event's keys (${v2.stats.storedEvents})`,
  );
  assert.equal(v2.idTextsInUse, 1, "the far event's batch text only");
});
