import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import { RegistryCodec, RESULT_SCHEMA, WireDecoder } from '@tapio/events';
import type { Result } from '@tapio/events';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { startDedup } from '@tapio/service-dedup';
import { makeResult, metricValue } from '../../helpers/results-builder';
import { admin, eventually, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** A private redis-server (not the shared one), stopped for real by the test. */
class PrivateRedis {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    this.child = child;
    const probe = new Redis({ port: this.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined); // refused until the server listens; eventually() retries
    await eventually(
      async () => {
        try {
          await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return false;
        }
      },
      10_000,
      `redis-server on ${this.port}`,
    );
    probe.disconnect();
  }

  /** What an outage looks like: the server goes away without saving. */
  shutdown(): void {
    execFileSync('redis-cli', ['-p', String(this.port), 'shutdown', 'nosave'], { stdio: 'ignore' });
    this.child = undefined;
  }

  kill(): void {
    this.child?.kill('SIGKILL');
    this.child = undefined;
  }
}

async function topicSize(t: TestContext, topic: string): Promise<number> {
  const a = await admin(t);
  const offsets = await a.fetchTopicOffsets(topic);
  return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
}

test('Redis outage mid-stream: dedup pauses and retries; every fingerprint is forwarded exactly once', async (t) => {
  const server = new PrivateRedis(await freePort());
  await server.start();
  t.after(() => server.kill());

  const input = await tempTopic(t, 'dedup-outage-in', 3);
  const output = await tempTopic(t, 'dedup-outage-out', 3);
  const groupId = randomName('tapio-dedup');
  const config = testConfig({
    redis: { url: `redis://127.0.0.1:${server.port}` },
    dedup: { ttlMs: 120_000, keyPrefix: 'outage:', retryInitialMs: 50, retryMaxMs: 500, commandTimeoutMs: 500 },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerResult(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  /** Each fingerprint twice (two different triggers, so two result ids), interleaved. */
  const sendFingerprints = async (from: number, to: number): Promise<void> => {
    const results: Result[] = [];
    for (let i = from; i < to; i++) results.push(makeResult('crash-loop', `pod/shop/p${i}`, `t${i}-a`));
    for (let i = from; i < to; i++) results.push(makeResult('crash-loop', `pod/shop/p${i}`, `t${i}-b`));
    await producer.send({
      topic: input,
      acks: -1,
      messages: results.map((r) => ({ key: r.entityKey, value: codec.encode(schemaId, r) })),
    });
  };

  const service = await startService(
    'dedup',
    (ctx) => startDedup(ctx, { inputTopic: input, outputTopic: output, groupId }),
    { config, logger: createLogger('dedup', 'silent') },
  );
  t.after(() => service.shutdown('test end'));
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    metricValue(await fetch(`${service.http.url}/metrics`).then((r) => r.text()), name, labels);

  await sendFingerprints(0, 40);
  await eventually(
    async () => (await metric('tapio_dedup_results_total', { outcome: 'forwarded' })) === 40,
    30_000,
    'phase 1',
  );

  // Outage: Redis goes away while results keep arriving.
  const downAt = Date.now();
  server.shutdown();
  for (let step = 0; step < 4; step++) {
    await sendFingerprints(40 + step * 10, 50 + step * 10);
    await sleep(500);
  }
  await eventually(async () => (await metric('tapio_dedup_paused')) >= 1, 10_000, 'a partition paused');
  assert.ok((await metric('tapio_dedup_redis_errors_total')) > 0, 'redis errors counted');
  const forwardedDuringOutage = await metric('tapio_dedup_results_total', { outcome: 'forwarded' });
  assert.equal(forwardedDuringOutage, 40, 'nothing forwarded while Redis is down');
  assert.equal(await topicSize(t, output), 40);
  await sleep(Math.max(0, 3500 - (Date.now() - downAt)));
  await server.start();

  await eventually(
    async () => (await metric('tapio_dedup_results_total', { outcome: 'forwarded' })) === 80,
    30_000,
    'phase 2 forwarded',
  );
  await eventually(async () => (await metric('tapio_dedup_paused')) === 0, 10_000, 'partitions resumed');
  await sleep(1000); // let anything extra show up before counting
  assert.equal(await topicSize(t, output), 80, 'exactly one record per fingerprint');
  const out = await readTopic(t, output, 80);
  const decoder = new WireDecoder<Result>(codec, RESULT_SCHEMA);
  await decoder.prepare(out.map((r) => r.value));
  const fingerprints = out.map((r) => {
    const result = decoder.decode(r.value);
    return `${result.ruleId}|${result.entityKey}`;
  });
  assert.equal(new Set(fingerprints).size, 80, 'every fingerprint once, none lost');
  assert.equal(await metric('tapio_dedup_results_total', { outcome: 'duplicate' }), 80);
  assert.equal(await metric('tapio_dedup_results_total', { outcome: 'failopen' }), 0);
});

test('fail-open (opt-in): with Redis down longer than failOpenAfterMs, results pass without dedup and are counted', async (t) => {
  const server = new PrivateRedis(await freePort());
  await server.start();
  t.after(() => server.kill());
  server.shutdown();

  const input = await tempTopic(t, 'dedup-failopen-in', 1);
  const output = await tempTopic(t, 'dedup-failopen-out', 1);
  const config = testConfig({
    redis: { url: `redis://127.0.0.1:${server.port}` },
    dedup: { failOpenAfterMs: 800, retryInitialMs: 50, retryMaxMs: 200, commandTimeoutMs: 300 },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerResult(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  const pair = [makeResult('crash-loop', 'pod/shop/x', 'x1'), makeResult('crash-loop', 'pod/shop/x', 'x2')];
  await producer.send({
    topic: input,
    acks: -1,
    messages: pair.map((r) => ({ key: r.entityKey, value: codec.encode(schemaId, r) })),
  });

  const service = await startService(
    'dedup',
    (ctx) => startDedup(ctx, { inputTopic: input, outputTopic: output, groupId: randomName('tapio-dedup') }),
    { config, logger: createLogger('dedup', 'silent') },
  );
  t.after(() => service.shutdown('test end'));
  const out = await readTopic(t, output, 2);
  assert.equal(out.length, 2, 'both forwarded although they share a fingerprint');
  const text = await fetch(`${service.http.url}/metrics`).then((r) => r.text());
  assert.equal(metricValue(text, 'tapio_dedup_results_total', { outcome: 'failopen' }), 2);
  assert.equal(metricValue(text, 'tapio_dedup_results_total', { outcome: 'forwarded' }), 0);
  assert.equal(metricValue(text, 'tapio_dedup_paused'), 0, 'resumed after failing open');
});
