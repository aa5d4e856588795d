/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function (top N) and per
 * area of the pipeline, so that BENCHMARKS.md can say where the time goes.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/dist/e2e.js --only v2
 *   node bench/dist/cpu-profile.js /tmp/prof/<file>.cpuprofile [topN]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Areas by source location, first match wins. */
const AREAS: [string, RegExp][] = [
  [
    'kafkajs: fetch decode (record batches, varints, crc)',
    /kafkajs\/src\/protocol\/(recordBatch|messageSet|decoder|crc)/,
  ],
  ['kafkajs: produce encode', /kafkajs\/src\/protocol\/(requests\/produce|encoder|recordBatch\/v0\/index|record\/)/],
  ['kafkajs: other protocol', /kafkajs\/src\/protocol\//],
  ['kafkajs: consumer (runner, batches, offsets)', /kafkajs\/src\/consumer\//],
  ['kafkajs: producer', /kafkajs\/src\/producer\//],
  ['kafkajs: network', /kafkajs\/src\/(network|broker|cluster)\//],
  ['kafkajs: other', /kafkajs\//],
  ['schema-registry client', /confluent-schema-registry/],
  ['avsc (Avro)', /avsc\//],
  ['tapio events (decode, codecs)', /packages\/events\//],
  ['V2 engine (decode + evaluation)', /packages\/engine-v2\//],
  ['V1 engine (evaluation)', /packages\/engine-v1\//],
  ['rules (shared definitions)', /packages\/rules\//],
  ['routing', /packages\/routing\//],
  ['correlator / router services', /services\//],
  ['metrics (prom-client)', /prom-client/],
  ['logging (pino)', /pino/],
  ['benchmark harness', /bench\/dist\//],
  ['node internals', /^node:|^internal\//],
];

function areaOf(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return '(program: V8/native)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  for (const [name, re] of AREAS) if (re.test(url)) return name;
  return 'other JS';
}

function main(): void {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: cpu-profile <file.cpuprofile> [topN]');
  const top = Number(process.argv[3] ?? 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self time per node: the sampling interval that follows each sample.
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const totalUs = profile.endTime - profile.startTime;
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id) as ProfileNode;
    const area = areaOf(node);
    areas.set(area, (areas.get(area) ?? 0) + us);
    if (area !== 'idle') busyUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const where =
      url === '' ? '' : ` ${url.replace(/^.*node_modules\//, '').replace(/^.*\/work\/main\//, '')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const pct = (us: number): string => `${((us / busyUs) * 100).toFixed(1).padStart(5)} %`;
  process.stdout.write(
    `profile ${(totalUs / 1e6).toFixed(1)} s, busy ${(busyUs / 1e6).toFixed(1)} s (shares below are of busy time)\n\nby area:\n`,
  );
  for (const [area, us] of [...areas].sort((a, b) => b[1] - a[1])) {
    if (area === 'idle') continue;
    process.stdout.write(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${area}\n`);
  }
  process.stdout.write(`\ntop ${top} functions by self time:\n`);
  for (const [fn, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top + 1)) {
    if (fn === '(idle)') continue;
    process.stdout.write(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${fn}\n`);
  }
}

main();
