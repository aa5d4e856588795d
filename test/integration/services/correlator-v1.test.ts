import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RegistryCodec, WireDecoder, RESULT_SCHEMA, encodeWire, eventAvroType, parseEventLine } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { DLQ_HEADERS, ROUTING_HEADERS } from '@tapio/kafka';
import { startService } from '@tapio/runtime';
import { startCorrelatorV1 } from '@tapio/service-correlator-v1';
import { createLogger } from '@tapio/observability';
import { committedTotal, eventually, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

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
      attributes: { restart_count: 1, exit_code: 1 },
    }),
  );
}

const expectedId = (ruleId: string, key: string, trigger: string): string =>
  createHash('sha256').update(`${ruleId}|${key}|${trigger}`).digest('hex').slice(0, 32);

test('correlator-v1 turns routed records into results, dead-letters poison and keeps going, commits all', async (t) => {
  const input = await tempTopic(t, 'v1-in', 3);
  const output = await tempTopic(t, 'v1-out', 2);
  const dlqTopic = await tempTopic(t, 'v1-dlq', 1);
  const groupId = randomName('tapio-v1');
  const config = testConfig({ topics: { dlq: dlqTopic }, http: { port: 0 }, log: { level: 'silent' } });

  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerEvent(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());

  // Pod A: routed records (key = scope key, header lists crash-loop). Pod B: no routing header, so
  // the engine derives every route itself. Poison records sit between the restarts.
  const keyA = 'pod/shop/web-a';
  const keyB = 'pod/shop/web-b';
  const routed = (e: Event) => ({
    key: keyA,
    value: codec.encode(schemaId, e),
    headers: { [ROUTING_HEADERS.rules]: 'crash-loop', [ROUTING_HEADERS.scopeKey]: keyA },
  });
  const plain = (e: Event) => ({ key: keyB, value: codec.encode(schemaId, e) });
  const unknownId = encodeWire(2_000_000_123, eventAvroType, restart('x', 'web-x', 0));
  await producer.send({
    topic: input,
    acks: -1,
    messages: [
      routed(restart('a1', 'web-a', 0)),
      plain(restart('b1', 'web-b', 0)),
      { key: keyA, value: Buffer.from('{"not":"avro"}') },
      routed(restart('a2', 'web-a', 40)),
      { key: keyA, value: unknownId },
      plain(restart('b2', 'web-b', 50)),
      routed(restart('a3', 'web-a', 80)),
      plain(restart('b3', 'web-b', 100)),
    ],
  });

  const service = await startService(
    'correlator-v1',
    (ctx) => startCorrelatorV1(ctx, { inputTopic: input, outputTopic: output, groupId }),
    { config, logger: createLogger('correlator-v1', 'silent') },
  );
  let stopped = false;
  t.after(() => (stopped ? undefined : service.shutdown('test end')));

  const results = await readTopic(t, output, 2);
  const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
  await decoder.prepare(results.map((r) => r.value));
  const decoded = results.map((r) => ({ key: r.key, result: decoder.decode(r.value) }));
  const byKey = new Map(decoded.map((d) => [d.key, d.result]));
  const a = byKey.get(keyA);
  const b = byKey.get(keyB);
  assert.ok(a && b, `results for both pods, got ${[...byKey.keys()].join(', ')}`);
  assert.equal(a.ruleId, 'crash-loop');
  assert.equal(a.entityKey, keyA);
  assert.equal(a.triggerEventId, 'a3');
  assert.equal(a.id, expectedId('crash-loop', keyA, 'a3'));
  assert.deepEqual([...a.evidence], ['a1', 'a2', 'a3']);
  assert.equal(a.engine, 'v1');
  assert.equal(b.triggerEventId, 'b3');
  assert.equal(b.id, expectedId('crash-loop', keyB, 'b3'));

  const dead = await readTopic(t, dlqTopic, 2);
  const reasons = dead.map((d) => d.headers[DLQ_HEADERS.reason]).sort();
  assert.deepEqual(reasons, ['BAD_MAGIC_BYTE', 'UNKNOWN_SCHEMA_ID']);
  for (const d of dead) {
    assert.match(d.headers[DLQ_HEADERS.source] ?? '', new RegExp(`^${input}/\\d+@\\d+$`));
    assert.match(d.headers[DLQ_HEADERS.message] ?? '', new RegExp(`${input}/\\d+@\\d+`));
  }
  assert.equal(
    dead.find((d) => d.headers[DLQ_HEADERS.reason] === 'BAD_MAGIC_BYTE')?.value?.toString(),
    '{"not":"avro"}',
  );

  const metrics = await fetch(`${service.http.url}/metrics`).then((r) => r.text());
  assert.match(metrics, /tapio_events_processed_total\{engine="v1",service="correlator-v1"\} 6/);
  assert.match(metrics, /tapio_dlq_total\{engine="v1",reason="BAD_MAGIC_BYTE",service="correlator-v1"\} 1/);
  assert.match(metrics, /tapio_results_total\{engine="v1",rule_id="crash-loop",service="correlator-v1"\} 2/);
  assert.equal((await fetch(`${service.http.url}/healthz`)).status, 200);

  // Clean shutdown commits everything, poison included (it is safe in the DLQ).
  await service.shutdown('test');
  stopped = true;
  await eventually(async () => (await committedTotal(t, groupId, input)) === 8, 15_000, 'all 8 offsets committed');
});
