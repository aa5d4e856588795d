/** `tapio produce`: JSON-lines events from a file or stdin to a topic, validated and Avro-encoded. */
import { createReadStream, statSync } from 'node:fs';
import { SingleBar, Presets } from 'cli-progress';
import type { TapioConfig } from '@tapio/config';
import type { TapioError } from '@tapio/errors';
import { readEventLines } from '@tapio/events';
import type { Event } from '@tapio/events';
import { EventSink, produceAtRate } from '@tapio/ingest';
import type { PaceSummary } from '@tapio/ingest';
import { createKafka } from '@tapio/kafka';
import { createEventSource } from '@tapio/scenarios';

export interface ProduceOptions {
  topic: string;
  skipInvalid: boolean;
  batchSize: number;
  /** Show a progress bar (only on a terminal). */
  progress: boolean;
}

export interface ProduceSummary {
  produced: number;
  invalid: number;
  seconds: number;
  stoppedAtLine?: number;
}

export interface ProduceIo {
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export async function produceFile(
  config: Readonly<TapioConfig>,
  file: string | undefined,
  options: ProduceOptions,
  io: ProduceIo,
): Promise<ProduceSummary> {
  const started = process.hrtime.bigint();
  const input = file === undefined || file === '-' ? process.stdin : createReadStream(file);
  const totalBytes = file !== undefined && file !== '-' ? statSync(file).size : 0;
  const bar =
    options.progress && io.stderr.isTTY
      ? new SingleBar(
          {
            format: ' {bar} {percentage}% | {value}/{total} bytes | {events} events',
            stream: io.stderr,
            hideCursor: true,
          },
          Presets.shades_classic,
        )
      : undefined;
  bar?.start(totalBytes, 0, { events: 0 });

  const sink = new EventSink(config, createKafka(config, undefined, '-produce'), options.topic);
  await sink.open();
  let produced = 0;
  let invalid = 0;
  let batch: Event[] = [];
  let bytes = 0;
  const report = (err: TapioError): void => {
    invalid++;
    bar?.stop();
    io.stderr.write(`tapio produce: skipped: ${err.code}: ${err.message}\n`);
  };
  try {
    for await (const { event } of readEventLines(
      countBytes(input, (n) => (bytes += n)),
      {
        skipInvalid: options.skipInvalid,
        onInvalid: report,
        file: file ?? 'stdin',
      },
    )) {
      batch.push(event);
      if (batch.length >= options.batchSize) {
        await sink.send(batch);
        produced += batch.length;
        batch = [];
        bar?.update(bytes, { events: produced });
      }
    }
    await sink.send(batch);
    produced += batch.length;
    bar?.update(totalBytes, { events: produced });
  } catch (err) {
    // Everything valid before the first invalid line has been produced; say so, then fail.
    await sink.send(batch).catch(() => undefined);
    produced += batch.length;
    bar?.stop();
    io.stderr.write(`tapio produce: produced ${produced} events before the error\n`);
    throw err;
  } finally {
    bar?.stop();
    await sink.close();
  }
  return { produced, invalid, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

async function* countBytes(
  input: AsyncIterable<string | Buffer>,
  add: (n: number) => void,
): AsyncGenerator<string | Buffer> {
  for await (const chunk of input) {
    add(chunk.length);
    yield chunk;
  }
}

export interface ScenarioProduceOptions {
  topic: string;
  scenarios: string[] | 'all';
  rate: number;
  durationMs: number;
  seed: number;
  noiseRatio: number;
  startMs: number;
}

/** `tapio produce --scenario`: the generators' endless source, produced at a target rate. */
export async function produceScenarios(
  config: Readonly<TapioConfig>,
  options: ScenarioProduceOptions,
  io: ProduceIo,
  signal?: AbortSignal,
): Promise<PaceSummary & { incidents: number }> {
  const source = createEventSource({
    seed: options.seed,
    startMs: options.startMs,
    mix: { scenarios: options.scenarios, noiseRatio: options.noiseRatio },
  });
  const sink = new EventSink(config, createKafka(config, undefined, '-produce'), options.topic);
  await sink.open();
  const bar = io.stderr.isTTY
    ? new SingleBar(
        { format: ' {bar} {value}/{total} events | {rate} events/s', stream: io.stderr, hideCursor: true },
        Presets.shades_classic,
      )
    : undefined;
  const total = Math.round((options.rate * options.durationMs) / 1000);
  bar?.start(total, 0, { rate: 0 });
  const started = performance.now();
  let incidents = 0;
  try {
    const summary = await produceAtRate(() => source.next(), sink, {
      rate: options.rate,
      durationMs: options.durationMs,
      maxBatch: Math.max(100, Math.min(5000, Math.round(options.rate / 10))),
      signal,
      onBatch: (_n, sent) => {
        incidents += source.takeExpected().length;
        bar?.update(sent, { rate: Math.round(sent / ((performance.now() - started) / 1000)) });
      },
    });
    incidents += source.takeExpected().length;
    return { ...summary, incidents };
  } finally {
    bar?.stop();
    await sink.close();
  }
}
