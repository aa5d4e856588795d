/**
 * Shadow comparison end to end, in-process on temp topics: router with shadow at 50 % of the keys,
 * correlator-v1 (primary), correlator-v2 in the shadow role and the comparator. Only the V1 results
 * of shadowed keys are paired (the router marks their records `tapio-compared`, V1 carries the mark
 * onto the results); the others are skipped, not counted as `missing_in_v2`, which before read as a
 * mismatch rate near 100 % with shadow off and would have rolled a healthy rollout back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSink } from '@tapio/ingest';
import { ROUTING_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { ROUTING_CONTROL_KEY, defaultRoutingConfig } from '@tapio/routing';
import { startService } from '@tapio/runtime';
import { generateStream } from '@tapio/scenarios';
import { startComparator } from '@tapio/service-comparator';
import { startCorrelatorV1 } from '@tapio/service-correlator-v1';
import { startCorrelatorV2 } from '@tapio/service-correlator-v2';
import { startRouter } from '@tapio/service-router';
import { eventually, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

test('comparator pairs the V1 results of shadowed keys only: no mismatch from unshadowed keys', async (t) => {
  const [control, health, input, v1Topic, v2Topic, shadowTopic, results, shadowResults, dlq] = await Promise.all([
    tempTopic(t, 'sc-control', 1),
    tempTopic(t, 'sc-health', 1),
    tempTopic(t, 'sc-events', 1),
    tempTopic(t, 'sc-v1', 3),
    tempTopic(t, 'sc-v2', 3),
    tempTopic(t, 'sc-shadow', 3),
    tempTopic(t, 'sc-results', 3),
    tempTopic(t, 'sc-results-shadow', 3),
    tempTopic(t, 'sc-dlq', 1),
  ]);
  const config = testConfig({
    topics: { control, health, dlq },
    comparator: { windowMs: 5000, healthIntervalMs: 500 },
    correlator: { healthIntervalMs: 500 },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  // All keys on V1, half of them also shadowed, from the first epoch (nothing to warm up from).
  const routing = {
    ...defaultRoutingConfig(config),
    epoch: 1,
    strategy: 'percentage' as const,
    v2Percentage: 0,
    features: {},
    shadow: { enabled: true, percentage: 50 },
  };
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  await producer.send({
    topic: control,
    acks: -1,
    messages: [{ key: ROUTING_CONTROL_KEY, value: JSON.stringify(routing) }],
  });

  const quiet = (name: string) => ({ config, logger: createLogger(name, 'silent') });
  const router = await startService(
    'router',
    (ctx) =>
      startRouter(ctx, {
        inputTopic: input,
        v1Topic,
        v2Topic,
        shadowTopic,
        controlTopic: control,
        healthTopic: health,
        groupId: randomName('tapio-router'),
      }),
    quiet('router'),
  );
  t.after(() => router.shutdown('test end'));
  const v1 = await startService(
    'correlator-v1',
    (ctx) => startCorrelatorV1(ctx, { inputTopic: v1Topic, outputTopic: results, groupId: randomName('tapio-v1') }),
    quiet('correlator-v1'),
  );
  t.after(() => v1.shutdown('test end'));
  const shadow = await startService(
    'correlator-v2-shadow',
    (ctx) =>
      startCorrelatorV2(ctx, {
        role: 'shadow',
        inputTopic: shadowTopic,
        outputTopic: shadowResults,
        groupId: randomName('tapio-v2-shadow'),
      }),
    quiet('correlator-v2-shadow'),
  );
  t.after(() => shadow.shutdown('test end'));
  const comparator = await startService(
    'comparator',
    (ctx) =>
      startComparator(ctx, {
        primaryTopic: results,
        shadowTopic: shadowResults,
        healthTopic: health,
        groupId: randomName('tapio-comparator'),
      }),
    quiet('comparator'),
  );
  t.after(() => comparator.shutdown('test end'));
  await eventually(() => router.service.health()['epoch'] === 1, 20_000, 'router on epoch 1');

  // Event time ends at about now (the allowed lateness is measured against the wall clock).
  const shape = { seed: 5, scenarios: 'all' as const, incidentsPerScenario: 3, durationMs: 5 * 60_000 };
  const probe = generateStream({ ...shape, startMs: 0, noiseEvents: 0 });
  const lastEventMs = Math.max(shape.durationMs, ...probe.events.map((e) => e.timestamp));
  const stream = generateStream({ ...shape, startMs: Date.now() - lastEventMs - 1000, noiseEvents: 400 });
  const sink = new EventSink(config, kafka(), input);
  await sink.open();
  t.after(() => sink.close());
  for (let i = 0; i < stream.events.length; i += 50) await sink.send(stream.events.slice(i, i + 50));

  // Settled: every service's counts unchanged for 4 s and nothing waiting in the comparator's join.
  const h = (s: { service: { health(): Record<string, unknown> } }) => s.service.health();
  let last = '';
  let sameSince = Date.now();
  await eventually(
    () => {
      const { at: _at, ...c } = h(comparator);
      const now = JSON.stringify([h(router)['routed'], h(v1)['results'], h(shadow)['results'], c]);
      if (now !== last) {
        last = now;
        sameSince = Date.now();
        return false;
      }
      return (
        Number(h(v1)['results']) > 0 &&
        c['pendingPrimary'] === 0 &&
        c['pendingShadow'] === 0 &&
        Date.now() - sameSince > 4000
      );
    },
    90_000,
    'pipeline settled',
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last [routed, v1 results, shadow results, comparator]: ${last}`);
  });

  const c = h(comparator);
  const v1Results = Number(h(v1)['results']);
  const primary = await readTopic(t, results, v1Results);
  const marked = primary.filter((r) => r.headers[ROUTING_HEADERS.compared] === '1').length;
  assert.ok(marked > 0 && marked < primary.length, `some V1 results marked compared (${marked} of ${primary.length})`);
  assert.deepEqual(
    { matched: c['matched'], missing: c['missing'], extra: c['extra'], differing: c['differing'] },
    { matched: marked, missing: 0, extra: 0, differing: 0 },
    'the marked V1 results pair with the shadow results, one for one',
  );
  assert.equal(c['skippedPrimary'], primary.length - marked, 'the rest are skipped, not missing');
  assert.equal(Number(h(shadow)['results']), marked, 'the shadow engine published as many as were compared');
});
