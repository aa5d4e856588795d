import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TapioError } from '@tapio/errors';
import { EVENT_SCHEMA, encodeWire, eventAvroType } from '@tapio/events';
import type { AvroSchema, Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import { RULE_EVENT_FIELDS, RuleEventDecoder, V2Engine } from '@tapio/engine-v2';
import type { RuleEvent, V2Record } from '@tapio/engine-v2';
import { RULES, crashLoop, routesFor } from '@tapio/rules';
import type { RuleDefinition } from '@tapio/rules';
import { generateScenario, generateStream, listScenarios } from '@tapio/scenarios';
import { EventsBuilder, at } from '../../helpers/events-builder';
import { fuzzStream } from './fuzz';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);

function feed(engine: { process(e: Event): Result[] }, events: readonly Event[]): Result[] {
  return events.flatMap((e) => engine.process(e));
}

/** Runs V1 and V2 on the same events, checks they agree, and returns V2's results. */
function both(events: readonly Event[], options: { keyIdleMs?: number; allowedLatenessMs?: number } = {}): Result[] {
  const r1 = feed(new V1Engine(options), events);
  const r2 = feed(new V2Engine(options), events);
  assert.deepEqual(
    r2.map((r) => ({ ...r, engine: 'v1' })),
    r1,
  );
  assert.ok(r2.every((r) => r.engine === 'v2'));
  return r2;
}

describe('targeted cases (each also equal to V1)', () => {
  test('an out-of-order event goes into the middle of the window, evaluated with now = its timestamp', () => {
    const b = new EventsBuilder();
    const events = [100, 130, 1040, 1000].map((s) => b.pod('pod.restart', s));
    const results = both(events);
    // Window [100 s, 1000 s]: the restart at 1040 s lies after now and is not in it.
    assert.equal(results.length, 1);
    assert.equal(results[0]!.triggeredAt, at(1000));
    assert.deepEqual(results[0]!.evidence, [events[0]!.id, events[1]!.id, events[3]!.id]);
  });

  test('an out-of-order event older than the cursor window start (R10, W = 0) gets its own window', () => {
    const b = new EventsBuilder();
    const disk = (sec: number, usage: number) => b.node('disk.usage', sec, { attributes: { usage_ratio: usage } });
    const events = [disk(100, 0.5), disk(90, 0.5), disk(100, 0.9), disk(95, 0.99)];
    const results = both(events);
    // At 100 s the evidence is every disk.usage with t == 100 s; 95 s then lies in the cooldown.
    assert.deepEqual(
      results.map((r) => [r.triggerEventId, r.evidence]),
      [[events[2]!.id, [events[0]!.id, events[2]!.id]]],
    );
  });

  test('equal timestamps: the latest is the one that arrived last (R5), a follower at the anchor counts (R12)', () => {
    const b = new EventsBuilder();
    const high = b.node('cpu.usage', 10, { attributes: { usage_ratio: 0.99 } });
    const low = b.node('cpu.usage', 10, { attributes: { usage_ratio: 0.5 } });
    const throttles = () =>
      ['a', 'b', 'c'].map((name) => b.pod('cpu.throttle', 10, { name, attributes: { throttle_ratio: 0.5 } }));
    assert.deepEqual(both([high, low, ...throttles()]), [], 'low arrived last: not contended');
    assert.deepEqual(
      both([low, high, ...throttles()]).map((r) => [r.ruleId, r.severity]),
      [['cpu-contention', 'critical']],
    );
    const evicted = b.pod('pod.evicted', 50, { name: 'a' });
    const pressure = b.node('node.pressure', 50);
    const trigger = b.pod('pod.evicted', 60, { name: 'b' });
    assert.deepEqual(
      both([evicted, pressure, trigger]).map((r) => [r.ruleId, r.evidence]),
      [['node-pressure-eviction', [evicted.id, pressure.id, trigger.id]]],
    );
  });

  test('evidence is capped at 50: the trigger plus the 49 others that sort greatest', () => {
    const b = new EventsBuilder();
    const fromA = Array.from({ length: 60 }, (_, i) => b.pod('network.dns_failure', i, { name: 'a' }));
    const trigger = b.pod('network.dns_failure', 59, { name: 'b', id: 'a-trigger' });
    const results = both([...fromA, trigger]);
    assert.equal(results.length, 1);
    assert.deepEqual(results[0]!.evidence, [...fromA.slice(11, 59).map((e) => e.id), 'a-trigger', fromA[59]!.id]);
    assert.equal(results[0]!.confidence, 0.99);
  });

  test('cooldown: no second result before T + cooldown, state keeps updating, out-of-order inside too', () => {
    const b = new EventsBuilder();
    const events = [
      ...[0, 10, 20].map((s) => b.pod('pod.restart', s)), // fires at 20 s (cooldown 120 s)
      b.pod('pod.restart', 15), // out of order, now < T: in cooldown too
      b.pod('pod.restart', 100), // in cooldown
      b.pod('pod.restart', 139.999), // in cooldown
      b.pod('pod.restart', 140), // T + cooldown: fires with every restart of the window
    ];
    const results = both(events);
    assert.deepEqual(
      results.map((r) => r.triggeredAt),
      [at(20), at(140)],
    );
    assert.equal(results[1]!.evidence.length, 7);
  });

  test('lateness boundary: exactly watermark - allowedLateness is on time, 1 ms older is late', () => {
    const b = new EventsBuilder();
    const v2 = new V2Engine();
    feed(v2, [b.pod('volume.mount_failed', 1000), b.pod('volume.mount_failed', 940)]);
    assert.equal(v2.stats.lateEvents, 0);
    feed(v2, [b.pod('volume.mount_failed', 939.999)]);
    assert.equal(v2.stats.lateEvents, 1);
    assert.equal(v2.stats.rules['volume-mount-failure']!.lateEvents, 1);
    const custom = new V2Engine({ allowedLatenessMs: 0 });
    feed(custom, [b.pod('volume.mount_failed', 10), b.pod('volume.mount_failed', 9.999)]);
    assert.equal(custom.stats.lateEvents, 1);
  });

  test('the watermark is per rule and key', () => {
    const b = new EventsBuilder();
    const events = [b.pod('memory.oom_kill', 5000), ...[0, 10, 20].map((t) => b.pod('pod.restart', t))];
    const v2 = new V2Engine();
    assert.deepEqual(
      feed(v2, events).map((r) => r.ruleId),
      ['crash-loop'],
    );
    assert.equal(v2.stats.rules['memory-pressure-cascade']!.lateEvents, 3);
    both(events);
  });

  test('idle keys are freed as V1 frees them, and a freed key starts afresh', () => {
    const b = new EventsBuilder();
    const events = [
      ...[0, 10].map((s) => b.pod('pod.restart', s)),
      b.pod('pod.restart', 500, { name: 'other' }), // moves event time on: web-1 is idle past 300 s
      b.pod('pod.restart', 20), // 480 s behind: late for the old state, on time for a fresh one
      b.pod('pod.restart', 25),
      b.pod('pod.restart', 30),
    ];
    const v2 = new V2Engine({ keyIdleMs: 300_000, allowedLatenessMs: 600_000 });
    const results = feed(v2, events);
    assert.equal(v2.stats.keysFreed, 1);
    // Without freeing the window would hold 0, 10, 20: the fresh state fires only at 30 s.
    assert.deepEqual(
      results.map((r) => [r.triggeredAt, r.evidence.length]),
      [[at(30), 3]],
    );
    const v1 = new V1Engine({ keyIdleMs: 300_000, allowedLatenessMs: 600_000 });
    feed(v1, events);
    assert.deepEqual([v2.stats.storedEvents, v2.stats.keys], [v1.stats.storedEvents, v1.stats.keys]);
    both(events, { keyIdleMs: 300_000, allowedLatenessMs: 600_000 });
  });

  test('processRouted runs the listed rules in catalogue order and counts the others as skipped', () => {
    const b = new EventsBuilder();
    const v1 = new V1Engine();
    const v2 = new V2Engine();
    const restarts = [0, 10, 20].map((s) => b.pod('pod.restart', s));
    for (const e of restarts) {
      const ids = ['nope', 'crash-loop', 'disk-pressure', 'crash-loop'];
      assert.deepEqual(
        v2.processRouted(e, 'pod/shop/web-1', ids).map((r) => ({ ...r, engine: 'v1' })),
        v1.processRouted(e, 'pod/shop/web-1', ids),
      );
    }
    assert.equal(v2.stats.skippedRules, v1.stats.skippedRules);
    assert.equal(v2.stats.skippedRules, 6);
    assert.equal(v2.stats.results, 1);
  });

  test('processBatch appends the results of process / processRouted, record after record', () => {
    const stream = generateStream({ seed: 8, startMs: START_MS, scenarios: 'all', noiseEvents: 2000 });
    const records: V2Record[] = [];
    stream.events.forEach((event, i) => {
      if (i % 2 === 0) records.push({ event });
      else for (const r of routesFor(event)) records.push({ event, scopeKey: r.scopeKey, ruleIds: r.ruleIds });
    });
    const one = new V2Engine();
    const expected: Result[] = [];
    for (const r of records) {
      expected.push(...(r.scopeKey ? one.processRouted(r.event, r.scopeKey, r.ruleIds!) : one.process(r.event)));
    }
    const out: Result[] = [];
    new V2Engine().processBatch(records, out);
    assert.equal(out.length, stream.expected.length);
    assert.deepEqual(out, expected);
  });

  test('a rule that is not the catalogue definition is run by scanning, with the same results and errors', () => {
    const b = new EventsBuilder();
    const boom = new Error('boom');
    const bad: RuleDefinition = {
      ...crashLoop,
      id: 'bad-rule',
      decide() {
        throw boom;
      },
    };
    const twice: RuleDefinition = { ...crashLoop, id: 'crash-twice' };
    const errors: Array<[string, TapioError]> = [];
    const rules = [bad, twice, crashLoop];
    const v2 = new V2Engine({ rules, onRuleError: (id, err) => errors.push([id, err]) });
    const events = [0, 10, 20].map((t) => b.pod('pod.restart', t));
    const r2 = feed(v2, events);
    const r1 = feed(new V1Engine({ rules }), events);
    assert.deepEqual(
      r2.map((r) => ({ ...r, engine: 'v1' })),
      r1,
    );
    assert.deepEqual(
      r2.map((r) => r.ruleId),
      ['crash-twice', 'crash-loop'],
    );
    assert.equal(errors.length, 3);
    assert.ok(errors.every(([id, err]) => id === 'bad-rule' && err.code === 'RULE_FAILED' && err.cause === boom));
    assert.equal(v2.stats.ruleErrors.RULE_FAILED, 3);
  });

  test('more rules than a key has state fields (24): the later ones keep and free their state too', () => {
    // Copies under other ids are not the catalogue's own definitions, so V2 scans them as V1 does.
    const rules = [...RULES, ...RULES.map((r) => ({ ...r, id: `${r.id}-copy` }))];
    const options = { rules, keyIdleMs: 240_000 };
    const events = fuzzStream({ seed: 15, events: 8_000, outOfOrderMs: 20_000, lateShare: 0.01 });
    const v1 = new V1Engine(options);
    const v2 = new V2Engine(options);
    const r1 = feed(v1, events);
    const r2 = feed(v2, events);
    assert.deepEqual(
      r2.map((r) => ({ ...r, engine: 'v1' })),
      r1,
    );
    assert.ok(r1.some((r) => r.ruleId.endsWith('-copy')));
    assert.ok(v1.stats.keysFreed > 0);
    assert.equal(v2.stats.keysFreed, v1.stats.keysFreed);
    assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
  });

  test('bad options are refused with INVALID_CONFIG', () => {
    for (const options of [
      { allowedLatenessMs: -1 },
      { ruleTimeoutMs: 0 },
      { keyIdleMs: NaN },
      { rules: [crashLoop, crashLoop] },
    ]) {
      assert.throws(
        () => new V2Engine(options),
        (err: unknown) => err instanceof TapioError && err.code === 'INVALID_CONFIG',
      );
    }
  });
});

describe('scenarios: V2 detects each incident exactly, and no near miss', () => {
  for (const info of listScenarios()) {
    test(info.name, () => {
      for (const seed of [1, 2, 3, 42, 7919]) {
        const s = generateScenario(info.name, { seed, startMs: START_MS });
        const results = feed(new V2Engine(), s.events);
        assert.deepEqual(
          results.map((r) => ({
            ruleId: r.ruleId,
            entityKey: r.entityKey,
            severity: r.severity,
            triggerEventId: r.triggerEventId,
          })),
          s.expected,
          `${info.name} seed ${seed}`,
        );
        if (info.kind === 'near-miss') assert.equal(results.length, 0);
      }
    });
  }
});

describe('RuleEventDecoder', () => {
  const SCHEMA_ID = 7;
  const noRegistry = {
    fetchSchema: (id: number) =>
      Promise.reject(new TapioError('UNKNOWN_SCHEMA_ID', `no schema ${id}`, { context: { schemaId: id } })),
  };
  function decoder(): RuleEventDecoder {
    const d = new RuleEventDecoder(noRegistry);
    d.addWriterSchema(SCHEMA_ID, EVENT_SCHEMA as unknown as AvroSchema);
    return d;
  }

  test('decodes only the fields the rules read, straight from the wire format', () => {
    const b = new EventsBuilder();
    const e = b.container('memory.usage', 3, {
      service: 'cart',
      attributes: { usage_bytes: 5, limit_bytes: 10 },
      labels: { destination: 'shop/cart' },
    });
    const decoded = decoder().decode(encodeWire(SCHEMA_ID, eventAvroType, e));
    const { source: _s, severity: _v, message: _m, entity, ...rest } = e;
    const { cluster: _c, ...ruleEntity } = entity;
    assert.deepEqual(JSON.parse(JSON.stringify(decoded)), { ...rest, entity: ruleEntity });
    assert.deepEqual(Object.keys(decoded).sort(), ['attributes', 'entity', 'id', 'labels', 'timestamp', 'type']);
    assert.equal(RULE_EVENT_FIELDS.length, 12);
  });

  test('the engine over projected decodes equals V1 over full events', () => {
    const stream = generateStream({
      seed: 21,
      startMs: START_MS,
      scenarios: 'all',
      noiseEvents: 5000,
      outOfOrderMs: 30_000,
      lateShare: 0.02,
    });
    const d = decoder();
    const buffers = stream.events.map((e) => encodeWire(SCHEMA_ID, eventAvroType, e));
    const events: Array<RuleEvent | null> = [];
    const errors: Array<TapioError | null> = [];
    assert.equal(d.decodeBatch(buffers, events, errors), 0);
    const out: Result[] = [];
    new V2Engine().processBatch(
      events.map((event) => ({ event: event! })),
      out,
    );
    const v1 = feed(new V1Engine(), stream.events);
    assert.deepEqual(
      out.map((r) => ({ ...r, engine: 'v1' })),
      v1,
    );
    assert.equal(out.length, stream.expected.length);
  });

  test('bad records get stable codes and their topic/partition/offset; good ones still decode', async () => {
    const d = decoder();
    const good = encodeWire(SCHEMA_ID, eventAvroType, new EventsBuilder().pod('pod.restart', 1));
    const badMagic = Buffer.from(good);
    badMagic[0] = 1;
    const trailing = Buffer.concat([good, Buffer.from([0])]);
    const unknownId = Buffer.from(good);
    unknownId.writeInt32BE(99, 1);
    const values = [good, badMagic, good.subarray(0, 3), good.subarray(0, good.length - 2), trailing, unknownId, null];
    await d.prepare(values);
    const events: Array<RuleEvent | null> = [];
    const errors: Array<TapioError | null> = [];
    const bad = d.decodeBatch(values, events, errors, {
      topic: 't',
      partition: 2,
      offsets: ['10', '11', '12', '13', '14', '15', '16'],
    });
    assert.equal(bad, 6);
    assert.equal(events[0]!.type, 'pod.restart');
    assert.deepEqual(
      errors.map((e) => e?.code ?? null),
      [
        null,
        'BAD_MAGIC_BYTE',
        'TRUNCATED_RECORD',
        'TRUNCATED_RECORD',
        'TRAILING_BYTES',
        'UNKNOWN_SCHEMA_ID',
        'TRUNCATED_RECORD',
      ],
    );
    assert.deepEqual(errors[5]!.context, { schemaId: 99, topic: 't', partition: 2, offset: '15' });
    assert.throws(
      () => d.decode(badMagic),
      (err: unknown) => err instanceof TapioError && err.code === 'BAD_MAGIC_BYTE',
    );
  });
});
