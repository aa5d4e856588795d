/**
 * Regression (integrity suite, poison input): an event stamped years ahead raised its scope keys'
 * watermarks (RULES.md, late events), so every later real event of those keys was late and their
 * incidents were never detected. The router now dead-letters events more than
 * correlation.maxFutureSkewMs ahead of its clock; far-past events stay valid input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryCodec, parseEventLine, sourceKey } from '@tapio/events';
import type { Event } from '@tapio/events';
import { DLQ_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { routesFor } from '@tapio/rules';
import { startRouter } from '@tapio/service-router';
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

const restart = (id: string, timestamp: number): Event =>
  parseEventLine(
    JSON.stringify({
      id,
      timestamp,
      source: 'kubernetes',
      type: 'pod.restart',
      entity: { namespace: 'shop', kind: 'pod', name: 'web-a', node: 'node-3' },
      attributes: { restart_count: 1, exit_code: 1 },
    }),
  );

test('router dead-letters an event stamped beyond the future skew and routes far-past ones', async (t) => {
  const tp = {
    input: await tempTopic(t, 'ff-in', 1),
    v1: await tempTopic(t, 'ff-v1', 1),
    v2: await tempTopic(t, 'ff-v2', 1),
    shadow: await tempTopic(t, 'ff-shadow', 1),
    control: await tempTopic(t, 'ff-control', 1),
    health: await tempTopic(t, 'ff-health', 1),
    dlq: await tempTopic(t, 'ff-dlq', 1),
  };
  const groupId = randomName('tapio-router-ff');
  const config = testConfig({ topics: { dlq: tp.dlq }, http: { port: 0 }, log: { level: 'silent' } });
  const now = Date.now();
  const events = [
    restart('future', now + 2 * config.correlation.maxFutureSkewMs),
    restart('past', 1_000_000),
    restart('r1', now - 60_000),
    restart('r2', now - 30_000),
    restart('r3', now),
  ];
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerEvent(tp.input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  await producer.send({
    topic: tp.input,
    acks: -1,
    messages: events.map((e) => ({ key: sourceKey(e), value: codec.encode(schemaId, e) })),
  });

  const router = await startService(
    'router',
    (ctx) =>
      startRouter(ctx, {
        inputTopic: tp.input,
        v1Topic: tp.v1,
        v2Topic: tp.v2,
        shadowTopic: tp.shadow,
        controlTopic: tp.control,
        healthTopic: tp.health,
        groupId,
      }),
    { config, logger: createLogger('router', 'silent') },
  );
  t.after(() => router.shutdown('test end'));

  const [dead] = await readTopic(t, tp.dlq, 1);
  assert.equal(dead?.headers[DLQ_HEADERS.reason], 'INVALID_EVENT');
  assert.match(dead?.headers[DLQ_HEADERS.message] ?? '', /maxFutureSkewMs/);
  await eventually(async () => (await committedTotal(t, groupId, tp.input)) === events.length, 20_000, 'all committed');
  const a = await admin(t);
  let routed = 0;
  for (const topic of [tp.v1, tp.v2]) for (const p of await a.fetchTopicOffsets(topic)) routed += Number(p.high);
  const expected = events.slice(1).reduce((n, e) => n + routesFor(e).length, 0);
  assert.equal(routed, expected, 'every event but the far-future one is routed, the far-past one included');
});
