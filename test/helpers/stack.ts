/**
 * Test access to the real services started by `npm run stack:up`. Each test makes its own topics,
 * groups and subjects with random names and registers their cleanup on the test context.
 */
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import type { TestContext } from 'node:test';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { createKafka, createTopicsReady } from '@tapio/kafka';
import type { Admin, Kafka } from '@tapio/kafka';

/** The config tests use: defaults plus the same TAPIO_* overrides a service would read. */
export function testConfig(overrides: Record<string, unknown> = {}): Readonly<TapioConfig> {
  return loadConfig({ env: process.env, overrides });
}

export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

let sharedKafka: Kafka | undefined;

export function kafka(): Kafka {
  sharedKafka ??= createKafka(testConfig(), undefined, '-test');
  return sharedKafka;
}

/** A connected admin client, disconnected after the test. */
export async function admin(t: TestContext): Promise<Admin> {
  const a = kafka().admin();
  await a.connect();
  t.after(() => a.disconnect());
  return a;
}

const tempTopics = new Set<string>();

/**
 * Temp topics are deleted when the test file ends, after every test's own `after` hooks (which stop
 * the services using them): node:test runs a test's hooks in registration order, so a per-test
 * delete would run before the shutdown of a service started later in the same test.
 */
after(async () => {
  if (tempTopics.size === 0) return;
  const a = kafka().admin();
  await a.connect();
  try {
    await a.deleteTopics({ topics: [...tempTopics], timeout: 10_000 });
  } catch {
    // best effort: a topic already gone, or a broker busy; names are random, so leftovers are harmless
  } finally {
    await a.disconnect();
  }
});

/** Creates a topic with a random name, deleted when the test file ends. */
export async function tempTopic(t: TestContext, prefix: string, numPartitions = 3): Promise<string> {
  void t;
  const topic = randomName(prefix);
  const a = kafka().admin();
  await a.connect();
  try {
    await createTopicsReady(a, [{ topic, numPartitions, replicationFactor: 1 }]);
  } finally {
    await a.disconnect();
  }
  tempTopics.add(topic);
  return topic;
}

export const registryUrl = (): string => testConfig().registry.url;

export interface ReadRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Reads exactly n records of a topic from the beginning (fails after timeoutMs with what it saw). */
export async function readTopic(t: TestContext, topic: string, n: number, timeoutMs = 30_000): Promise<ReadRecord[]> {
  const consumer = kafka().consumer({ groupId: randomName('reader'), sessionTimeout: 10_000, heartbeatInterval: 1000 });
  t.after(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: ReadRecord[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`readTopic ${topic}: timed out with ${seen.length}/${n} records`)),
        timeoutMs,
      );
      if (n === 0) {
        clearTimeout(timer);
        resolve();
        return;
      }
      consumer
        .run({
          autoCommit: false,
          eachMessage: ({ partition, message }) => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
            seen.push({
              partition,
              offset: message.offset,
              key: message.key?.toString() ?? null,
              value: message.value,
              headers,
            });
            if (seen.length === n) {
              clearTimeout(timer);
              resolve();
            }
            return Promise.resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

/** Sum of the committed offsets of a group on a topic (-1 offsets count as 0). */
export async function committedTotal(t: TestContext, groupId: string, topic: string): Promise<number> {
  const a = await admin(t);
  const offsets = await a.fetchOffsets({ groupId, topics: [topic] });
  return (offsets[0]?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

/** Polls until check() is true or the timeout passes. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`eventually: ${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
