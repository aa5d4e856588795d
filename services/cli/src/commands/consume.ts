/** `tapio consume <topic>`: any project topic decoded to JSON lines, for people who want to look. */
import { randomBytes } from 'node:crypto';
import type { TapioConfig } from '@tapio/config';
import { findTapioError } from '@tapio/errors';
import { RegistryCodec } from '@tapio/events';
import { createKafka } from '@tapio/kafka';
import type { IHeaders } from 'kafkajs';

export interface ConsumeOptions {
  fromBeginning: boolean;
  /** Keep waiting for new records after the end; without --from-beginning this is implied. */
  follow: boolean;
  max?: number;
  /** Wrap each value with topic, partition, offset, key and headers. */
  meta: boolean;
}

export interface ConsumeIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Resolves when the user interrupts (SIGINT). */
  interrupted: Promise<void>;
}

function headersToJson(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map((x) => x.toString()).join(',') : v.toString();
  }
  return out;
}

/**
 * Decodes Avro wire-format values through the registry; other values (the control topic's JSON,
 * dead letters that never were Avro) are shown as text, or base64 when not UTF-8.
 */
async function decodeValue(codec: RegistryCodec, value: Buffer | null): Promise<unknown> {
  if (value === null) return null;
  if (value.length >= 5 && value[0] === 0) {
    try {
      return await codec.decode(value);
    } catch (err) {
      return { undecodable: findTapioError(err)?.code ?? 'UNEXPECTED', base64: value.toString('base64') };
    }
  }
  const text = value.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(value)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return { base64: value.toString('base64') };
}

export async function consumeTopic(
  config: Readonly<TapioConfig>,
  topic: string,
  options: ConsumeOptions,
  io: ConsumeIo,
): Promise<number> {
  const kafka = createKafka(config, undefined, '-consume');
  const codec = new RegistryCodec({ url: config.registry.url });
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  const starts = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) {
      ends.set(p.partition, BigInt(p.high));
      starts.set(p.partition, BigInt(p.low));
    }
  } finally {
    await admin.disconnect();
  }
  const follow = options.follow || !options.fromBeginning;
  // Partitions with nothing to read are done from the start.
  const pending = new Set<number>(
    [...ends].filter(([p, end]) => options.fromBeginning && end > (starts.get(p) ?? 0n)).map(([p]) => p),
  );
  if (!follow && pending.size === 0) return 0;

  const consumer = kafka.consumer({ groupId: `tapio-consume-${randomBytes(6).toString('hex')}` });
  let count = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: options.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (options.max !== undefined && count >= options.max) return;
        const value = await decodeValue(codec, message.value);
        const line = options.meta
          ? {
              topic,
              partition,
              offset: message.offset,
              key: message.key?.toString() ?? null,
              headers: headersToJson(message.headers),
              value,
            }
          : value;
        io.stdout.write(JSON.stringify(line) + '\n');
        count++;
        if (options.max !== undefined && count >= options.max) finish();
        if (!follow && BigInt(message.offset) + 1n >= (ends.get(partition) ?? 0n)) {
          pending.delete(partition);
          if (pending.size === 0) finish();
        }
      },
    });
    await Promise.race([done, io.interrupted]);
  } finally {
    await consumer.disconnect();
  }
  return count;
}
