/**
 * Pipeline services as child processes (`node services/<name>/dist/main.js`), each with its own
 * /metrics port and log file, for tools and tests that run the real pipeline on private topics:
 * `tapio verify` and the integrity harness. Configuration goes in through TAPIO_* variables only.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface ServiceProcess {
  readonly name: string;
  /** Counts every start of this runner, so log files never collide. */
  readonly instance: number;
  readonly port: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** The exit code, or -1 when ended by a signal. */
  readonly exited: Promise<number | null>;
}

export interface ServiceProcessesOptions {
  /** The repository root: entry points are `<root>/services/<name>/dist/main.js`. */
  root: string;
  /** The whole environment of every process (the caller merges process.env in if it wants it). */
  env: Readonly<Record<string, string | undefined>>;
  logDir: string;
  /** How long a start waits for /healthz. Default 60 s. */
  readyTimeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP port that was free a moment ago (the service binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => res(port));
    });
  });
}

export class ServiceProcesses {
  private readonly procs: ServiceProcess[] = [];
  private nextInstance = 0;

  constructor(private readonly options: ServiceProcessesOptions) {}

  get logDir(): string {
    return this.options.logDir;
  }

  /**
   * Starts `services/<dir>/dist/main.js` (dir defaults to name) and resolves once /healthz answers.
   * `env` is added to the runner's environment for this process only.
   */
  async start(name: string, extra: { dir?: string; env?: Record<string, string> } = {}): Promise<ServiceProcess> {
    const entry = join(this.options.root, 'services', extra.dir ?? name, 'dist', 'main.js');
    if (!existsSync(entry)) throw new Error(`${entry} is not built; run npx tsc -b`);
    const port = await freePort();
    const instance = this.nextInstance++;
    const logFile = join(this.options.logDir, `${name}-${instance}.log`);
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(process.execPath, [entry], {
      cwd: this.options.root,
      env: { ...this.options.env, ...extra.env, TAPIO_HTTP__PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(signal ? -1 : code)));
    const proc: ServiceProcess = { name, instance, port, logFile, child, exited };
    this.procs.push(proc);
    await this.ready(proc);
    return proc;
  }

  private async ready(proc: ServiceProcess): Promise<void> {
    const timeoutMs = this.options.readyTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.child.exitCode !== null) {
        throw new Error(`${proc.name} exited ${proc.child.exitCode} at start; see ${proc.logFile}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${proc.port}/healthz`, { signal: AbortSignal.timeout(500) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    throw new Error(`${proc.name} not healthy within ${timeoutMs / 1000} s; see ${proc.logFile}`);
  }

  /** Running processes, of one service or all. */
  live(name?: string): ServiceProcess[] {
    return this.procs.filter(
      (p) => (name === undefined || p.name === name) && p.child.exitCode === null && p.child.signalCode === null,
    );
  }

  /** Processes that have ended (by themselves, or stopped). */
  ended(): ServiceProcess[] {
    return this.procs.filter((p) => p.child.exitCode !== null || p.child.signalCode !== null);
  }

  /** Sends the signal; SIGKILL after timeoutMs. Resolves with the exit code (-9 when it had to kill). */
  async kill(proc: ServiceProcess, signal: 'SIGKILL' | 'SIGTERM', timeoutMs = 40_000): Promise<number | null> {
    proc.child.kill(signal);
    // A timer left running would hold the caller's process open for the whole timeout.
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      proc.exited,
      new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (code === 'timeout') {
      proc.child.kill('SIGKILL');
      await proc.exited;
      return -9;
    }
    return code;
  }

  /** Sums a metric over the live processes' /metrics, by one label. */
  async metric(name: string, label: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const p of this.live()) {
      const text = await fetch(`http://127.0.0.1:${p.port}/metrics`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.text())
        .catch(() => '');
      for (const line of text.split('\n')) {
        if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
        const value = Number(line.slice(line.lastIndexOf(' ') + 1));
        const m = new RegExp(`${label}="([^"]*)"`).exec(line);
        const key = m?.[1] ?? '';
        out[key] = (out[key] ?? 0) + value;
      }
    }
    return out;
  }

  /** SIGTERM to all that run; returns the ones that did not stop cleanly. */
  async stopAll(timeoutMs = 30_000): Promise<string[]> {
    const bad: string[] = [];
    await Promise.all(
      this.live().map(async (p) => {
        const code = await this.kill(p, 'SIGTERM', timeoutMs);
        if (code !== 0) bad.push(`${p.name}#${p.instance} (${code})`);
      }),
    );
    return bad;
  }
}
