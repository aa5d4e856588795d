import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { HealthReporter } from '@tapio/runtime';
import type { Producer } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { admin, kafka, randomName, tempTopic } from '../helpers/stack';

test('health reporter: one snapshot at a time, and none sent once stop() has returned', async (t) => {
  const healthTopic = await tempTopic(t, 'health-reporter', 1);
  const inputTopic = await tempTopic(t, 'health-input', 2);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  // Counts the reporter's sends and how many overlap (a tick every millisecond, each a lag query and
  // a produce round trip: ticks that each started a snapshot would overlap at once).
  let sends = 0;
  let active = 0;
  let maxActive = 0;
  const counting = {
    send: async (record: Parameters<Producer['send']>[0]) => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      try {
        return await producer.send(record);
      } finally {
        active -= 1;
        sends += 1;
      }
    },
  } as unknown as Producer;
  const reporter = new HealthReporter({
    kafka: kafka(),
    producer: counting,
    topic: healthTopic,
    intervalMs: 1,
    groupId: randomName('health-group'),
    inputTopic,
    snapshot: (lag) => ({ instance: 'test', lag }),
    logger: createLogger('health-test', 'silent'),
  });
  await reporter.start();
  await sleep(400);
  await reporter.report();
  await reporter.stop();
  const atStop = sends;
  assert.equal(active, 0, 'a snapshot still in flight after stop()');
  await sleep(500);
  assert.equal(sends, atStop, 'a snapshot was sent after stop()');
  assert.ok(atStop >= 2, `snapshots sent: ${atStop}`);
  assert.equal(maxActive, 1, 'snapshots overlapped');
  // They reached the topic.
  const a = await admin(t);
  const [p] = await a.fetchTopicOffsets(healthTopic);
  assert.equal(Number(p!.high), atStop);
});
