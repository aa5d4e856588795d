import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ComparisonSnapshot } from '@tapio/comparison';
import { RegistryCodec } from '@tapio/events';
import { ROUTING_HEADERS } from '@tapio/kafka';
import type { Result } from '@tapio/events';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { startComparator } from '@tapio/service-comparator';
import { makeResult, metricValue } from '../../helpers/results-builder';
import { eventually, kafka, randomName, tempTopic, testConfig } from '../../helpers/stack';

/** Reads a topic from the beginning until a record satisfies `done` (fails after timeoutMs). */
async function readUntil(t: TestContext, topic: string, done: (value: string) => boolean, timeoutMs = 20_000) {
  const consumer = kafka().consumer({ groupId: randomName('reader'), sessionTimeout: 10_000, heartbeatInterval: 1000 });
  t.after(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: string[] = [];
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${topic}: no matching record among ${seen.length}`)), timeoutMs);
      consumer
        .run({
          eachMessage: ({ message }) => {
            const value = message.value?.toString() ?? '';
            seen.push(value);
            if (done(value)) {
              clearTimeout(timer);
              resolve(value);
            }
            return Promise.resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}

test('comparator joins the primary and shadow topics and classifies a crafted set', async (t) => {
  const primaryTopic = await tempTopic(t, 'cmp-primary', 2);
  const shadowTopic = await tempTopic(t, 'cmp-shadow', 2);
  const healthTopic = await tempTopic(t, 'cmp-health', 1);
  const config = testConfig({
    comparator: { windowMs: 1500, healthIntervalMs: 400 },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  const codec = new RegistryCodec({ url: config.registry.url });
  const primaryId = await codec.registerResult(primaryTopic);
  const shadowId = await codec.registerResult(shadowTopic);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  // Primary results as correlator-v1 writes them for shadowed keys: with the `tapio-compared` mark.
  const send = (topic: string, schemaId: number, results: Result[], marked = true) =>
    producer.send({
      topic,
      acks: -1,
      messages: results.map((r) => ({
        key: r.entityKey,
        value: codec.encode(schemaId, r),
        ...(marked ? { headers: { [ROUTING_HEADERS.compared]: '1' } } : {}),
      })),
    });

  const shadowOf = (r: Result, o: Partial<Result> = {}): Result => ({ ...r, engine: 'v2', ...o });
  const match1 = makeResult('crash-loop', 'pod/shop/a', 'e1', { evidence: ['e0', 'e1'] });
  const match2 = makeResult('dns-failure-storm', 'namespace/shop', 'e2');
  const differ = makeResult('crash-loop', 'pod/shop/b', 'e3', { severity: 'high', confidence: 0.8 });
  const missing = makeResult('disk-pressure', 'node/n1', 'e4', { category: 'storage' });
  const extra = makeResult('disk-pressure', 'node/n2', 'e5', { category: 'storage', engine: 'v2' });
  const v2Primary = makeResult('memory-leak', 'container/shop/a/app', 'e6', { engine: 'v2' });

  await send(primaryTopic, primaryId, [match1, match2, differ, missing, v2Primary, match1 /* redelivered */]);
  // A V1 result of a key that was not shadowed: no shadow counterpart is expected, so not `missing_in_v2`.
  const unshadowed = makeResult('disk-pressure', 'node/n3', 'e7', { category: 'storage' });
  await send(primaryTopic, primaryId, [unshadowed], false);
  await send(shadowTopic, shadowId, [
    shadowOf(match1),
    shadowOf(match2),
    shadowOf(differ, { severity: 'critical', confidence: 0.85 }),
    extra,
  ]);

  const service = await startService(
    'comparator',
    (ctx) => startComparator(ctx, { primaryTopic, shadowTopic, healthTopic, groupId: randomName('tapio-comparator') }),
    { config, logger: createLogger('comparator', 'silent') },
  );
  t.after(() => service.shutdown('test end'));
  const metrics = () => fetch(`${service.http.url}/metrics`).then((r) => r.text());

  await eventually(
    async () => metricValue(await metrics(), 'tapio_result_comparison_total', { kind: 'extra_in_v2' }) === 1,
    30_000,
    'the unpaired results expired',
  );
  // A little longer than one window: no late reclassification (the redelivered match1 stays ignored).
  await new Promise((r) => setTimeout(r, 2000));
  const text = await metrics();
  assert.equal(metricValue(text, 'tapio_result_comparison_total', { kind: 'match' }), 2);
  assert.equal(metricValue(text, 'tapio_result_comparison_total', { kind: 'differing' }), 1);
  assert.equal(metricValue(text, 'tapio_result_comparison_total', { kind: 'missing_in_v2' }), 1);
  assert.equal(metricValue(text, 'tapio_result_comparison_total', { kind: 'extra_in_v2' }), 1);
  assert.equal(
    metricValue(text, 'tapio_result_comparison_mismatch_total', { kind: 'differing', rule_id: 'crash-loop' }),
    1,
  );
  assert.equal(
    metricValue(text, 'tapio_result_comparison_mismatch_total', { kind: 'missing_in_v2', rule_id: 'disk-pressure' }),
    1,
  );
  assert.equal(
    metricValue(text, 'tapio_result_comparison_mismatch_total', { kind: 'extra_in_v2', rule_id: 'disk-pressure' }),
    1,
  );
  assert.doesNotMatch(text, /rule_id="memory-leak"/, 'results of V2-primary keys are not compared');
  assert.equal(
    metricValue(text, 'tapio_result_comparison_skipped_total', {}),
    2,
    'the V2-primary and the unshadowed result',
  );

  const snapshotText = await readUntil(t, healthTopic, (v) => {
    const s = JSON.parse(v) as ComparisonSnapshot;
    return s.matched + s.missing + s.extra + s.differing === 5;
  });
  const snapshot = JSON.parse(snapshotText) as ComparisonSnapshot;
  assert.equal(snapshot.kind, 'comparison');
  assert.ok(!Number.isNaN(Date.parse(snapshot.at)));
  assert.deepEqual(
    { matched: snapshot.matched, missing: snapshot.missing, extra: snapshot.extra, differing: snapshot.differing },
    { matched: 2, missing: 1, extra: 1, differing: 1 },
  );
  assert.deepEqual(snapshot.byRule['crash-loop'], { matched: 1, missing: 0, extra: 0, differing: 1 });
  assert.deepEqual(snapshot.byRule['disk-pressure'], { matched: 0, missing: 1, extra: 1, differing: 0 });
  assert.deepEqual(snapshot.byRule['dns-failure-storm'], { matched: 1, missing: 0, extra: 0, differing: 0 });
});
