/** Kafka wiring shared by every service: the client, topic definitions and `topics ensure`. */
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import type { Admin, ITopicConfig, KafkaMessage, LogEntry, Producer, ProducerConfig } from 'kafkajs';
import type { TapioConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import type { Logger } from '@tapio/observability';
import './request-queue-patch';

export type { Admin, Consumer, EachBatchPayload, EachMessagePayload, Kafka, KafkaMessage, Producer } from 'kafkajs';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * The partitioner of every producer, chosen here once: kafkajs's DefaultPartitioner, the murmur2 one
 * of the Java client (`toPositive(murmur2(key)) % partitions`). Collectors written in Java (or any
 * client using Kafka's default) must put a source entity's events on the partition the router and
 * `tapio produce` would; kafkajs's LegacyPartitioner does not. Naming it also silences kafkajs's
 * "switched default partitioner" warning in every service's log.
 */
export const PARTITIONER = Partitioners.DefaultPartitioner;

/** kafkajs's client, with the project's partitioner as every producer's default. */
class TapioKafka extends Kafka {
  override producer(config: ProducerConfig = {}): Producer {
    return super.producer({ createPartitioner: PARTITIONER, ...config });
  }
}

/** A kafkajs client whose log lines go through the service's pino logger. */
export function createKafka(config: Pick<TapioConfig, 'kafka'>, logger?: Logger, clientSuffix = ''): Kafka {
  return new TapioKafka({
    clientId: config.kafka.clientId + clientSuffix,
    brokers: [...config.kafka.brokers],
    connectionTimeout: config.kafka.connectionTimeoutMs,
    requestTimeout: config.kafka.requestTimeoutMs,
    logLevel: logger ? logLevel.WARN : logLevel.NOTHING,
    logCreator:
      () =>
      ({ namespace, level, log }: LogEntry) => {
        if (logger === undefined) return;
        const { message, ...extra } = log;
        logger[LEVELS[level] ?? 'info']({ kafkajs: namespace, ...extra }, message);
      },
  });
}

export interface TopicSpec extends ITopicConfig {
  topic: string;
  numPartitions: number;
  replicationFactor: number;
  configEntries: { name: string; value: string }[];
}

/** Every topic of ARCHITECTURE.md with its partition count and settings. */
export function topicSpecs(config: Pick<TapioConfig, 'topics'>): TopicSpec[] {
  const t = config.topics;
  const spec = (topic: string, numPartitions: number, configEntries: TopicSpec['configEntries'] = []): TopicSpec => ({
    topic,
    numPartitions,
    replicationFactor: t.replicationFactor,
    configEntries,
  });
  return [
    spec(t.events, t.eventPartitions),
    spec(t.eventsV1, t.eventPartitions),
    spec(t.eventsV2, t.eventPartitions),
    spec(t.eventsV2Shadow, t.eventPartitions),
    spec(t.results, t.resultPartitions),
    spec(t.resultsShadow, t.resultPartitions),
    spec(t.resultsDeduped, t.resultPartitions),
    // One partition: every router reads the whole control stream; compaction keeps the latest config per key.
    spec(t.control, 1, [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'min.compaction.lag.ms', value: '0' },
      { name: 'segment.ms', value: '600000' },
    ]),
    spec(t.health, 1, [{ name: 'retention.ms', value: String(24 * 3600 * 1000) }]),
    spec(t.dlq, t.resultPartitions),
  ];
}

export interface EnsureOutcome {
  topic: string;
  action: 'created' | 'exists' | 'partitions-added';
  partitions: number;
}

const METADATA_NOT_YET = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Creates topics and waits until the broker's metadata shows each with its partitions, every one
 * led. kafkajs's own `waitForLeaders` retries only LEADER_NOT_AVAILABLE, but a KRaft broker can
 * answer UNKNOWN_TOPIC_OR_PARTITION for a moment after CreateTopics returned (its metadata image
 * has not caught up yet), which kafkajs then throws. Resolves to false when every topic already
 * existed (kafkajs's convention; existing topics are not an error).
 */
export async function createTopicsReady(
  admin: Admin,
  topics: ITopicConfig[],
  opts: { timeoutMs?: number } = {},
): Promise<boolean> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const created = await admin.createTopics({ topics, waitForLeaders: false, timeout: timeoutMs });
  await waitForTopicMetadata(admin, new Map(topics.map((t) => [t.topic, t.numPartitions ?? 1])), timeoutMs);
  return created;
}

/**
 * Polls the metadata until each topic shows at least the given partition count, each partition
 * with a leader (after CreateTopics or CreatePartitions, the broker serving metadata lags a little).
 */
export async function waitForTopicMetadata(
  admin: Admin,
  partitions: ReadonlyMap<string, number>,
  timeoutMs = 30_000,
): Promise<void> {
  const names = [...partitions.keys()];
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    let pending: string;
    try {
      const meta = await admin.fetchTopicMetadata({ topics: names });
      const short = meta.topics.find(
        (t) => t.partitions.length < (partitions.get(t.name) ?? 1) || t.partitions.some((p) => p.leader < 0),
      );
      if (short === undefined) return;
      pending = `topic ${short.name} shows ${short.partitions.length} of ${partitions.get(short.name)} partitions or one without a leader`;
    } catch (err) {
      const type = (err as { type?: string }).type;
      if (type === undefined || !METADATA_NOT_YET.has(type)) throw err;
      pending = `${type} for ${names.join(', ')}`;
    }
    if (Date.now() + delay > deadline) {
      throw new TapioError('KAFKA_UNAVAILABLE', `topic metadata not ready after ${timeoutMs} ms: ${pending}`);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Creates the missing topics and raises partition counts that are below the spec (Kafka cannot
 * lower them). Safe to run repeatedly and concurrently with other ensures.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<EnsureOutcome[]> {
  try {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (missing.length > 0) {
      // Another process may have created some of them in between: kafkajs reports that as false.
      await createTopicsReady(admin, missing);
    }
    const meta = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
    const counts = new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
    const grow = specs.filter((s) => existing.has(s.topic) && (counts.get(s.topic) ?? 0) < s.numPartitions);
    if (grow.length > 0) {
      await admin.createPartitions({ topicPartitions: grow.map((s) => ({ topic: s.topic, count: s.numPartitions })) });
      await waitForTopicMetadata(admin, new Map(grow.map((s) => [s.topic, s.numPartitions])));
    }
    return specs.map((s) => ({
      topic: s.topic,
      action: !existing.has(s.topic) ? 'created' : grow.includes(s) ? 'partitions-added' : 'exists',
      partitions: Math.max(counts.get(s.topic) ?? 0, s.numPartitions),
    }));
  } catch (cause) {
    if (cause instanceof TapioError) throw cause;
    throw new TapioError('KAFKA_UNAVAILABLE', `ensuring topics failed: ${(cause as Error).message}`, { cause });
  }
}

/** Header names on dead-lettered records. */
export const DLQ_HEADERS = {
  reason: 'tapio-dlq-reason',
  message: 'tapio-dlq-message',
  source: 'tapio-dlq-source',
  service: 'tapio-dlq-service',
  at: 'tapio-dlq-at',
} as const;

export interface DeadLetterSource {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

/**
 * Sends what a service cannot read to the dead-letter topic: the original key, value and headers,
 * plus the reason (a stable error code), a message and where it came from. The caller awaits this
 * before committing the source offset, so nothing is lost between the two.
 */
export class DeadLetterQueue {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly service: string,
  ) {}

  async send(source: DeadLetterSource, code: string, message: string): Promise<void> {
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: [
        {
          key: source.key,
          value: source.value,
          headers: {
            ...(source.headers ?? {}),
            [DLQ_HEADERS.reason]: code,
            [DLQ_HEADERS.message]: message,
            [DLQ_HEADERS.source]: `${source.topic}/${source.partition}@${source.offset}`,
            [DLQ_HEADERS.service]: this.service,
            [DLQ_HEADERS.at]: new Date().toISOString(),
          },
        },
      ],
    });
  }
}

/**
 * Headers the router stamps on each routed record. The record key is the scope key; `rules` lists
 * the rule ids to evaluate for it (comma-separated); `epoch` is the routing config that decided.
 * `source` is where the event was read, `<topic>/<partition>@<offset>`.
 * `suppressUntil` (decimal epoch ms, present only during a route-change handoff): results that this
 * record triggers with triggeredAt < that time are not published; the record still updates the
 * rules' window and cooldown state, so the warming engine ends up where the publishing one is and
 * does not fire again for what the other already reported (@tapio/routing, plan.ts).
 * `compared` (value `1`, only on V1 records): the key also went to the V2 shadow engine, which is
 * warm for it, so V1 puts the same header on the results the record triggers and the comparator
 * pairs exactly those with the shadow results; V1 results without it have no shadow counterpart.
 */
export const ROUTING_HEADERS = {
  rules: 'tapio-rules',
  scopeKey: 'tapio-scope-key',
  epoch: 'tapio-epoch',
  source: 'tapio-source',
  suppressUntil: 'tapio-suppress-until',
  compared: 'tapio-compared',
} as const;

/** A header value as text, or undefined when absent. */
export function headerText(
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined,
  name: string,
): string | undefined {
  const v = headers?.[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : String(v[v.length - 1]);
  return v.toString();
}

/**
 * Reads a topic from its beginning up to its end at call time (every partition), calling `onMessage`
 * for each record, with a throwaway consumer group that is deleted afterwards. For the compacted
 * control topic: "the document in force" is whatever the reader keeps from these records.
 * Resolves false when the topic is empty.
 */
export async function readTopicToEnd(
  kafka: Kafka,
  topic: string,
  onMessage: (message: KafkaMessage, partition: number) => void,
  options: { timeoutMs?: number; groupPrefix?: string } = {},
): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const targets = new Map(ends.filter((p) => p.high !== p.low).map((p) => [p.partition, BigInt(p.high) - 1n]));
    if (targets.size === 0) return false;
    const groupId = `${options.groupPrefix ?? 'tapio-read'}-${randomBytes(5).toString('hex')}`;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, allowAutoTopicCreation: false });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new TapioError('KAFKA_UNAVAILABLE', `reading ${topic} timed out`)),
          options.timeoutMs ?? 30_000,
        );
        consumer
          .run({
            autoCommit: false,
            eachMessage: ({ partition, message }) => {
              onMessage(message, partition);
              const end = targets.get(partition);
              if (end !== undefined && BigInt(message.offset) >= end) targets.delete(partition);
              if (targets.size === 0) {
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
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
    return true;
  } finally {
    await admin.disconnect();
  }
}
