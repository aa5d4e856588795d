import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { createTopicsReady, ensureTopics, topicSpecs } from '@tapio/kafka';
import { admin, kafka, randomName, tempTopic, testConfig } from '../helpers/stack';

async function consumeN(
  t: TestContext,
  topic: string,
  groupId: string,
  n: number,
  fromBeginning = true,
): Promise<{ key: string; value: string; offset: string; partition: number }[]> {
  const consumer = kafka().consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1000 });
  t.after(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning });
  const seen: { key: string; value: string; offset: string; partition: number }[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${seen.length}/${n} messages`)), 30_000);
    consumer
      .run({
        autoCommit: false,
        eachMessage: async ({ message, partition }) => {
          seen.push({
            key: message.key?.toString() ?? '',
            value: message.value?.toString() ?? '',
            offset: message.offset,
            partition,
          });
          await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
          if (seen.length === n) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return seen;
}

test('kafkajs 2.2.4 produces idempotently with acks=all, joins a group, consumes and commits', async (t) => {
  const topic = await tempTopic(t, 'kafka-roundtrip', 3);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  const messages = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
  const sent = await producer.send({ topic, acks: -1, messages });
  assert.ok(sent.every((r) => r.errorCode === 0));

  const groupId = randomName('group');
  const first = await consumeN(t, topic, groupId, 30);
  assert.deepEqual(first.map((m) => m.value).sort(), messages.map((m) => m.value).sort());
  // Same key, same partition: per-key order is what the engines rely on.
  const partitionOf = new Map<string, number>();
  for (const m of first) {
    assert.equal(partitionOf.get(m.key) ?? m.partition, m.partition);
    partitionOf.set(m.key, m.partition);
  }

  const a = await admin(t);
  const committed = await a.fetchOffsets({ groupId, topics: [topic] });
  const total = committed[0]!.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
  assert.equal(total, 30, 'the group committed every offset');

  // A new member of the same group resumes after the committed offsets: only new messages arrive.
  await producer.send({ topic, acks: -1, messages: [{ key: 'k1', value: 'after-commit' }] });
  const second = await consumeN(t, topic, groupId, 1);
  assert.deepEqual(
    second.map((m) => m.value),
    ['after-commit'],
  );
});

test('ensureTopics creates every pipeline topic once, with compaction on control', async (t) => {
  const p = randomName('ens');
  const names = {
    events: `${p}.events`,
    eventsV1: `${p}.events.v1`,
    eventsV2: `${p}.events.v2`,
    eventsV2Shadow: `${p}.events.v2.shadow`,
    results: `${p}.results`,
    resultsShadow: `${p}.results.shadow`,
    resultsDeduped: `${p}.results.deduped`,
    control: `${p}.control`,
    health: `${p}.health`,
    dlq: `${p}.events.dlq`,
  };
  const config = testConfig({ topics: { ...names, eventPartitions: 4, resultPartitions: 2 } });
  const a = await admin(t);
  t.after(() => a.deleteTopics({ topics: Object.values(names) }).catch(() => undefined));

  const first = await ensureTopics(a, topicSpecs(config));
  assert.deepEqual(new Set(first.map((o) => o.action)), new Set(['created']));
  assert.equal(first.length, 10);
  const second = await ensureTopics(a, topicSpecs(config));
  assert.deepEqual(new Set(second.map((o) => o.action)), new Set(['exists']));

  const meta = await a.fetchTopicMetadata({ topics: [names.events, names.results, names.control] });
  const partitions = Object.fromEntries(meta.topics.map((tp) => [tp.name, tp.partitions.length]));
  assert.deepEqual(partitions, { [names.events]: 4, [names.results]: 2, [names.control]: 1 });

  const configs = await a.describeConfigs({
    resources: [{ type: 2, name: names.control, configNames: ['cleanup.policy'] }],
    includeSynonyms: false,
  });
  assert.equal(configs.resources[0]!.configEntries[0]!.configValue, 'compact');

  // Raising the partition count of an existing topic adds partitions.
  const grown = testConfig({ topics: { ...names, eventPartitions: 6, resultPartitions: 2 } });
  const third = await ensureTopics(a, topicSpecs(grown));
  assert.equal(third.find((o) => o.topic === names.events)!.action, 'partitions-added');
  const after = await a.fetchTopicMetadata({ topics: [names.events] });
  assert.equal(after.topics[0]!.partitions.length, 6);
});

test('createTopicsReady returns only when every partition has a leader; false when the topic already existed', async (t) => {
  const a = await admin(t);
  const names = [randomName('ready-a'), randomName('ready-b')];
  t.after(() => a.deleteTopics({ topics: names }).catch(() => undefined));
  // Several at once, straight into a metadata request of a fresh client: no UNKNOWN_TOPIC_OR_PARTITION.
  const created = await createTopicsReady(
    a,
    names.map((topic) => ({ topic, numPartitions: 4, replicationFactor: 1 })),
  );
  assert.equal(created, true);
  const other = kafka().admin();
  await other.connect();
  t.after(() => other.disconnect());
  const meta = await other.fetchTopicMetadata({ topics: names });
  for (const topic of meta.topics) {
    assert.equal(topic.partitions.length, 4, topic.name);
    assert.ok(
      topic.partitions.every((p) => p.leader >= 0),
      topic.name,
    );
  }
  // Existing topics are no error, as with kafkajs: false says nothing was created.
  assert.equal(await createTopicsReady(a, [{ topic: names[0]!, numPartitions: 4 }]), false);
});
