/**
 * Dedup throughput against the real local stack (Kafka, registry, Redis): pre-produces N results
 * (a share of them duplicates by fingerprint) to a fresh topic, runs the dedup service in-process
 * and measures results/s from the first processed result to the last.
 *
 *   npx tsc -b bench && node bench/dist/dedup.js [N] [dupShare]     (defaults: 50000 0.2)
 */
import { createHash, randomBytes } from 'node:crypto';
import { loadConfig } from '@tapio/config';
import { RegistryCodec } from '@tapio/events';
import type { Result } from '@tapio/events';
import { createKafka, createTopicsReady } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
// The benchmark runs the service in-process exactly as the integration tests do (own group, own topics).
// eslint-disable-next-line no-restricted-imports
import { startDedup } from '@tapio/service-dedup';

const N = Number(process.argv[2] ?? 50_000);
const DUP_SHARE = Number(process.argv[3] ?? 0.2);
const PARTITIONS = 6;

function result(i: number, fp: number): Result {
  const ruleId = 'crash-loop';
  const entityKey = `pod/bench/p${fp}`;
  const triggerEventId = `e${i}`;
  return {
    id: createHash('sha256').update(`${ruleId}|${entityKey}|${triggerEventId}`).digest('hex').slice(0, 32),
    ruleId,
    category: 'reliability',
    entityKey,
    triggeredAt: 1_750_000_000_000 + i,
    triggerEventId,
    severity: 'high',
    confidence: 0.8,
    evidence: [`e${i - 2}`, `e${i - 1}`, triggerEventId],
    engine: 'v1',
  };
}

async function main(): Promise<void> {
  const tag = randomBytes(4).toString('hex');
  const input = `bench-dedup-in-${tag}`;
  const output = `bench-dedup-out-${tag}`;
  const config = loadConfig({
    env: process.env,
    overrides: { dedup: { ttlMs: 60_000, keyPrefix: `bench:${tag}:` }, http: { port: 0 }, log: { level: 'silent' } },
  });
  const kafka = createKafka(config);
  const admin = kafka.admin();
  await admin.connect();
  await createTopicsReady(
    admin,
    [input, output].map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
  );
  try {
    const codec = new RegistryCodec({ url: config.registry.url });
    const schemaId = await codec.registerResult(input);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const distinct = Math.round(N * (1 - DUP_SHARE));
    for (let from = 0; from < N; from += 5000) {
      const messages = [];
      for (let i = from; i < Math.min(N, from + 5000); i++) {
        const r = result(i, i < distinct ? i : i % distinct);
        messages.push({ key: r.entityKey, value: codec.encode(schemaId, r) });
      }
      await producer.send({ topic: input, acks: -1, messages });
    }
    await producer.disconnect();

    const service = await startService(
      'dedup',
      (ctx) => startDedup(ctx, { inputTopic: input, outputTopic: output, groupId: `bench-${tag}` }),
      {
        config,
        logger: createLogger('dedup', 'silent'),
      },
    );
    const processed = (): number => {
      const h = service.service.health();
      return Number(h['forwarded']) + Number(h['redelivered']) + Number(h['duplicate']);
    };
    let firstAt = 0;
    let firstCount = 0;
    for (;;) {
      const n = processed();
      if (firstAt === 0 && n > 0) {
        firstAt = performance.now();
        firstCount = n;
      }
      if (n >= N) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const ms = performance.now() - firstAt;
    const h = service.service.health();
    await service.shutdown('bench done');
    const rate = ((N - firstCount) / ms) * 1000;
    process.stdout.write(
      `dedup: ${N} results (${distinct} fingerprints), ${PARTITIONS} partitions: ` +
        `${Math.round(rate)} results/s over ${Math.round(ms)} ms; ` +
        `forwarded ${String(h['forwarded'])}, duplicate ${String(h['duplicate'])}\n`,
    );
  } finally {
    await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
    await admin.disconnect();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
