/**
 * `tapio rollout start | status | pause | resume | promote | abort | retry`: commands go onto the
 * control topic under `rollout-command` (the status page's buttons use the same path); the active
 * rollout controller applies them within a second. `status` reads the stored rollout state.
 */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { TapioConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import { createKafka } from '@tapio/kafka';
import {
  formatRolloutStatus,
  parseStageSpec,
  readRolloutState,
  resolveStages,
  sendRolloutCommand,
} from '@tapio/rollout';
import type { CommandName, RolloutCommand, StageInput } from '@tapio/rollout';

export interface RolloutIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function who(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/** The start command for a plan: `--stages` when given, else `rollout.stages` of the config. */
export function startCommand(config: Readonly<TapioConfig>, stagesSpec: string | undefined, by: string, atMs: number) {
  const stages: StageInput[] =
    stagesSpec === undefined ? config.rollout.stages.map((s) => ({ ...s })) : parseStageSpec(stagesSpec);
  const command: RolloutCommand = {
    command: 'start',
    at: atMs,
    by,
    id: `rollout-${new Date(atMs).toISOString()}`,
    stages: resolveStages(stages, config.rollout.criteria),
  };
  return command;
}

export async function sendCommand(config: Readonly<TapioConfig>, command: RolloutCommand): Promise<void> {
  const producer = createKafka(config).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    await sendRolloutCommand(producer, config.topics.control, command);
  } finally {
    await producer.disconnect();
  }
}

export async function rolloutStatus(config: Readonly<TapioConfig>, json: boolean, io: RolloutIo): Promise<number> {
  const record = await readRolloutState(createKafka(config), config.topics.control);
  if (json) {
    io.stdout.write(JSON.stringify(record?.state ?? null, null, 2) + '\n');
  } else if (record === null) {
    io.stdout.write('rollout: none started (tapio rollout start)\n');
  } else {
    io.stdout.write(formatRolloutStatus(record.state, Date.now()));
  }
  return 0;
}

const SIMPLE: [CommandName, string][] = [
  ['pause', 'stop advancing (a breach still rolls back)'],
  ['resume', 'continue a paused rollout'],
  ['promote', 'pass a manual gate (or the minimum duration of the current stage)'],
  ['abort', 'stop the rollout and send V2 back to 0 %'],
  ['retry', 'restart the stage that was rolled back or aborted'],
];

/** Adds `tapio rollout ...` to the program. */
export function registerRolloutCommands(
  program: Command,
  io: RolloutIo,
  setExit: (code: number) => void,
  configOf: (cmd: Command) => Readonly<TapioConfig>,
): void {
  const rollout = program.command('rollout').description('progressive V2 rollout (the rollout controller acts)');
  rollout
    .command('start')
    .description('start a rollout with the configured stages (rollout.stages) or --stages')
    .option('--stages <list>', 'percentage:min-duration[:gate],... e.g. 10:60s,50:5m:gate,100:10m')
    .option('--by <name>', 'who starts it (recorded in the history)', who())
    .action(async (opts: { stages?: string; by: string }, cmd: Command) => {
      const config = configOf(cmd);
      let command: RolloutCommand;
      try {
        command = startCommand(config, opts.stages, opts.by, Date.now());
      } catch (err) {
        if (err instanceof TapioError && err.code === 'INVALID_CONFIG') throw new InvalidArgumentError(err.message);
        throw err;
      }
      await sendCommand(config, command);
      const plan = (command.stages ?? []).map((s) => `${s.percentage}%${s.manualGate ? ' (gate)' : ''}`).join(' → ');
      io.stderr.write(`tapio rollout: start sent (${plan}) to ${config.topics.control}\n`);
      setExit(0);
    });
  rollout
    .command('status')
    .description('the stored rollout state: stage, criteria at the last decision, history')
    .option('--json', 'print the state as JSON', false)
    .action(async (opts: { json: boolean }, cmd: Command) => {
      setExit(await rolloutStatus(configOf(cmd), opts.json, io));
    });
  for (const [name, description] of SIMPLE) {
    rollout
      .command(name)
      .description(description)
      .option('--by <name>', 'who sends it (recorded in the history)', who())
      .action(async (opts: { by: string }, cmd: Command) => {
        const config = configOf(cmd);
        await sendCommand(config, { command: name, at: Date.now(), by: opts.by });
        io.stderr.write(`tapio rollout: ${name} sent to ${config.topics.control}\n`);
        setExit(0);
      });
  }
}
