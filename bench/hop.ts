/**
 * Single-hop latency through the real local broker, one consumer setting at a time:
 *
 *   source producer -> IN -> hop (kafkajs eachBatch consumer, produce acks=all) -> OUT -> reader
 *
 * Every record carries its send time; the hop adds when its eachBatch saw it and IN's append time.
 * Both topics use LogAppendTime, so the split is: produce (send -> IN append), consume (IN append ->
 * hop's eachBatch), hop produce (eachBatch -> OUT append), read (OUT append -> reader). The hop uses
 * the services' client settings (createKafka, connectConsumer's session/heartbeat, the idempotent
 * producer with one request in flight); the flags vary one thing at a time. The first second is a
 * warm-up and left out.
 *
 *   npx tsc -b && node bench/dist/hop.js [flags]
 *     --rate N            events/s offered (2000)          --seconds N   measured seconds (8)
 *     --partitions N      of IN and OUT (12)              --pcc N       partitionsConsumedConcurrently (4)
 *     --commit MODE       per-batch: autoCommit (kafkajs commits after every batch; the services until
 *                         this change) | background: BackgroundCommitter | none   (background)
 *     --commit-interval N background commit interval, ms (kafka.commitIntervalMs)
 *     --coalesce          the hop produces through CoalescingSender (one request for the batches in flight)
 *     --max-wait N        hop consumer maxWaitTimeInMs (kafkajs default 5000)   --min-bytes N (1)
 *     --not-idempotent    hop producer not idempotent, 5 requests in flight
 *     --reader-commit     the reader commits per batch (kafkajs autoCommit), as the bench readers did
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '@tapio/config';
import { createKafka, createTopicsReady } from '@tapio/kafka';
import type { Kafka } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { BackgroundCommitter, CoalescingSender } from '@tapio/runtime';

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(name);
const num = (name: string, fallback: number): number => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const commitMode = argv.includes('--commit') ? argv[argv.indexOf('--commit') + 1] : 'background';
if (!['per-batch', 'background', 'none'].includes(commitMode ?? ''))
  throw new Error('--commit: per-batch | background | none');

const config = loadConfig({ env: process.env, overrides: { log: { level: 'silent' } } });
const S = {
  rate: num('--rate', 2000),
  seconds: num('--seconds', 8),
  partitions: num('--partitions', 12),
  pcc: num('--pcc', config.kafka.partitionsConsumedConcurrently),
  commit: commitMode as 'per-batch' | 'background' | 'none',
  commitIntervalMs: num('--commit-interval', config.kafka.commitIntervalMs),
  coalesce: flag('--coalesce'),
  maxWaitTimeInMs: num('--max-wait', 5000),
  minBytes: num('--min-bytes', 1),
  idempotent: !flag('--not-idempotent'),
  readerCommit: flag('--reader-commit'),
};
const WARMUP_MS = 1000;

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

async function startHop(kafka: Kafka, input: string, output: string, groupId: string): Promise<() => Promise<void>> {
  const producer = kafka.producer({
    idempotent: S.idempotent,
    maxInFlightRequests: S.idempotent ? 1 : 5,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const sender = new CoalescingSender(producer);
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: S.maxWaitTimeInMs,
    minBytes: S.minBytes,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: input, fromBeginning: true });
  const committer = new BackgroundCommitter(consumer, S.commitIntervalMs, createLogger('hop', 'silent'));
  await consumer.run({
    partitionsConsumedConcurrently: S.pcc,
    eachBatchAutoResolve: false,
    autoCommit: S.commit === 'per-batch',
    eachBatch: async (payload) => {
      const { batch } = payload;
      const last = batch.messages[batch.messages.length - 1];
      if (last === undefined) return;
      const seen = now();
      const messages = batch.messages.map((m) => ({
        key: m.key,
        value: `${m.value?.toString() ?? ''},${seen},${m.timestamp}`,
      }));
      if (S.coalesce) await sender.send([{ topic: output, messages }]);
      else await producer.sendBatch({ topicMessages: [{ topic: output, messages }], acks: -1 });
      payload.resolveOffset(last.offset);
      if (S.commit === 'background') await committer.resolved(payload);
      await payload.heartbeat();
    },
  });
  return async () => {
    await committer.stop();
    await consumer.disconnect();
    await producer.disconnect();
  };
}

async function main(): Promise<void> {
  const kafka = createKafka(config, undefined, '-hop');
  const tag = randomBytes(4).toString('hex');
  const input = `bench-hop-in-${tag}`;
  const output = `bench-hop-out-${tag}`;
  const hopGroup = `bench-hop-${tag}`;
  const readerGroup = `bench-hop-reader-${tag}`;
  const admin = kafka.admin();
  await admin.connect();
  const appendTime = [{ name: 'message.timestamp.type', value: 'LogAppendTime' }];
  await createTopicsReady(
    admin,
    [input, output].map((topic) => ({
      topic,
      numPartitions: S.partitions,
      replicationFactor: 1,
      configEntries: appendTime,
    })),
  );
  const arrivals: [string, number, number][] = [];
  const reader = kafka.consumer({ groupId: readerGroup });
  let stopHop: (() => Promise<void>) | undefined;
  let sent = 0;
  let t0 = 0;
  try {
    await reader.connect();
    await reader.subscribe({ topic: output, fromBeginning: true });
    await reader.run({
      autoCommit: S.readerCommit,
      eachBatch: ({ batch }) => {
        const at = now();
        for (const m of batch.messages) arrivals.push([m.value?.toString() ?? '', Number(m.timestamp), at]);
        return Promise.resolve();
      },
    });
    stopHop = await startHop(kafka, input, output, hopGroup);
    for (;;) {
      const { groups } = await admin.describeGroups([hopGroup, readerGroup]);
      if (groups.every((g) => g.state === 'Stable' && g.members.length > 0)) break;
      await sleep(100);
    }
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
    // 100 ticks/s, like produceAtRate in the e2e bench.
    t0 = now();
    const end = t0 + WARMUP_MS + S.seconds * 1000;
    let id = 0;
    while (now() < end) {
      const due = Math.floor(((now() - t0) / 1000) * S.rate) - sent;
      if (due > 0) {
        const ts = now();
        const messages = Array.from({ length: Math.min(due, 5000) }, () => ({
          key: `k${id % 997}`,
          value: `${id++},${ts}`,
        }));
        await producer.sendBatch({ topicMessages: [{ topic: input, messages }], acks: -1 });
        sent += messages.length;
      }
      await sleep(Math.max(0, 10 - ((now() - t0) % 10)));
    }
    await producer.disconnect();
    const deadline = Date.now() + 60_000;
    while (arrivals.length < sent && Date.now() < deadline) await sleep(20);
  } finally {
    await stopHop?.();
    await reader.disconnect();
    await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
    await admin.deleteGroups([hopGroup, readerGroup]).catch(() => undefined);
    await admin.disconnect();
  }
  const total: number[] = [];
  const produce: number[] = [];
  const consume: number[] = [];
  const hopProduce: number[] = [];
  const read: number[] = [];
  for (const [value, outAppend, at] of arrivals) {
    const [, sentAt, seenAt, inAppend] = value.split(',').map(Number) as [number, number, number, number];
    if (sentAt < t0 + WARMUP_MS) continue;
    total.push(at - sentAt);
    produce.push(inAppend - sentAt);
    consume.push(seenAt - inAppend);
    hopProduce.push(outAppend - seenAt);
    read.push(at - outAppend);
  }
  const f = (xs: number[]): string => `${percentile(xs, 50).toFixed(1)}/${percentile(xs, 99).toFixed(1)}`;
  process.stdout.write(
    `${JSON.stringify(S)}\n  ${total.length} of ${sent} records measured (${arrivals.length} arrived); p50/p99 ms: ` +
      `total ${f(total)} | produce ${f(produce)} | consume ${f(consume)} | hop produce ${f(hopProduce)} | read ${f(read)}\n` +
      '  (append times have millisecond resolution)\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
