import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TapioError } from '@tapio/errors';
import { EVENT_SCHEMA, RegistryCodec, WireDecoder, encodeWire, eventAvroType, parseEventLine } from '@tapio/events';
import type { Event, RecordSchemaJson, SchemaSource } from '@tapio/events';
import { repoPath } from '../helpers/paths';
import { randomName, registryUrl } from '../helpers/stack';

const eventSchema = EVENT_SCHEMA as unknown as RecordSchemaJson;

const sample: Event = parseEventLine(
  JSON.stringify({
    id: 'evt-0001',
    timestamp: 1_700_000_000_123,
    source: 'metrics',
    type: 'memory.usage',
    severity: 'warning',
    entity: {
      cluster: 'prod-eu',
      namespace: 'shop',
      kind: 'container',
      name: 'app',
      node: 'node-07',
      pod: 'web-5d8f',
      container: 'app',
      service: 'web',
    },
    attributes: { usage_bytes: 805306368, limit_bytes: 1073741824 },
    labels: { team: 'checkout' },
    message: 'container memory high',
  }),
);

/** avsc decodes records into instances of generated classes; compare their data. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

function codec(): RegistryCodec {
  return new RegistryCodec({ url: registryUrl() });
}

/** Counts fetches so tests can see that an id is fetched once. */
function countingSource(inner: SchemaSource): SchemaSource & { calls: number } {
  const source = {
    calls: 0,
    fetchSchema(id: number) {
      source.calls++;
      return inner.fetchSchema(id);
    },
  };
  return source;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<TapioError> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (err) {
    assert.ok(err instanceof TapioError, `expected TapioError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

test('golden fixture: the Avro body of the sample event is byte-exact', () => {
  const golden = readFileSync(repoPath('test/fixtures/avro/event-sample.hex'), 'utf8').trim();
  assert.equal(eventAvroType.toBuffer(sample).toString('hex'), golden);
  // Spot-check the encoding by hand: the datum starts with the id as a zigzag-varint length (8 -> 0x10).
  assert.equal(golden.slice(0, 2), '10');
  assert.equal(Buffer.from(golden.slice(2, 18), 'hex').toString(), 'evt-0001');
});

test('register under <topic>-value is idempotent; both decode paths round-trip', async () => {
  const c = codec();
  const topic = randomName('codec');
  const id = await c.registerEvent(topic);
  assert.equal(await c.registerEvent(topic), id);
  const subjects = (await fetch(`${registryUrl()}/subjects`).then((r) => r.json())) as string[];
  assert.ok(subjects.includes(`${topic}-value`), `subject ${topic}-value missing from ${subjects.join(',')}`);

  const wire = c.encode(id, sample);
  assert.equal(wire[0], 0);
  assert.equal(wire.readInt32BE(1), id);
  assert.deepEqual(plain(await codec().decode(wire)), sample); // a fresh client: fetched from the registry

  const decoder = new WireDecoder<Event>(codec(), eventSchema);
  await decoder.prepare([wire]);
  assert.deepEqual(plain(decoder.decode(wire)), sample);
});

test('services registering a new subject at the same moment all succeed with one id', async () => {
  // Every service registers its output subject at start-up. The registry client's first registration
  // of a subject sets the subject's compatibility after registering the schema; a second client asking
  // in between read the registry's global level (NONE here) and failed with "Compatibility does not
  // match": npm start's correlator-v2 exited 1 on a fresh registry that way.
  for (let round = 0; round < 5; round++) {
    const topic = randomName('codec-race');
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => codec().registerEvent(topic)));
    const failed = outcomes.filter((o) => o.status === 'rejected');
    assert.deepEqual(
      failed.map((o) => String(o.reason)),
      [],
      `round ${round}: every concurrent registration succeeds`,
    );
    const ids = new Set(outcomes.map((o) => (o as PromiseFulfilledResult<number>).value));
    assert.equal(ids.size, 1, `round ${round}: one schema id`);
  }
});

test('projection decodes only the named fields, straight from the buffer at offset 5', async () => {
  const c = codec();
  const id = await c.registerEvent(randomName('proj'));
  const wire = c.encode(id, sample);
  const decoder = new WireDecoder(c, eventSchema, {
    projection: ['id', 'timestamp', 'type', 'entity.kind', 'entity.name', 'entity.node', 'attributes'],
  });
  await decoder.prepare([wire]);
  assert.deepEqual(plain(decoder.decode(wire)), {
    id: 'evt-0001',
    timestamp: 1_700_000_000_123,
    type: 'memory.usage',
    entity: { kind: 'container', name: 'app', node: 'node-07' },
    attributes: { usage_bytes: 805306368, limit_bytes: 1073741824 },
  });
  assert.throws(() => new WireDecoder(c, eventSchema, { projection: ['nope'] }), /unknown fields: nope/);
});

test('schema evolution: a reader with an added defaulted field reads old data, and back', async () => {
  const c = codec();
  const topic = randomName('evolve');
  const oldId = await c.registerEvent(topic);
  const evolved: RecordSchemaJson = {
    ...eventSchema,
    fields: [...eventSchema.fields, { name: 'region', type: 'string', default: 'unknown' }],
  };
  const newId = await c.register(topic, evolved); // BACKWARD-compatible, so the registry accepts it
  assert.notEqual(newId, oldId);

  const oldWire = c.encode(oldId, sample);
  const newReader = new WireDecoder<Event & { region: string }>(codec(), evolved);
  await newReader.prepare([oldWire]);
  assert.deepEqual(plain(newReader.decode(oldWire)), { ...sample, region: 'unknown' });

  const newWire = c.encode(newId, { ...sample, region: 'eu-west-1' });
  const oldReader = new WireDecoder<Event>(codec(), eventSchema);
  await oldReader.prepare([newWire]);
  assert.deepEqual(plain(oldReader.decode(newWire)), sample);

  const incompatible: RecordSchemaJson = {
    ...eventSchema,
    fields: [...eventSchema.fields, { name: 'mandatory', type: 'string' }],
  };
  await expectCode(c.register(topic, incompatible), 'INCOMPATIBLE_SCHEMA');
});

test('bad bytes raise typed errors on both paths and never crash', async () => {
  const c = codec();
  const id = await c.registerEvent(randomName('bad'));
  const good = c.encode(id, sample);
  const decoder = new WireDecoder(c, eventSchema);
  await decoder.prepare([good]);

  const wrongMagic = Buffer.from(good);
  wrongMagic[0] = 1;
  const truncated = good.subarray(0, good.length - 3);
  const trailing = Buffer.concat([good, Buffer.from([1, 2, 3])]);
  const shortHeader = good.subarray(0, 3);
  const unknownId = Buffer.from(good);
  unknownId.writeInt32BE(2_000_000_000, 1);

  for (const [buf, code] of [
    [wrongMagic, 'BAD_MAGIC_BYTE'],
    [truncated, 'TRUNCATED_RECORD'],
    [trailing, 'TRAILING_BYTES'],
    [shortHeader, 'TRUNCATED_RECORD'],
  ] as const) {
    const err = await expectCode(() => decoder.decode(buf, { topic: 't', partition: 1, offset: '7' }), code);
    assert.match(err.message, /t\/1@7/);
    await expectCode(c.decode(buf), code);
  }
  await expectCode(() => decoder.decode(null), 'TRUNCATED_RECORD');
  await expectCode(c.decode(unknownId), 'UNKNOWN_SCHEMA_ID');

  const source = countingSource(c);
  const fresh = new WireDecoder(source, eventSchema);
  await fresh.prepare([unknownId, unknownId, good]);
  await fresh.prepare([unknownId]);
  assert.equal(source.calls, 2, 'the unknown id and the good id are each fetched once');
  const err = await expectCode(() => fresh.decode(unknownId), 'UNKNOWN_SCHEMA_ID');
  assert.equal(err.context.schemaId, 2_000_000_000);
  assert.equal(err.retriable, false);
  assert.deepEqual(plain(fresh.decode(good)), sample);
});

test('an unreachable registry is a retriable REGISTRY_UNAVAILABLE', async () => {
  const down = new RegistryCodec({ url: 'http://127.0.0.1:1/apis/ccompat/v7', retries: 0 });
  const wire = encodeWire(1, eventAvroType, sample);
  const err = await expectCode(down.decode(wire), 'REGISTRY_UNAVAILABLE');
  assert.equal(err.retriable, true);
  const decoder = new WireDecoder(down, eventSchema);
  await expectCode(decoder.ensure(1), 'REGISTRY_UNAVAILABLE');
  // After a batch's prepare() met the outage, decode says so (retriable) instead of blaming the record.
  await decoder.prepare([wire]);
  const decodeErr = await expectCode(() => decoder.decode(wire), 'REGISTRY_UNAVAILABLE');
  assert.equal(decodeErr.retriable, true);
});
