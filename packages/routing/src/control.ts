/**
 * The routing config on the control topic (compacted, one partition): the latest record under the
 * key `routing` is the document in force. For the CLI (`tapio route show|set`, `tapio migrate`) and
 * the rollout controller.
 */
import { TapioError } from '@tapio/errors';
import { readTopicToEnd } from '@tapio/kafka';
import type { Kafka, Producer } from '@tapio/kafka';
import type { RoutingConfig } from './config';
import { parseRoutingConfig, validateRoutingConfig } from './config';

/** The control-topic key that holds the routing config. */
export const ROUTING_CONTROL_KEY = 'routing';

export interface RoutingConfigRecord {
  config: RoutingConfig;
  offset: string;
  /** The record's timestamp (ms): the anchor of the change's handoff. */
  timestampMs: number;
}

export interface ReadRoutingConfigOptions {
  key?: string;
  timeoutMs?: number;
  /** Called for each record under the key that does not validate (skipped). */
  onInvalid?: (offset: string, error: TapioError) => void;
}

/**
 * The routing document in force on the control topic (the valid one with the highest epoch, as a
 * router that reads the topic from the beginning applies it), with its offset and timestamp, or null
 * when there is none. Reads the topic from the beginning up to its end at call time.
 */
export async function readRoutingConfigRecord(
  kafka: Kafka,
  topic: string,
  options: ReadRoutingConfigOptions = {},
): Promise<RoutingConfigRecord | null> {
  const key = options.key ?? ROUTING_CONTROL_KEY;
  let latest: RoutingConfigRecord | null = null;
  await readTopicToEnd(
    kafka,
    topic,
    (message) => {
      if (message.key?.toString() !== key) return;
      try {
        const config = parseRoutingConfig(message.value);
        // As the routers do: an older or equal epoch written later does not replace the one in force.
        if (latest === null || config.epoch > latest.config.epoch) {
          latest = { config, offset: message.offset, timestampMs: Number(message.timestamp) };
        }
      } catch (err) {
        if (err instanceof TapioError) options.onInvalid?.(message.offset, err);
        else throw err;
      }
    },
    { timeoutMs: options.timeoutMs, groupPrefix: 'tapio-route-read' },
  );
  return latest;
}

/** The latest valid routing document on the control topic, or null when there is none. */
export async function readRoutingConfig(kafka: Kafka, topic: string): Promise<RoutingConfig | null> {
  return (await readRoutingConfigRecord(kafka, topic))?.config ?? null;
}

/** The bytes of a document as stored on the control topic. */
export function encodeRoutingConfig(doc: RoutingConfig): Buffer {
  return Buffer.from(JSON.stringify(doc));
}

/**
 * Writes `doc` as the next epoch: `doc` is a document as read (or the defaults, epoch 0), edited;
 * it is written with epoch = doc.epoch + 1 (acks=all) and the written document is returned.
 * Read-modify-write: two writers racing from the same epoch write the same epoch, and routers keep
 * the first one they see; re-read and retry if that matters.
 */
export async function writeRoutingConfig(
  producer: Producer,
  topic: string,
  doc: RoutingConfig,
  key: string = ROUTING_CONTROL_KEY,
): Promise<RoutingConfig> {
  const next = validateRoutingConfig({ ...doc, epoch: doc.epoch + 1 });
  await producer.send({ topic, acks: -1, messages: [{ key, value: encodeRoutingConfig(next) }] });
  return next;
}
