/**
 * Regression (integrity suite, SIGTERM of a V2 correlator): a stop in the middle of a batch ended
 * the evaluation loop early but resolved the batch's LAST offset, so the records after the stop
 * point were committed without ever being evaluated. Only evaluated records may be committed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryCodec, parseEventLine } from '@tapio/events';
import { ROUTING_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import type { StartedService } from '@tapio/runtime';
import { startCorrelatorV2 } from '@tapio/service-correlator-v2';
import { committedTotal, eventually, kafka, randomName, tempTopic, testConfig } from '../../helpers/stack';

const T0 = 1_750_000_000_000;
const N = 400;

test('correlator-v2 stopped mid-batch commits only the records it evaluated', async (t) => {
  const input = await tempTopic(t, 'v2stop-in', 1);
  const output = await tempTopic(t, 'v2stop-out', 1);
  const dlq = await tempTopic(t, 'v2stop-dlq', 1);
  const health = await tempTopic(t, 'v2stop-health', 1);
  const groupId = randomName('tapio-v2-stop');
  const config = testConfig({ topics: { dlq, health }, http: { port: 0 }, log: { level: 'silent' } });
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerEvent(input);
  const key = 'node/node-9';
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  // One produce request, one partition: the records arrive as one batch.
  await producer.send({
    topic: input,
    acks: -1,
    messages: Array.from({ length: N }, (_, i) => ({
      key,
      value: codec.encode(
        schemaId,
        parseEventLine(
          JSON.stringify({
            id: `u${i}`,
            timestamp: T0 + i * 1000,
            source: 'metrics',
            type: 'cpu.usage',
            entity: { kind: 'node', name: 'node-9', node: 'node-9' },
            attributes: { usage_ratio: 0.1 },
          }),
        ),
      ),
      headers: { [ROUTING_HEADERS.rules]: 'high-cpu-pattern', [ROUTING_HEADERS.scopeKey]: key },
    })),
  });

  let evaluated = 0;
  let service: StartedService | undefined;
  let stopping: Promise<void> | undefined;
  service = await startService(
    'correlator-v2',
    (ctx) =>
      startCorrelatorV2(ctx, {
        inputTopic: input,
        outputTopic: output,
        groupId,
        faultInjector: () => {
          evaluated++;
          // Slow records (the loop yields at its 1 s heartbeats), so the stop lands mid-batch.
          const until = Date.now() + 10;
          while (Date.now() < until) {
            // busy
          }
          if (evaluated === 20) stopping = service?.shutdown('SIGTERM mid-batch');
        },
      }),
    { config, logger: createLogger('correlator-v2', 'silent') },
  );
  await eventually(() => stopping !== undefined, 30_000, 'the stop to start');
  await stopping;
  assert.ok(evaluated < N, `the stop landed mid-batch (${evaluated} evaluated)`);
  const committed = await committedTotal(t, groupId, input);
  assert.ok(committed <= evaluated, `committed ${committed} offsets but evaluated only ${evaluated} records`);

  // A restarted member picks up exactly where the evaluation stopped.
  service = await startService(
    'correlator-v2',
    (ctx) => startCorrelatorV2(ctx, { inputTopic: input, outputTopic: output, groupId }),
    { config, logger: createLogger('correlator-v2', 'silent') },
  );
  const second = service;
  t.after(() => second.shutdown('test end'));
  await eventually(async () => (await committedTotal(t, groupId, input)) === N, 30_000, 'all offsets committed');
});
