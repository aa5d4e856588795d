/**
 * The synthetic collector: until real eBPF and Kubernetes collectors exist, it produces a mix of
 * incident scenarios and background noise to tapio.events at a target rate, keyed by source
 * entity, Avro-encoded, idempotent with acks=all, and reports its rate and totals as metrics.
 */
import { Counter, Gauge } from 'prom-client';
import { EventSink, produceAtRate } from '@tapio/ingest';
import type { RunningService, ServiceContext } from '@tapio/runtime';
import { createEventSource, listScenarios } from '@tapio/scenarios';

export interface CollectorOptions {
  /** Default: config.topics.events. */
  topic?: string;
  /** Event time of the first event; default: now. */
  startMs?: number;
  /** Called once the configured duration has been produced. */
  onFinished?: () => void;
}

function resolveScenarios(spec: readonly string[]): string[] | 'all' {
  if (spec.includes('all')) return 'all';
  const known = listScenarios();
  return spec.flatMap((part) => {
    const matched = known.filter((s) => s.name === part || s.ruleId === part);
    if (matched.length === 0) throw new Error(`collector.scenarios: unknown scenario or rule '${part}'`);
    return matched.map((s) => s.name);
  });
}

export async function startCollector(ctx: ServiceContext, options: CollectorOptions = {}): Promise<RunningService> {
  const { config, logger } = ctx;
  const c = config.collector;
  const topic = options.topic ?? config.topics.events;
  const registers = [ctx.metrics];
  const produced = new Counter({
    name: 'tapio_collector_events_total',
    help: 'Events produced and acknowledged',
    registers,
  });
  const batches = new Counter({
    name: 'tapio_collector_batches_total',
    help: 'Produce requests acknowledged',
    registers,
  });
  const incidents = new Counter({
    name: 'tapio_collector_incidents_total',
    help: 'Scenario incidents whose trigger event has been produced',
    registers,
  });
  const targetRate = new Gauge({ name: 'tapio_collector_target_rate', help: 'Target events per second', registers });
  const actualRate = new Gauge({
    name: 'tapio_collector_rate_events_per_second',
    help: 'Events per second reached since start',
    registers,
  });
  targetRate.set(c.ratePerSecond);

  const source = createEventSource({
    seed: c.seed,
    startMs: options.startMs ?? Date.now(),
    mix: { scenarios: resolveScenarios(c.scenarios), noiseRatio: c.noiseRatio },
  });
  const sink = new EventSink(config, ctx.kafka, topic);
  await sink.open();

  const abort = new AbortController();
  const started = performance.now();
  let lastError: string | undefined;
  const loop = produceAtRate(() => source.next(), sink, {
    rate: c.ratePerSecond,
    durationMs: c.durationSeconds > 0 ? c.durationSeconds * 1000 : undefined,
    maxBatch: c.maxBatch,
    signal: abort.signal,
    onBatch: (n, total) => {
      produced.inc(n);
      batches.inc();
      incidents.inc(source.takeExpected().length);
      actualRate.set(total / ((performance.now() - started) / 1000));
    },
  }).then(
    (summary) => {
      logger.info(summary, 'collector finished');
      options.onFinished?.();
      return summary;
    },
    (err: unknown) => {
      lastError = (err as Error).message;
      logger.error({ err }, 'collector stopped on an error');
      return undefined;
    },
  );
  logger.info({ topic, rate: c.ratePerSecond, scenarios: c.scenarios }, 'collector producing');

  return {
    health: () => ({ ok: lastError === undefined, topic, produced: source.emitted, lastError }),
    async stop() {
      abort.abort();
      await loop;
      await sink.close();
    },
  };
}
