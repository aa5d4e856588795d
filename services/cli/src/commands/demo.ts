/**
 * `tapio demo` (what `npm start` runs): every service as its own process on the local stack, the
 * collector feeding synthetic incidents and noise, and a live view built from the services'
 * /metrics. Ctrl-C (or --duration) stops the services with SIGTERM, so each finishes its batch,
 * commits and leaves its group.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TapioConfig } from '@tapio/config';
import { newRunId, privateRunEnv } from '../run';

export interface DemoService {
  name: string;
  /** Path of the compiled entry point, relative to the repository root. */
  entry: string;
  /** Extra environment (config overrides). */
  env?: Record<string, string>;
}

export interface DemoOptions {
  durationSeconds?: number;
  rate: number;
  basePort: number;
  services: DemoService[];
  env: Readonly<Record<string, string | undefined>>;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  interrupted: Promise<void>;
}

/** Prometheus text format: `name{labels} value` lines into samples. */
export function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** Topics, groups and dedup keys of one demo run only (see privateRunEnv). */
export function demoRunEnv(
  config: Pick<TapioConfig, 'topics' | 'groups' | 'dedup'>,
  runId: string,
): Record<string, string> {
  return privateRunEnv(config, 'demo', runId);
}

export const demoRunId = newRunId;

export const repoRoot = (): string => resolve(__dirname, '../../../..');

interface Running {
  service: DemoService;
  port: number;
  child: ChildProcess;
  exited: Promise<number | null>;
}

function sum(
  samples: ReturnType<typeof parseMetrics>,
  name: string,
  filter: (l: Record<string, string>) => boolean = () => true,
): number {
  return samples.filter((s) => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const root = repoRoot();
  const logDir = join(root, '.stack', 'logs');
  mkdirSync(logDir, { recursive: true });
  const running: Running[] = [];
  const available = options.services.filter((s) => existsSync(join(root, s.entry)));
  const missing = options.services.filter((s) => !available.includes(s));
  if (missing.length > 0) {
    options.stdout.write(`not built, skipped: ${missing.map((s) => s.name).join(', ')} (run \`npm run build\`)\n`);
  }
  available.forEach((service, i) => {
    const entry = join(root, service.entry);
    const port = options.basePort + i;
    const log = createWriteStream(join(logDir, `${service.name}.log`), { flags: 'a' });
    const child = spawn(process.execPath, [entry], {
      cwd: root,
      env: { ...options.env, ...service.env, TAPIO_HTTP__PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    running.push({ service, port, child, exited });
  });
  options.stdout.write(
    `started ${running.map((r) => `${r.service.name} (:${r.port})`).join(', ')}; logs in .stack/logs/<service>.log\n`,
  );

  const started = Date.now();
  const stopAt = options.durationSeconds === undefined ? Infinity : started + options.durationSeconds * 1000;
  let stop = false;
  void options.interrupted.then(() => (stop = true));
  let previousIn = 0;
  let previousAt = started;
  while (!stop && Date.now() < stopAt) {
    await new Promise((r) => setTimeout(r, 1000));
    const samples: ReturnType<typeof parseMetrics> = [];
    const down: string[] = [];
    for (const r of running) {
      if (r.child.exitCode !== null) {
        down.push(`${r.service.name} exited ${r.child.exitCode}`);
        continue;
      }
      try {
        const text = await fetch(`http://127.0.0.1:${r.port}/metrics`, { signal: AbortSignal.timeout(800) }).then((x) =>
          x.text(),
        );
        samples.push(...parseMetrics(text));
      } catch {
        down.push(`${r.service.name} not answering`);
      }
    }
    const now = Date.now();
    const eventsIn = sum(samples, 'tapio_collector_events_total');
    const rate = ((eventsIn - previousIn) * 1000) / Math.max(1, now - previousAt);
    previousIn = eventsIn;
    previousAt = now;
    const toV1 = sum(samples, 'tapio_engine_selection_count', (l) => l['engine'] === 'v1');
    const toV2 = sum(samples, 'tapio_engine_selection_count', (l) => l['engine'] === 'v2');
    const byRule = new Map<string, number>();
    for (const s of samples) {
      if (s.name !== 'tapio_results_total') continue;
      const key = `${s.labels['rule_id']} (${s.labels['engine']})`;
      byRule.set(key, (byRule.get(key) ?? 0) + s.value);
    }
    const forwarded = sum(samples, 'tapio_dedup_results_total', (l) => l['outcome'] !== 'duplicate');
    const duplicates = sum(samples, 'tapio_dedup_results_total', (l) => l['outcome'] === 'duplicate');
    const errors = sum(samples, 'tapio_errors_total');
    const dlq = sum(samples, 'tapio_dlq_total');
    const lines = [
      `tapio demo  ${Math.round((now - started) / 1000)} s  (Ctrl-C stops)`,
      `events in      ${Math.round(eventsIn)} total, ${Math.round(rate)} events/s`,
      `routed         v1 ${Math.round(toV1)}  v2 ${Math.round(toV2)}` +
        (toV1 + toV2 > 0 ? `  (${((100 * toV2) / (toV1 + toV2)).toFixed(1)} % v2)` : ''),
      `detections     ${[...byRule.values()].reduce((a, b) => a + b, 0)}`,
      ...[...byRule].sort().map(([k, v]) => `  ${k.padEnd(44)} ${v}`),
      `dedup          ${forwarded} forwarded, ${duplicates} duplicates collapsed`,
      `errors         ${errors} (dead-lettered ${dlq})`,
      ...(down.length > 0 ? [`services       ${down.join(', ')}`] : []),
    ];
    if (options.stdout.isTTY) options.stdout.write('\x1b[H\x1b[2J' + lines.join('\n') + '\n');
    else if (Math.round((now - started) / 1000) % 5 === 0) options.stdout.write(lines.join('\n') + '\n\n');
  }

  options.stdout.write('stopping services (SIGTERM)...\n');
  for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGTERM');
  const codes = await Promise.all(
    running.map((r) =>
      Promise.race([
        r.exited,
        new Promise<number | null>((res) =>
          setTimeout(() => {
            r.child.kill('SIGKILL');
            res(-9);
          }, 20_000),
        ),
      ]),
    ),
  );
  const bad = running.flatMap((r, i) => (codes[i] === 0 ? [] : [`${r.service.name} (${codes[i]})`]));
  options.stdout.write(bad.length === 0 ? 'all services stopped cleanly\n' : `not clean: ${bad.join(', ')}\n`);
  return bad.length === 0 ? 0 : 1;
}
