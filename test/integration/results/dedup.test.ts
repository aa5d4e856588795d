import { test } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { RegistryCodec } from '@tapio/events';
import type { Result } from '@tapio/events';
import { DLQ_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { startDedup } from '@tapio/service-dedup';
import { makeResult, metricValue } from '../../helpers/results-builder';
import { committedTotal, eventually, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

test('dedup collapses same-fingerprint results within the TTL, passes redeliveries and post-TTL results', async (t) => {
  const input = await tempTopic(t, 'dedup-in', 2);
  const output = await tempTopic(t, 'dedup-out', 2);
  const dlqTopic = await tempTopic(t, 'dedup-dlq', 1);
  const groupId = randomName('tapio-dedup');
  const keyPrefix = `${randomName('tapio-test-dedup')}:`;
  const ttlMs = 2500;
  const config = testConfig({
    topics: { dlq: dlqTopic },
    dedup: { ttlMs, keyPrefix },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  const redis = new Redis(config.redis.url);
  t.after(() => redis.quit());

  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerResult(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  const send = (...records: (Result | Buffer)[]) =>
    producer.send({
      topic: input,
      acks: -1,
      messages: records.map((r) =>
        Buffer.isBuffer(r)
          ? { key: 'pod/shop/a', value: r }
          : { key: r.entityKey, value: codec.encode(schemaId, r), headers: { origin: r.triggerEventId } },
      ),
    });

  const first = makeResult('crash-loop', 'pod/shop/a', 'a1');
  const dup = makeResult('crash-loop', 'pod/shop/a', 'a2', { severity: 'critical' });
  const other = makeResult('crash-loop', 'pod/shop/b', 'b1');
  await send(first, dup, other, Buffer.from('not a result'));

  const service = await startService(
    'dedup',
    (ctx) => startDedup(ctx, { inputTopic: input, outputTopic: output, groupId }),
    {
      config,
      logger: createLogger('dedup', 'silent'),
    },
  );
  let stopped = false;
  t.after(() => (stopped ? undefined : service.shutdown('test end')));
  const metrics = () => fetch(`${service.http.url}/metrics`).then((r) => r.text());
  const outcome = async (o: string) => metricValue(await metrics(), 'tapio_dedup_results_total', { outcome: o });

  // Phase 1: first of each fingerprint forwarded, the second of pod/shop/a dropped, garbage dead-lettered.
  await eventually(
    async () => (await outcome('forwarded')) === 2 && (await outcome('duplicate')) === 1,
    30_000,
    'phase 1',
  );
  const fpKey = `${keyPrefix}crash-loop|pod/shop/a`;
  assert.equal(await redis.get(fpKey), first.id, 'the fingerprint key holds the first result id');

  // Phase 2, inside the TTL: the same first result again (a redelivery) passes, its duplicate does not.
  const left = await redis.pttl(fpKey);
  assert.ok(left > 1000, `need TTL margin for the redelivery phase, have ${left} ms`);
  await send(first, dup);
  await eventually(
    async () => (await outcome('redelivered')) === 1 && (await outcome('duplicate')) === 2,
    10_000,
    'phase 2',
  );

  // Phase 3, after the TTL: a new result for the same fingerprint passes.
  await eventually(async () => (await redis.exists(fpKey)) === 0, ttlMs + 2000, 'fingerprint key expired');
  const later = makeResult('crash-loop', 'pod/shop/a', 'a3');
  await send(later);
  await eventually(async () => (await outcome('forwarded')) === 3, 10_000, 'phase 3');

  const out = await readTopic(t, output, 4);
  assert.deepEqual(
    out.map((r) => r.headers['origin']).sort(),
    ['a1', 'a1', 'a3', 'b1'],
    'forwarded: first (twice: original and redelivery), other, later; never the duplicate',
  );
  for (const r of out) {
    assert.ok(r.key === 'pod/shop/a' || r.key === 'pod/shop/b', 'the original key is kept');
    assert.equal(r.value?.readInt32BE(1), schemaId, 'the original bytes are forwarded');
  }
  const dead = await readTopic(t, dlqTopic, 1);
  assert.equal(dead[0]?.headers[DLQ_HEADERS.reason], 'BAD_MAGIC_BYTE');
  const text = await metrics();
  assert.equal(metricValue(text, 'tapio_dedup_dlq_total', { reason: 'BAD_MAGIC_BYTE' }), 1);
  assert.equal(metricValue(text, 'tapio_dedup_redis_errors_total'), 0);
  assert.ok(metricValue(text, 'tapio_dedup_batch_latency_ms_count') >= 3);

  await service.shutdown('test');
  stopped = true;
  await eventually(async () => (await committedTotal(t, groupId, input)) === 7, 15_000, 'all 7 offsets committed');
  await redis.del(fpKey, `${keyPrefix}crash-loop|pod/shop/b`);
});
