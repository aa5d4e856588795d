/**
 * `tapio compare`: the plan's performance comparator, offline. The same encoded records go through
 * V1 (full Avro decode, then the store-scanning engine, one record at a time) and V2 (projected
 * decode at offset 5, then the incremental engine); it reports throughput, per-event latency
 * p50/p99, peak heap, and result mismatches (missing, extra, differing fields).
 */
import { compareResultSets } from '@tapio/comparison';
import type { Comparison } from '@tapio/comparison';
import { V1Engine } from '@tapio/engine-v1';
import { RuleEventDecoder, V2Engine } from '@tapio/engine-v2';
import { EVENT_SCHEMA, encodeWire, eventAvroType } from '@tapio/events';
import type { AvroSchema, Event, Result } from '@tapio/events';

export interface EngineRun {
  engine: 'v1' | 'v2';
  events: number;
  results: number;
  seconds: number;
  eventsPerSecond: number;
  p50Us: number;
  p99Us: number;
  peakHeapMiB: number;
}

export interface CompareReport {
  events: number;
  runs: EngineRun[];
  speedup: number;
  mismatches: { missing: number; extra: number; differing: number; matched: number };
  samples: Comparison[];
}

const SCHEMA_ID = 1;

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function run(engine: 'v1' | 'v2', buffers: readonly Buffer[], lateness: number): { run: EngineRun; results: Result[] } {
  const latencies = new Float64Array(buffers.length);
  const results: Result[] = [];
  const heapStart = process.memoryUsage().heapUsed;
  let peak = heapStart;
  const started = process.hrtime.bigint();
  if (engine === 'v1') {
    const v1 = new V1Engine({ allowedLatenessMs: lateness });
    for (let i = 0; i < buffers.length; i++) {
      const t0 = process.hrtime.bigint();
      const event = eventAvroType.decode(buffers[i] as Buffer, 5).value as Event;
      for (const r of v1.process(event)) results.push(r);
      latencies[i] = Number(process.hrtime.bigint() - t0) / 1000;
      if ((i & 4095) === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
  } else {
    const v2 = new V2Engine({ allowedLatenessMs: lateness });
    const decoder = new RuleEventDecoder({ fetchSchema: () => Promise.reject(new Error('offline')) });
    decoder.addWriterSchema(SCHEMA_ID, EVENT_SCHEMA as unknown as AvroSchema);
    for (let i = 0; i < buffers.length; i++) {
      const t0 = process.hrtime.bigint();
      v2.processInto(decoder.decode(buffers[i] as Buffer), results);
      latencies[i] = Number(process.hrtime.bigint() - t0) / 1000;
      if ((i & 4095) === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort();
  return {
    results,
    run: {
      engine,
      events: buffers.length,
      results: results.length,
      seconds,
      eventsPerSecond: buffers.length / seconds,
      p50Us: quantile(latencies, 0.5),
      p99Us: quantile(latencies, 0.99),
      peakHeapMiB: (Math.max(peak, process.memoryUsage().heapUsed) - heapStart) / 2 ** 20,
    },
  };
}

export function compareEngines(events: readonly Event[], allowedLatenessMs: number): CompareReport {
  const buffers = events.map((e) => encodeWire(SCHEMA_ID, eventAvroType, e));
  // Warm both paths on a prefix so JIT tiers do not favour whichever runs second.
  const warm = buffers.slice(0, Math.min(20_000, buffers.length));
  run('v1', warm, allowedLatenessMs);
  run('v2', warm, allowedLatenessMs);
  const a = run('v1', buffers, allowedLatenessMs);
  const b = run('v2', buffers, allowedLatenessMs);
  const comparisons = compareResultSets(a.results, b.results);
  const count = (k: Comparison['kind']): number => comparisons.filter((c) => c.kind === k).length;
  return {
    events: events.length,
    runs: [a.run, b.run],
    speedup: b.run.eventsPerSecond / a.run.eventsPerSecond,
    mismatches: {
      matched: count('match'),
      missing: count('missing_in_v2'),
      extra: count('extra_in_v2'),
      differing: count('differing'),
    },
    samples: comparisons.filter((c) => c.kind !== 'match').slice(0, 5),
  };
}

export function formatReport(r: CompareReport): string {
  const rows = r.runs.map(
    (x) =>
      `${x.engine.padEnd(6)} ${String(Math.round(x.eventsPerSecond)).padStart(12)} ${x.p50Us.toFixed(2).padStart(9)} ` +
      `${x.p99Us.toFixed(2).padStart(9)} ${x.peakHeapMiB.toFixed(1).padStart(10)} ${String(x.results).padStart(8)}`,
  );
  const m = r.mismatches;
  return [
    `${r.events} events, same encoded records through both engines (offline)`,
    `engine     events/s   p50 us    p99 us  heap MiB  results`,
    ...rows,
    `V2/V1 throughput: ${r.speedup.toFixed(2)}x`,
    `results: ${m.matched} matched, ${m.missing} missing in V2, ${m.extra} extra in V2, ${m.differing} differing`,
    ...r.samples.map((s) => `  ${s.kind} ${s.joinKey} ${s.differingFields.join(',')}`),
  ].join('\n');
}
