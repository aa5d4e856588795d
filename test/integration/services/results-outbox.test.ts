import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { V1Engine } from '@tapio/engine-v1';
import { RESULT_SCHEMA, RegistryCodec, WireDecoder } from '@tapio/events';
import type { Result } from '@tapio/events';
import { ROUTING_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { RULES, routesFor } from '@tapio/rules';
import { startService } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';
import { generateStream } from '@tapio/scenarios';
import { startCorrelatorV1 } from '@tapio/service-correlator-v1';
import { startCorrelatorV2 } from '@tapio/service-correlator-v2';
import { admin, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

// Root cause (issue 19): a correlator evaluated a record (starting the rule's cooldown, storing its
// event) and only then produced the results; when that produce failed, the retry evaluated the record
// again: its event counted twice, the cooldown suppressed the result, and the offset moved on without it.
const view = (r: Result): string =>
  [r.ruleId, r.entityKey, r.triggerEventId, r.severity, r.confidence, r.evidence.join(' ')].join('|');

async function runWithFailingProduces(
  t: TestContext,
  engine: 'v1' | 'v2',
): Promise<{ found: string[]; expected: string[]; failed: number }> {
  const stream = generateStream({
    seed: 19,
    startMs: 1_750_000_000_000,
    scenarios: 'all',
    incidentsPerScenario: 3,
    noiseEvents: 300,
    durationMs: 3_600_000,
  });
  // What the router would send: one record per (event, scope key), all to this engine.
  const routed = stream.events.flatMap((event) => routesFor(event, RULES).map((route) => ({ event, route })));
  const reference = new V1Engine({ allowedLatenessMs: 60_000, ruleTimeoutMs: 1e9 });
  const expected = routed
    .flatMap(({ event, route }) => reference.processRouted(event, route.scopeKey, route.ruleIds))
    .map(view);

  // One input partition: with several, a partition held back by the retries falls behind the others
  // in event time, and the engines free a key idle for keyIdleMs (1 h) by the newest time of any
  // partition: a separate problem (noted in issue 19's closing note), not what this test is about.
  const input = await tempTopic(t, `outbox-${engine}-in`, 1);
  const output = await tempTopic(t, `outbox-${engine}-out`, 2);
  const config = testConfig({ http: { port: 0 }, log: { level: 'silent' }, correlator: { healthIntervalMs: 60_000 } });
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerEvent(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  await producer.send({
    topic: input,
    acks: -1,
    messages: routed.map(({ event, route }) => ({
      key: route.scopeKey,
      value: codec.encode(schemaId, event),
      headers: { [ROUTING_HEADERS.rules]: route.ruleIds.join(','), [ROUTING_HEADERS.scopeKey]: route.scopeKey },
    })),
  });

  // The first three produces of results fail, then every other one, eight in all (a fault that cannot
  // be caused for real at a chosen moment): the same held output is re-sent several times over.
  let attempts = 0;
  let failed = 0;
  const resultsSendFault = (): Error | undefined => {
    const attempt = attempts++;
    if (failed >= 8 || (failed >= 3 && attempt % 2 === 1)) return undefined;
    failed++;
    return new Error('injected produce failure');
  };
  const groupId = randomName(`outbox-${engine}`);
  const start = (ctx: ServiceContext): Promise<RunningService> =>
    engine === 'v1'
      ? startCorrelatorV1(ctx, { inputTopic: input, outputTopic: output, groupId, resultsSendFault })
      : startCorrelatorV2(ctx, { inputTopic: input, outputTopic: output, groupId, resultsSendFault });
  const service = await startService(`correlator-${engine}`, start, {
    config,
    logger: createLogger(`correlator-${engine}`, 'silent'),
  });
  t.after(() => service.shutdown('test end'));

  await readTopic(t, output, expected.length, 90_000);
  // Anything beyond the expected count (a result counted twice) arrives with them or shortly after.
  await new Promise((r) => setTimeout(r, 2000));
  const ends = await (await admin(t)).fetchTopicOffsets(output);
  const all = await readTopic(
    t,
    output,
    ends.reduce((n, p) => n + Number(p.high), 0),
  );
  const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
  await decoder.prepare(all.map((r) => r.value));
  // The same result id re-sent after a failure that the broker did store is a redelivery, not a count.
  const byId = new Map(all.map((r) => decoder.decode(r.value)).map((r) => [r.id, view(r)]));
  return { found: [...byId.values()].sort(), expected: expected.sort(), failed };
}

for (const engine of ['v1', 'v2'] as const) {
  test(`correlator-${engine}: failed result produces are re-sent, not re-evaluated: no loss, no double count`, async (t) => {
    const { found, expected, failed } = await runWithFailingProduces(t, engine);
    assert.ok(failed >= 3, `only ${failed} produces failed`);
    assert.ok(expected.length >= 30, `the stream has ${expected.length} detections`);
    assert.deepEqual(found, expected);
  });
}
