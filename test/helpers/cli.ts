import { PassThrough } from 'node:stream';
import { main } from '@tapio/service-cli';

export interface TapioRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `tapio` CLI in-process with captured output. `env` replaces the environment the CLI
 * sees (default: this process's), so a test can point it at its own topics.
 */
export async function runTapio(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<TapioRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await main(['node', 'tapio', ...args], {
    stdout,
    stderr,
    env,
    interrupted: new Promise(() => undefined),
  });
  return { code, stdout: out, stderr: err };
}
