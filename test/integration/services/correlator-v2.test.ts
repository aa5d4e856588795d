import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RESULT_SCHEMA, RegistryCodec, WireDecoder, encodeWire, eventAvroType, parseEventLine } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { DLQ_HEADERS, ROUTING_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { parseHealthSnapshot } from '@tapio/routing';
import { startService } from '@tapio/runtime';
import { startCorrelatorV2 } from '@tapio/service-correlator-v2';
import {
  admin,
  committedTotal,
  eventually,
  kafka,
  randomName,
  readTopic,
  tempTopic,
  testConfig,
} from '../../helpers/stack';

const T0 = 1_750_000_000_000;

function restart(id: string, pod: string, offsetS: number): Event {
  return parseEventLine(
    JSON.stringify({
      id,
      timestamp: T0 + offsetS * 1000,
      source: 'kubernetes',
      type: 'pod.restart',
      severity: 'warning',
      entity: { namespace: 'shop', kind: 'pod', name: pod, node: 'node-3' },
    }),
  );
}

const expectedId = (ruleId: string, key: string, trigger: string): string =>
  createHash('sha256').update(`${ruleId}|${key}|${trigger}`).digest('hex').slice(0, 32);

async function setup(t: TestContext, role: 'primary' | 'shadow') {
  const input = await tempTopic(t, `v2-in-${role}`, 2);
  const output = await tempTopic(t, `v2-out-${role}`, 2);
  const dlq = await tempTopic(t, 'v2-dlq', 1);
  const healthTopic = await tempTopic(t, 'v2-health', 1);
  const groupId = randomName('tapio-v2');
  const config = testConfig({
    topics: { dlq, health: healthTopic },
    correlator: { role, healthIntervalMs: 500, slowCallMs: 100 },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerEvent(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  return { input, output, dlq, healthTopic, groupId, config, codec, schemaId, producer };
}

test('correlator-v2 evaluates whole batches, dead-letters poison inside a batch, commits after results', async (t) => {
  const s = await setup(t, 'primary');
  const key = 'pod/shop/web-a';
  const routed = (e: Event, extra: Record<string, string> = {}) => ({
    key,
    value: s.codec.encode(s.schemaId, e),
    headers: { [ROUTING_HEADERS.rules]: 'crash-loop', [ROUTING_HEADERS.scopeKey]: key, ...extra },
  });
  const truncated = s.codec.encode(s.schemaId, restart('t', 'web-a', 1)).subarray(0, 20);
  const emptyId = encodeWire(s.schemaId, eventAvroType, { ...restart('z', 'web-a', 2), id: '' });
  // One produce request: the records arrive in one batch per partition (all share the key).
  await s.producer.send({
    topic: s.input,
    acks: -1,
    messages: [
      routed(restart('a1', 'web-a', 0)),
      routed(restart('a2', 'web-a', 30)),
      { key, value: truncated },
      { key, value: emptyId },
      routed(restart('a3', 'web-a', 60)),
      // Warm-up after a route change: a detection before the suppress time is not published.
      routed(restart('a4', 'web-a', 500), { [ROUTING_HEADERS.suppressUntil]: String(T0 + 2_000_000) }),
      routed(restart('a5', 'web-a', 520)),
      routed(restart('a6', 'web-a', 540)),
    ],
  });

  const service = await startService(
    'correlator-v2',
    (ctx) => startCorrelatorV2(ctx, { inputTopic: s.input, outputTopic: s.output, groupId: s.groupId }),
    { config: s.config, logger: createLogger('correlator-v2', 'silent') },
  );
  let stopped = false;
  t.after(() => (stopped ? undefined : service.shutdown('test end')));

  const out = await readTopic(t, s.output, 1);
  const decoder = new WireDecoder<Result>(s.codec, RESULT_SCHEMA);
  await decoder.prepare(out.map((r) => r.value));
  const result = decoder.decode(out[0]!.value);
  assert.equal(result.ruleId, 'crash-loop');
  assert.equal(result.triggerEventId, 'a3');
  assert.equal(result.id, expectedId('crash-loop', key, 'a3'));
  assert.equal(result.engine, 'v2');
  assert.deepEqual([...result.evidence], ['a1', 'a2', 'a3']);

  const dead = await readTopic(t, s.dlq, 2);
  assert.deepEqual(dead.map((d) => d.headers[DLQ_HEADERS.reason]).sort(), ['INVALID_EVENT', 'TRUNCATED_RECORD']);
  for (const d of dead) assert.match(d.headers[DLQ_HEADERS.source] ?? '', new RegExp(`^${s.input}/\\d@\\d+$`));

  await eventually(async () => (await committedTotal(t, s.groupId, s.input)) === 8, 15_000, 'all 8 offsets committed');
  const health = await fetch(`${service.http.url}/healthz`).then((r) => r.json() as Promise<{ suppressed: number }>);
  assert.ok(health.suppressed >= 1, 'the warm-up detection was suppressed');

  const snapshots = (await readTopic(t, s.healthTopic, 1)).map((r) => parseHealthSnapshot(r.value));
  assert.equal(snapshots[0]!.engine, 'v2');
  await service.shutdown('test');
  stopped = true;
  // a4 fires in the engine (a3's cooldown is over) but is withheld and starts no cooldown, so a5
  // fires and is published; a6 lies in a5's cooldown. Exactly two results: a3 and a5.
  const all = await readTopic(t, s.output, 2);
  await decoder.prepare(all.map((r) => r.value));
  assert.deepEqual(all.map((r) => decoder.decode(r.value).triggerEventId).sort(), ['a3', 'a5']);
  const a = await admin(t);
  const ends = await a.fetchTopicOffsets(s.output);
  assert.equal(
    ends.reduce((n, p) => n + Number(p.high), 0),
    2,
  );
});

test('correlator-v2 in the shadow role reads the shadow topic in its own group and writes shadow results', async (t) => {
  const s = await setup(t, 'shadow');
  const key = 'pod/shop/web-s';
  await s.producer.send({
    topic: s.input,
    acks: -1,
    messages: [0, 10, 20].map((o, i) => ({ key, value: s.codec.encode(s.schemaId, restart(`s${i}`, 'web-s', o)) })),
  });
  const service = await startService(
    'correlator-v2-shadow',
    (ctx) => startCorrelatorV2(ctx, { role: 'shadow', inputTopic: s.input, outputTopic: s.output, groupId: s.groupId }),
    { config: s.config, logger: createLogger('correlator-v2-shadow', 'silent') },
  );
  t.after(() => service.shutdown('test end'));
  const out = await readTopic(t, s.output, 1);
  assert.equal(out[0]!.key, key);
  const health = await fetch(`${service.http.url}/healthz`).then((r) => r.json() as Promise<{ role: string }>);
  assert.equal(health.role, 'shadow');
});
