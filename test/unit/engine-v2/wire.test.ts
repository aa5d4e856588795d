// The hand-written tapio.Event reader (engine-v2 wire.ts) against avsc's projected decode
// (WireDecoder): the same events, and for bad bytes the same error codes and context.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TapioError } from '@tapio/errors';
import { EVENT_SCHEMA, WireDecoder, encodeWire, eventAvroType } from '@tapio/events';
import type { AvroSchema, Event, RecordSchemaJson } from '@tapio/events';
import { RULE_EVENT_FIELDS, RowBatch, RuleEventDecoder } from '@tapio/engine-v2';
import { generateStream } from '@tapio/scenarios';
import { EventsBuilder } from '../../helpers/events-builder';

const SCHEMA_ID = 3;
const CONTEXT = { topic: 'events', partition: 4, offset: '99' };
const noRegistry = {
  fetchSchema: (id: number) =>
    Promise.reject(new TapioError('UNKNOWN_SCHEMA_ID', `no schema ${id}`, { context: { schemaId: id } })),
};

function direct(): RuleEventDecoder {
  const d = new RuleEventDecoder(noRegistry);
  d.addWriterSchema(SCHEMA_ID, EVENT_SCHEMA as unknown as AvroSchema);
  assert.equal(d.readsDirectly(SCHEMA_ID), true);
  return d;
}

function reference(): WireDecoder {
  const w = new WireDecoder(noRegistry, EVENT_SCHEMA, { projection: RULE_EVENT_FIELDS });
  w.addWriterSchema(SCHEMA_ID, EVENT_SCHEMA as unknown as AvroSchema);
  return w;
}

/** Plain objects with the same key order, so deepStrictEqual ignores only the classes (NaN and -0 kept). */
function plain(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = plain(v);
  return { keys: Object.keys(value), out };
}

type Outcome = { value: unknown } | { code: string; context: unknown };

function outcome(decode: () => unknown): Outcome {
  try {
    return { value: plain(decode()) };
  } catch (err) {
    assert.ok(err instanceof TapioError, `a TapioError, not ${String(err)}`);
    return { code: err.code, context: err.context };
  }
}

/** Rows that keep only id, timestamp, type, kind and name (fullTypesOnly with no type read in full). */
const partial = direct();
partial.fullTypesOnly([]);
const partialRows = new RowBatch();

/**
 * The partial row path gives avsc's outcome too: the same error (code and context) for a bad record,
 * the same id, timestamp, type, kind and name for a good one.
 */
function assertSamePartial(w: WireDecoder, buf: Buffer | null, avsc: Outcome, what: string): void {
  const bad = partial.decodeRows([buf], partialRows, { topic: 'events', partition: 4, offsets: ['99'] });
  const err = partialRows.errors[0] ?? null;
  if ('code' in avsc) {
    assert.equal(bad, 1, `${what}: partial row is bad`);
    assert.deepStrictEqual({ code: err?.code, context: err?.context }, avsc, `${what}: partial row error`);
    return;
  }
  assert.equal(bad, 0, `${what}: partial row decodes`);
  const row = partialRows.rows[0];
  const e = w.decode(buf, CONTEXT) as Event;
  assert.equal(row?.partial, true);
  assert.deepStrictEqual(
    { id: row.id, timestamp: row.timestamp, type: row.type, kind: row.kind, name: row.name },
    { id: e.id, timestamp: e.timestamp, type: e.type, kind: e.entity.kind, name: e.entity.name },
    `${what}: partial row`,
  );
}

function assertSame(d: RuleEventDecoder, w: WireDecoder, buf: Buffer | null, what: string): Outcome {
  const mine = outcome(() => d.decode(buf, CONTEXT));
  const avsc = outcome(() => w.decode(buf, CONTEXT));
  assert.deepStrictEqual(mine, avsc, what);
  assertSamePartial(w, buf, avsc, what);
  return mine;
}

/** mulberry32: a small seeded generator for the fuzz cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function odd(): Event[] {
  const b = new EventsBuilder();
  return [
    b.container('memory.usage', 1, {
      namespace: 'näme-spåce',
      name: '容器',
      pod: 'pod-🙂',
      attributes: { usage_bytes: -0, limit_bytes: Number.NaN, inf: Infinity, ninf: -Infinity, tiny: 5e-324 },
      labels: { '': '', destination: 'shop/cart', long: 'x'.repeat(200) },
    }),
    { ...b.node('disk.usage', 2), timestamp: 9007199254740990, message: 'm'.repeat(300), source: '', severity: '' },
    { ...b.pod('pod.restart', 3), timestamp: -9007199254740990, id: '' },
    b.pod('x'.repeat(49), 4, { namespace: '', service: '', node: null, labels: { a: '1', b: '2', c: '3' } }),
    {
      ...b.container('cpu.throttle', 5, { namespace: null, pod: null, container: null, service: 'svc' }),
      entity: {
        cluster: null,
        namespace: null,
        kind: '',
        name: '',
        node: null,
        pod: null,
        container: null,
        service: null,
      },
      attributes: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`a${i}`, i / 7])),
    },
  ];
}

describe('EventWireReader equals avsc', () => {
  test('on a generated stream (scenarios and noise) and on odd values', () => {
    const d = direct();
    const w = reference();
    const stream = generateStream({
      seed: 5,
      startMs: Date.UTC(2025, 0, 15, 9),
      scenarios: 'all',
      noiseEvents: 3000,
      outOfOrderMs: 5000,
      lateShare: 0.01,
    });
    const events = [...stream.events, ...odd()];
    for (const [i, e] of events.entries()) {
      const out = assertSame(d, w, encodeWire(SCHEMA_ID, eventAvroType, e), `event #${i}`);
      assert.ok('value' in out, `event #${i} decodes`);
    }
  });

  test('every prefix, trailing bytes, and random byte flips, insertions and deletions give the same outcome', () => {
    const d = direct();
    const w = reference();
    const next = prng(20250115);
    const codes = new Map<string, number>();
    const seen = (o: Outcome) => {
      const k = 'code' in o ? o.code : 'ok';
      codes.set(k, (codes.get(k) ?? 0) + 1);
    };
    const b = new EventsBuilder();
    const seeds = [
      ...odd(),
      b.container('memory.usage', 9, { attributes: { usage_bytes: 1, limit_bytes: 2 }, labels: { k: 'v' } }),
    ];
    for (const [si, e] of seeds.entries()) {
      const good = encodeWire(SCHEMA_ID, eventAvroType, e);
      for (let n = 0; n < good.length; n++) seen(assertSame(d, w, good.subarray(0, n), `seed ${si} prefix ${n}`));
      for (const extra of [[0], [1, 2, 3], [0x80]]) {
        seen(assertSame(d, w, Buffer.concat([good, Buffer.from(extra)]), `seed ${si} + ${extra.join(',')}`));
      }
      for (let k = 0; k < 600; k++) {
        const buf = Buffer.from(good);
        let mutated: Buffer = buf;
        const at = 5 + Math.floor(next() * (good.length - 5));
        const r = next();
        if (r < 0.5) buf[at] = Math.floor(next() * 256);
        else if (r < 0.7) buf[at] = (buf[at] as number) ^ (1 << Math.floor(next() * 8));
        else if (r < 0.85) mutated = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1)]);
        else mutated = Buffer.concat([buf.subarray(0, at), Buffer.from([Math.floor(next() * 256)]), buf.subarray(at)]);
        seen(assertSame(d, w, mutated, `seed ${si} mutation ${k} at ${at}`));
      }
    }
    // The fuzz reaches every outcome, so each is compared.
    for (const code of ['ok', 'TRUNCATED_RECORD', 'TRAILING_BYTES', 'MALFORMED_RECORD']) {
      assert.ok((codes.get(code) ?? 0) > 0, `fuzz produced ${code}: ${JSON.stringify([...codes])}`);
    }
  });

  test('hand-made bad datums: union branches, unsafe timestamps, negative and endless lengths, block counts', () => {
    const d = direct();
    const w = reference();
    const zigzag = (n: number): number[] => {
      const out: number[] = [];
      let z = n >= 0 ? n * 2 : -n * 2 - 1;
      do {
        let byte = z % 128;
        z = Math.floor(z / 128);
        if (z > 0) byte |= 0x80;
        out.push(byte);
      } while (z > 0);
      return out;
    };
    const str = (s: string): number[] => [...zigzag(Buffer.byteLength(s)), ...Buffer.from(s)];
    /** id, timestamp, source, type, severity, then the entity onwards. */
    const datum = (parts: { ts?: number[]; cluster?: number[]; ns?: number[]; rest?: number[] }): Buffer =>
      Buffer.from([
        0,
        0,
        0,
        0,
        SCHEMA_ID,
        ...str('id'),
        ...(parts.ts ?? zigzag(1000)),
        ...str('src'),
        ...str('pod.restart'),
        ...str('info'),
        ...(parts.cluster ?? [0]),
        ...(parts.ns ?? [2, ...str('shop')]),
        ...str('pod'),
        ...str('web'),
        ...(parts.rest ?? [0, 0, 0, 0, 0, 0, 0]),
      ]);
    const cases: Array<[string, Buffer, string]> = [
      ['well formed', datum({}), 'ok'],
      ['cluster branch 2 (skipped field)', datum({ cluster: [4] }), 'MALFORMED_RECORD'],
      ['cluster branch -1', datum({ cluster: [1] }), 'MALFORMED_RECORD'],
      ['namespace branch 2 (read field)', datum({ ns: [4] }), 'MALFORMED_RECORD'],
      ['timestamp above 2^53 - 2', datum({ ts: zigzag(2 ** 53) }), 'MALFORMED_RECORD'],
      ['timestamp at the safe bound', datum({ ts: zigzag(9007199254740990) }), 'ok'],
      ['negative string length', datum({ ns: [2, ...zigzag(-3)] }), 'TRUNCATED_RECORD'],
      [
        'endless length varint (Infinity)',
        datum({ ns: [2, ...new Array<number>(200).fill(0xff), 1] }),
        'TRUNCATED_RECORD',
      ],
      ['endless length varint (NaN)', datum({ ns: [2, ...new Array<number>(200).fill(0x80), 1] }), 'TRUNCATED_RECORD'],
      [
        'endless skipped length (NaN)',
        datum({ cluster: [2, ...new Array<number>(200).fill(0x80), 1] }),
        'TRUNCATED_RECORD',
      ],
      ['huge map count', datum({ rest: [0, 0, 0, 0, ...zigzag(2 ** 40)] }), 'TRUNCATED_RECORD'],
      [
        'negative block count with a byte size',
        datum({ rest: [0, 0, 0, 0, ...zigzag(-1), ...zigzag(13), ...str('a'), 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0] }),
        'ok',
      ],
      [
        'duplicate map keys',
        datum({ rest: [0, 0, 0, 0, 0, 4, ...str('k'), ...str('1'), ...str('k'), ...str('2'), 0, 0] }),
        'ok',
      ],
      ['message branch 3', datum({ rest: [0, 0, 0, 0, 0, 0, 6] }), 'MALFORMED_RECORD'],
    ];
    for (const [what, buf, code] of cases) {
      if (what === 'huge map count') {
        // avsc would loop 2^40 times reading zeros past the end; its result there is TRUNCATED_RECORD.
        const mine = outcome(() => d.decode(buf, CONTEXT));
        assert.equal('code' in mine ? mine.code : 'ok', code, what);
        continue;
      }
      const out = assertSame(d, w, buf, what);
      assert.equal('code' in out ? out.code : 'ok', code, what);
    }
  });

  test('header errors and unknown ids, as WireDecoder', async () => {
    const d = direct();
    const w = reference();
    const good = encodeWire(SCHEMA_ID, eventAvroType, new EventsBuilder().pod('pod.restart', 1));
    const badMagic = Buffer.from(good);
    badMagic[0] = 1;
    const unknownId = Buffer.from(good);
    unknownId.writeInt32BE(77, 1);
    await d.prepare([unknownId]);
    await w.prepare([unknownId]);
    for (const buf of [null, Buffer.alloc(0), badMagic, good.subarray(0, 4), good.subarray(0, 5), unknownId]) {
      assertSame(d, w, buf, `header case ${buf === null ? 'null' : buf.length}`);
    }
  });
});

describe('which writer schemas the hand-written reader takes', () => {
  const schema = EVENT_SCHEMA as unknown as RecordSchemaJson;

  test('the same layout with other docs and defaults: read directly, fetched or added', async () => {
    const redocumented = JSON.parse(JSON.stringify(schema), (k, v: unknown) => (k === 'doc' ? 'other' : v)) as object;
    const fetched = new RuleEventDecoder({ fetchSchema: () => Promise.resolve(redocumented as AvroSchema) });
    const buf = encodeWire(41, eventAvroType, new EventsBuilder().pod('pod.restart', 1));
    await fetched.prepare([buf]);
    assert.equal(fetched.readsDirectly(41), true);
    assert.equal(fetched.decode(buf).type, 'pod.restart');
  });

  test('another writer schema goes through avsc and gives its result', () => {
    const older: RecordSchemaJson = { ...schema, fields: schema.fields.filter((f) => f.name !== 'labels') };
    const renamed: RecordSchemaJson = {
      ...schema,
      fields: schema.fields.map((f) => (f.name === 'source' ? { ...f, name: 'origin', default: '' } : f)),
    };
    for (const [what, writer] of [
      ['without labels', older],
      ['with a renamed field', renamed],
    ] as const) {
      const d = new RuleEventDecoder(noRegistry);
      d.addWriterSchema(8, writer as unknown as AvroSchema);
      assert.equal(d.readsDirectly(8), false, what);
      const w = new WireDecoder(noRegistry, EVENT_SCHEMA, { projection: RULE_EVENT_FIELDS });
      w.addWriterSchema(8, writer as unknown as AvroSchema);
      const { labels: _l, source, ...rest } = new EventsBuilder().pod('pod.restart', 1);
      const value = what === 'without labels' ? { ...rest, source } : { ...rest, origin: source, labels: {} };
      const body = encodeWire(8, avroTypeOf(writer), value);
      assert.deepStrictEqual(
        outcome(() => d.decode(body)),
        outcome(() => w.decode(body)),
        what,
      );
    }
  });
});

// avsc's Type for another writer schema, through the WireDecoder's own reader type factory.
function avroTypeOf(schema: RecordSchemaJson): Parameters<typeof encodeWire>[1] {
  return new WireDecoder(noRegistry, schema).readerType;
}
