/** `tapio`: the command-line tool. Each command is a thin shell over the packages. */
import { Command, CommanderError } from 'commander';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import { createKafka, ensureTopics, topicSpecs } from '@tapio/kafka';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
}

const defaultIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

function configFrom(cmd: Command, io: Io): Readonly<TapioConfig> {
  const { config } = cmd.optsWithGlobals<{ config?: string }>();
  return loadConfig({ file: config, env: io.env });
}

export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command('tapio')
    .description('Tapio hybrid correlation pipeline tools')
    .option('-c, --config <file>', 'YAML config file (default: $TAPIO_CONFIG, else built-in defaults)')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

  const topics = program.command('topics').description('manage the pipeline topics');
  topics
    .command('ensure')
    .description('create every pipeline topic that is missing (safe to repeat)')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd, io);
      const admin = createKafka(config).admin();
      await admin.connect();
      try {
        const outcome = await ensureTopics(admin, topicSpecs(config));
        for (const o of outcome) io.stdout.write(`${o.action.padEnd(16)} ${o.topic} (${o.partitions} partitions)\n`);
      } finally {
        await admin.disconnect();
      }
      setExit(0);
    });

  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: readonly string[], io: Io = defaultIo()): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof TapioError) {
      io.stderr.write(`tapio: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
