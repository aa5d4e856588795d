/**
 * One side of an A/B comparison of two builds of @tapio/engine-v2 (scripts/engine-ab.sh runs two of
 * these at once on the same core): decodes and evaluates bench/engine.ts's stream with the build in
 * `dir` again and again until `deadline`, and prints its rate per CPU-second as JSON.
 *
 * Why this shape: on a shared 2-vCPU VM, V2 (bound by memory loads) varies by up to 1.5x between
 * identical runs, and the two vCPUs differ from each other, so runs one after the other cannot see a
 * 5 % change. Two processes time-sliced on one core see the same neighbours at the same moments;
 * counting CPU time rather than wall time takes out the slices each waits for the other. The same
 * build against itself gives 0.99-1.00 (two cores, each once).
 *
 *   node bench/dist/engine-ab.js <engine-v2 dist dir> <start epoch ms> <duration ms> [--unchecked]
 *
 * --unchecked: do not require the stream's 120 results (for probes that change results on purpose).
 */
import { performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { EVENT_SCHEMA, encodeWire, eventAvroType } from '@tapio/events';
import type { AvroSchema, Result } from '@tapio/events';
import type * as EngineV2 from '@tapio/engine-v2';
import { generateStream } from '@tapio/scenarios';
import { ENGINE_BATCH, engineStream } from './engine-stream';

const [dir, startArg, durationArg] = process.argv.slice(2);
if (dir === undefined || startArg === undefined || durationArg === undefined) {
  console.error('usage: engine-ab <engine-v2 dist dir> <start epoch ms> <duration ms> [--unchecked]');
  process.exit(2);
}
const unchecked = process.argv.includes('--unchecked');
const startAt = Number(startArg);
const durationMs = Number(durationArg);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const M = require(resolve(dir, 'index.js')) as typeof EngineV2;

// bench/engine.ts's stream (full size) and batch size.
const stream = generateStream(engineStream(false));
const expected = stream.expected.length;
const buffers = stream.events.map((e) => encodeWire(1, eventAvroType, e));
const batches: Buffer[][] = [];
for (let i = 0; i < buffers.length; i += ENGINE_BATCH) batches.push(buffers.slice(i, i + ENGINE_BATCH));

function run(): void {
  const engine = new M.V2Engine();
  const decoder = new M.RuleEventDecoder({ fetchSchema: () => Promise.reject(new Error('no registry')) });
  decoder.addWriterSchema(1, EVENT_SCHEMA as unknown as AvroSchema);
  // The base may predate projectTypes (then its decoder reads every field of the read types).
  const d = decoder as unknown as { projectTypes?: (n: Map<string, number>) => void };
  const e = engine as unknown as { fieldNeeds?: () => Map<string, number> };
  if (d.projectTypes !== undefined && e.fieldNeeds !== undefined)
    d.projectTypes.call(decoder, e.fieldNeeds.call(engine));
  else decoder.fullTypesOnly(engine.inputTypes());
  const rows = new M.RowBatch();
  const out: Result[] = [];
  let results = 0;
  for (const batch of batches) {
    decoder.decodeRows(batch, rows);
    engine.processRows(rows, out);
    results += out.length;
    out.length = 0;
  }
  if (!unchecked && results !== expected) throw new Error(`${dir}: ${results} results, expected ${expected}`);
}

run(); // warm-up
while (Date.now() < startAt) {
  // Both sides start together: spin (a timer would let the other side start first).
}
let runs = 0;
let cpuMs = 0;
const started = performance.now();
while (Date.now() < startAt + durationMs) {
  const before = process.cpuUsage();
  run();
  const used = process.cpuUsage(before);
  cpuMs += (used.user + used.system) / 1000;
  runs += 1;
}
console.log(
  JSON.stringify({
    dir,
    runs,
    eventsPerCpuSecond: Math.round((runs * buffers.length) / (cpuMs / 1000)),
    wallSeconds: Math.round(performance.now() - started) / 1000,
  }),
);
