import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryCodec, RESULT_SCHEMA, WireDecoder, EVENT_SCHEMA, sourceKey } from '@tapio/events';
import type { Event, Result } from '@tapio/events';
import { DLQ_HEADERS, ROUTING_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import {
  ROUTING_CONTROL_KEY,
  defaultRoutingConfig,
  encodeRoutingConfig,
  patchRoutingConfig,
  planRoutes,
  readRoutingConfig,
  writeRoutingConfig,
} from '@tapio/routing';
import type { RoutingConfig } from '@tapio/routing';
import { startService } from '@tapio/runtime';
import type { StartedService } from '@tapio/runtime';
import { V1Engine } from '@tapio/engine-v1';
import { generateStream } from '@tapio/scenarios';
import { startCorrelatorV1 } from '@tapio/service-correlator-v1';
import { startRouter } from '@tapio/service-router';
import type { RouterOptions } from '@tapio/service-router';
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

interface Topics {
  input: string;
  v1: string;
  v2: string;
  shadow: string;
  control: string;
  health: string;
  dlq: string;
}

async function topics(t: TestContext, inputPartitions: number, enginePartitions: number): Promise<Topics> {
  // One after the other: the helper's admins are cleaned up reliably only when not created in parallel.
  return {
    input: await tempTopic(t, 'rt-in', inputPartitions),
    v1: await tempTopic(t, 'rt-v1', enginePartitions),
    v2: await tempTopic(t, 'rt-v2', enginePartitions),
    shadow: await tempTopic(t, 'rt-shadow', enginePartitions),
    control: await tempTopic(t, 'rt-control', 1),
    health: await tempTopic(t, 'rt-health', 1),
    dlq: await tempTopic(t, 'rt-dlq', 1),
  };
}

async function startRouterFor(
  t: TestContext,
  tp: Topics,
  groupId: string,
  router: Record<string, unknown> = {},
): Promise<StartedService> {
  const config = testConfig({ topics: { dlq: tp.dlq }, http: { port: 0 }, log: { level: 'silent' }, router });
  const options: RouterOptions = {
    inputTopic: tp.input,
    v1Topic: tp.v1,
    v2Topic: tp.v2,
    shadowTopic: tp.shadow,
    controlTopic: tp.control,
    healthTopic: tp.health,
    groupId,
  };
  const started = await startService('router', (ctx) => startRouter(ctx, options), {
    config,
    logger: createLogger('router', 'silent'),
  });
  let stopped = false;
  t.after(() => (stopped ? undefined : started.shutdown('test end')));
  const shutdown = started.shutdown.bind(started);
  return {
    ...started,
    shutdown: async (reason: string) => {
      stopped = true;
      await shutdown(reason);
    },
  };
}

const base = defaultRoutingConfig(testConfig());
const doc = (patch: Record<string, unknown>, epoch: number): RoutingConfig =>
  patchRoutingConfig({ ...base, epoch, features: {} }, patch);

async function produceEvents(
  topic: string,
  events: readonly Event[],
  extra: { at: number; value: Buffer }[] = [],
  sendSize = 500,
) {
  const codec = new RegistryCodec({ url: testConfig().registry.url });
  const schemaId = await codec.registerEvent(topic);
  const bytes = new Map(events.map((e) => [e.id, codec.encode(schemaId, e)]));
  const messages: { key: string; value: Buffer }[] = events.map((e) => ({
    key: sourceKey(e),
    value: bytes.get(e.id)!,
  }));
  for (const x of extra) messages.splice(x.at, 0, { key: 'poison', value: x.value });
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < messages.length; i += sendSize) {
    await producer.send({ topic, acks: -1, messages: messages.slice(i, i + sendSize) });
  }
  await producer.disconnect();
  return { codec, bytes };
}

async function metric(service: StartedService, pattern: RegExp): Promise<string | undefined> {
  const text = await fetch(`${service.http.url}/metrics`).then((r) => r.text());
  return pattern.exec(text)?.[1];
}

test('router: re-keys by scope with rule ids and original bytes, dead-letters poison, applies config epochs', async (t) => {
  const tp = await topics(t, 3, 3);
  const groupId = randomName('tapio-router');
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());

  const c1 = doc({ strategy: 'percentage', v2Percentage: 50, shadow: { enabled: true, percentage: 30 } }, 0);
  const written1 = await writeRoutingConfig(producer, tp.control, c1);
  assert.equal(written1.epoch, 1);

  const stream = generateStream({ seed: 3, startMs: T0, scenarios: 'all', noiseEvents: 400 });
  const events = stream.events;
  const { codec, bytes } = await produceEvents(tp.input, events, [{ at: 100, value: Buffer.from('{"not":"avro"}') }]);

  const router = await startRouterFor(t, tp, groupId);
  assert.equal(router.service.health()['epoch'], 1, 'the config on the control topic is read before routing');

  // What the router must emit, by target.
  const expected = { v1: [] as string[], v2: [] as string[], 'v2-shadow': [] as string[] };
  const state = { config: written1, v1Lag: 0, handoffs: [] };
  for (const e of events) {
    for (const p of planRoutes(e, state, 'closed', Date.now())) {
      expected[p.target].push(`${e.id} ${p.scopeKey} ${p.ruleIds.join(',')}`);
    }
  }
  assert.ok(expected.v1.length > 50 && expected.v2.length > 50 && expected['v2-shadow'].length > 10);
  const decoder = new WireDecoder<Event>(codec, EVENT_SCHEMA);
  for (const [target, topic] of [
    ['v1', tp.v1],
    ['v2', tp.v2],
    ['v2-shadow', tp.shadow],
  ] as const) {
    const records = await readTopic(t, topic, expected[target].length);
    await decoder.prepare(records.map((r) => r.value));
    const seen = records.map((r) => {
      const e = decoder.decode(r.value);
      assert.equal(r.key, r.headers[ROUTING_HEADERS.scopeKey], 'keyed by the scope key');
      assert.ok(r.value!.equals(bytes.get(e.id)!), 'the original value bytes');
      assert.equal(r.headers[ROUTING_HEADERS.epoch], '1');
      assert.match(r.headers[ROUTING_HEADERS.source] ?? '', new RegExp(`^${tp.input}/\\d@\\d+$`));
      assert.equal(r.headers[ROUTING_HEADERS.suppressUntil], undefined);
      return `${e.id} ${r.key} ${r.headers[ROUTING_HEADERS.rules]}`;
    });
    assert.deepEqual(seen.sort(), [...expected[target]].sort(), `records on ${target}`);
  }
  const dead = await readTopic(t, tp.dlq, 1);
  assert.equal(dead[0]!.headers[DLQ_HEADERS.reason], 'BAD_MAGIC_BYTE');
  assert.equal(dead[0]!.value?.toString(), '{"not":"avro"}');

  for (const target of ['v1', 'v2', 'v2-shadow'] as const) {
    const selected = await metric(
      router,
      new RegExp(`tapio_engine_selection_count\\{engine="${target}",service="router"\\} (\\d+)`),
    );
    assert.equal(Number(selected), expected[target].length, `selection count ${target}`);
  }

  // A newer epoch reaches the running router (the latency is reported, not asserted).
  const writtenAt = Date.now();
  const written2 = await writeRoutingConfig(producer, tp.control, patchRoutingConfig(written1, { v2Percentage: 100 }));
  await eventually(() => router.service.health()['epoch'] === 2, 10_000, 'epoch 2 applied');
  const appliedAt = router.service.health()['configAppliedAtMs'] as number;
  t.diagnostic(`config epoch 2 applied ${appliedAt - writtenAt} ms after it was written`);
  assert.equal(written2.epoch, 2);
  assert.equal(await metric(router, /tapio_routing_config_epoch\{service="router"\} (\d+)/), '2');

  // Later events are routed under epoch 2 (everything to V2), and the later poison is dead-lettered too.
  const late = generateStream({
    seed: 4,
    startMs: T0 + 7_200_000,
    scenarios: ['crash-loop:incident'],
    noiseEvents: 0,
  }).events;
  const lateBytes = await produceEvents(tp.input, late, [{ at: 1, value: Buffer.from([0, 0, 0]) }]);
  assert.ok(lateBytes.bytes.size > 0);
  await eventually(
    async () => (await committedTotal(t, groupId, tp.input)) === events.length + late.length + 2,
    20_000,
    'every input offset committed',
  );
  const v2Now = await readTopic(t, tp.v2, expected.v2.length + late.length);
  const fromLate = v2Now.filter((r) => r.headers[ROUTING_HEADERS.epoch] === '2');
  assert.ok(fromLate.length >= late.length, 'routed under epoch 2');
  assert.equal((await readTopic(t, tp.dlq, 2))[1]!.headers[DLQ_HEADERS.reason], 'TRUNCATED_RECORD');

  // An invalid document is rejected with a metric; a stale epoch is ignored; the last good stays.
  await producer.send({
    topic: tp.control,
    acks: -1,
    messages: [
      { key: ROUTING_CONTROL_KEY, value: encodeRoutingConfig({ ...written2, epoch: 3, v2Percentage: 500 }) },
      { key: ROUTING_CONTROL_KEY, value: encodeRoutingConfig({ ...written1 }) },
    ],
  });
  await eventually(
    async () =>
      (await metric(router, /tapio_routing_config_rejected_total\{reason="STALE_EPOCH",service="router"\} (\d+)/)) ===
      '1',
    10_000,
    'stale epoch counted',
  );
  assert.equal(
    await metric(router, /tapio_routing_config_rejected_total\{reason="INVALID_CONFIG",service="router"\} (\d+)/),
    '1',
  );
  assert.equal(router.service.health()['epoch'], 2);
  assert.equal((await readRoutingConfig(kafka(), tp.control))?.epoch, 2, 'readRoutingConfig: latest valid');

  // A restarted router reads the latest good config before routing.
  await router.shutdown('restart');
  const again = await startRouterFor(t, tp, groupId);
  assert.equal(again.service.health()['epoch'], 2);
  await again.shutdown('done');
});

interface PipelineShape {
  inputPartitions: number;
  enginePartitions: number;
  correlators: number;
  routers: number;
  /** config.router overrides for every router. */
  router?: Record<string, unknown>;
  /** Events per produce request (one record batch per partition each). Default 500. */
  sendSize?: number;
}

/**
 * The events are produced first (a backlog), then V1 correlators and routers start; returns the
 * detections as `ruleId entityKey triggerEventId`.
 */
async function runPipeline(t: TestContext, events: readonly Event[], shape: PipelineShape): Promise<Set<string>> {
  const tp = await topics(t, shape.inputPartitions, shape.enginePartitions);
  const results = await tempTopic(t, 'rt-results', 2);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  await writeRoutingConfig(producer, tp.control, doc({ strategy: 'percentage', v2Percentage: 0 }, 0));
  const { codec } = await produceEvents(tp.input, events, [], shape.sendSize);

  const v1Group = randomName('tapio-v1');
  const config = testConfig({ topics: { dlq: tp.dlq }, http: { port: 0 }, log: { level: 'silent' } });
  for (let i = 0; i < shape.correlators; i++) {
    const c = await startService(
      'correlator-v1',
      (ctx) => startCorrelatorV1(ctx, { inputTopic: tp.v1, outputTopic: results, groupId: v1Group }),
      { config, logger: createLogger('correlator-v1', 'silent') },
    );
    t.after(() => c.shutdown('test end'));
  }
  const routerGroup = randomName('tapio-router');
  for (let i = 0; i < shape.routers; i++) await startRouterFor(t, tp, routerGroup, shape.router);
  await eventually(
    async () => (await committedTotal(t, routerGroup, tp.input)) === events.length,
    60_000,
    'router committed every event',
  );
  const a = await admin(t);
  const v1Count = (await a.fetchTopicOffsets(tp.v1)).reduce((s, p) => s + Number(p.high), 0);
  await eventually(
    async () => (await committedTotal(t, v1Group, tp.v1)) === v1Count,
    40_000,
    'correlators committed every routed record',
  );
  const n = (await a.fetchTopicOffsets(results)).reduce((s, p) => s + Number(p.high), 0);
  const records = await readTopic(t, results, n);
  const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
  await decoder.prepare(records.map((r) => r.value));
  return new Set(
    records.map((r) => {
      const res = decoder.decode(r.value);
      return `${res.ruleId} ${res.entityKey} ${res.triggerEventId}`;
    }),
  );
}

function referenceDetections(events: readonly Event[]): Set<string> {
  const reference = new V1Engine();
  return new Set(
    events.flatMap((e) => reference.process(e)).map((r) => `${r.ruleId} ${r.entityKey} ${r.triggerEventId}`),
  );
}

test('scale invariance: router + V1 correlator give the same results with 1 and 3 consumers, 1 and 4 partitions', async (t) => {
  const stream = generateStream({ seed: 11, startMs: T0, scenarios: 'all', noiseEvents: 600 });
  const expected = referenceDetections(stream.events);
  assert.ok(expected.size >= 10, `reference detections: ${expected.size}`);
  const one = await runPipeline(t, stream.events, {
    inputPartitions: 1,
    enginePartitions: 1,
    correlators: 1,
    routers: 1,
  });
  const three = await runPipeline(t, stream.events, {
    inputPartitions: 1,
    enginePartitions: 4,
    correlators: 3,
    routers: 1,
  });
  assert.deepEqual([...one].sort(), [...expected].sort(), '1 partition, 1 consumer');
  assert.deepEqual([...three].sort(), [...expected].sort(), '4 partitions, 3 consumers');
});

// A backlog on a multi-partition input: read batch by batch, each partition's batch spans minutes of
// event time (small fetches here make that happen with a small stream). Without the router's
// event-time alignment, a node's events from other partitions reach the engine minutes late and are
// dropped; with it, the detections are the reference's.
test('scale invariance: a 6-partition input backlog gives the reference detections with 1 and with 3 routers', async (t) => {
  const stream = generateStream({ seed: 12, startMs: T0, scenarios: 'all', noiseEvents: 1500 });
  const expected = referenceDetections(stream.events);
  assert.ok(expected.size >= 10, `reference detections: ${expected.size}`);
  // Record batches of ~10 events (~2 KB) fetched 4 KB per partition at a time: each batch of a
  // partition spans a few minutes of this 1-hour stream.
  const small = { fetchMaxBytesPerPartition: 4096 };
  const sendSize = 60;
  const unaligned = await runPipeline(t, stream.events, {
    inputPartitions: 6,
    enginePartitions: 4,
    correlators: 1,
    routers: 1,
    router: { ...small, alignPartitions: false },
    sendSize,
  });
  const missed = [...expected].filter((d) => !unaligned.has(d));
  assert.ok(missed.length > 0, 'without alignment this backlog loses detections (else the test shows nothing)');

  const one = await runPipeline(t, stream.events, {
    inputPartitions: 6,
    enginePartitions: 4,
    correlators: 2,
    routers: 1,
    router: small,
    sendSize,
  });
  assert.deepEqual([...one].sort(), [...expected].sort(), '6 input partitions, 1 router');
  const three = await runPipeline(t, stream.events, {
    inputPartitions: 6,
    enginePartitions: 4,
    correlators: 3,
    routers: 3,
    router: small,
    sendSize,
  });
  assert.deepEqual([...three].sort(), [...expected].sort(), '6 input partitions, 3 routers');
});
