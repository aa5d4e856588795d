/**
 * Test access to the real services started by `npm run stack:up`. Each test makes its own topics,
 * groups and subjects with random names and registers their cleanup on the test context.
 */
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { createKafka } from '@tapio/kafka';
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

/** Creates a topic with a random name, deleted after the test. */
export async function tempTopic(t: TestContext, prefix: string, numPartitions = 3): Promise<string> {
  const topic = randomName(prefix);
  const a = await admin(t);
  await a.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: true });
  t.after(() => a.deleteTopics({ topics: [topic] }).catch(() => undefined));
  return topic;
}

export const registryUrl = (): string => testConfig().registry.url;
