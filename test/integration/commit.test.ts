/**
 * BackgroundCommitter (packages/runtime): resolved offsets are committed off the batch path, never
 * one commit per batch, only what was resolved, and everything resolved is committed on stop, also
 * by a batch that finishes while the consumer stops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { createLogger } from '@tapio/observability';
import { BackgroundCommitter } from '@tapio/runtime';
import type { EachBatchPayload } from '@tapio/kafka';
import { committedTotal, eventually, kafka, randomName, tempTopic } from '../helpers/stack';

const logger = createLogger('commit-test', 'silent');

async function produce(t: TestContext, topic: string, n: number, perRequest: number): Promise<void> {
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  for (let i = 0; i < n; i += perRequest) {
    const messages = Array.from({ length: Math.min(perRequest, n - i) }, (_, j) => ({
      key: `k${(i + j) % 11}`,
      value: `v${i + j}`,
    }));
    await producer.send({ topic, acks: -1, messages });
  }
}

test('resolved offsets are committed in the background, not per batch, and all of them on stop', async (t) => {
  const N = 300;
  const topic = await tempTopic(t, 'commit-bg', 4);
  await produce(t, topic, N, 10);
  const groupId = randomName('commit-bg');
  const consumer = kafka().consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    maxBytesPerPartition: 512,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  // An interval far longer than the test: nothing may be committed before stop().
  const committer = new BackgroundCommitter(consumer, 3_600_000, logger);
  let commits = 0;
  consumer.on(consumer.events.COMMIT_OFFSETS, () => {
    commits++;
  });
  let seen = 0;
  let batches = 0;
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 2,
    eachBatch: async (payload) => {
      batches++;
      seen += payload.batch.messages.length;
      const last = payload.batch.messages[payload.batch.messages.length - 1];
      if (last !== undefined) payload.resolveOffset(last.offset);
      await committer.resolved(payload);
    },
  });
  await eventually(() => seen >= N, 30_000, `all ${N} records consumed`);
  assert.ok(batches > 4, `several batches per partition (${batches})`);
  assert.equal(commits, 0, 'no commit per batch');
  assert.equal(await committedTotal(t, groupId, topic), 0);

  await committer.stop();
  await consumer.disconnect();
  assert.equal(commits, 1, 'one commit for every resolved offset');
  assert.equal(await committedTotal(t, groupId, topic), N);
});

test('only resolved offsets are committed, and a batch ending during the stop commits before the group is left', async (t) => {
  const topic = await tempTopic(t, 'commit-stop', 1);
  await produce(t, topic, 50, 50);
  const groupId = randomName('commit-stop');
  const consumer = kafka().consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const committer = new BackgroundCommitter(consumer, 3_600_000, logger);
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  let inBatch: EachBatchPayload | undefined;
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async (payload) => {
      inBatch = payload;
      await released;
      // Half of the batch is done (its outputs acknowledged); the rest is not.
      const half = payload.batch.messages[24];
      if (half !== undefined) payload.resolveOffset(half.offset);
      await committer.resolved(payload);
    },
  });
  await eventually(() => inBatch !== undefined, 30_000, 'the batch to start');
  const stopped = (async () => {
    await committer.stop();
    await consumer.disconnect();
  })();
  // The stop is under way (the runner no longer runs) when the batch finishes.
  await eventually(() => inBatch?.isRunning() === false, 30_000, 'the stop to begin');
  release();
  await stopped;
  assert.equal(await committedTotal(t, groupId, topic), 25);
});
