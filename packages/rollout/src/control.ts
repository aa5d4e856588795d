/**
 * The rollout on the control topic (compacted, one partition): the state under key `rollout`
 * (written by the active controller) and operator commands under key `rollout-command` (written by
 * the CLI and the status page, applied by the active controller), both JSON.
 */
import { z } from 'zod';
import { TapioError } from '@tapio/errors';
import { readTopicToEnd } from '@tapio/kafka';
import type { Kafka, Producer } from '@tapio/kafka';
import { COMMANDS, DECISIONS, STATUSES } from './machine';
import type { RolloutCommand, RolloutState } from './machine';
import { CRITERIA, stageSchema } from './plan';

export const ROLLOUT_STATE_KEY = 'rollout';
export const ROLLOUT_COMMAND_KEY = 'rollout-command';

const criterionResultSchema = z
  .object({
    name: z.enum(CRITERIA),
    value: z.number().nullable(),
    max: z.number(),
    samples: z.number(),
    minSamples: z.number(),
    required: z.boolean(),
    verdict: z.enum(['met', 'breached', 'inconclusive', 'not-judged']),
  })
  .strict();

const historyKinds = [...DECISIONS, ...COMMANDS.map((c) => `command:${c}` as const)] as [string, ...string[]];

const ms = z.number().int().nonnegative();

export const rolloutStateSchema = z
  .object({
    version: z.literal(1),
    revision: z.number().int().nonnegative(),
    id: z.string(),
    status: z.enum(STATUSES),
    stages: z.array(stageSchema),
    stageIndex: z.number().int().nonnegative(),
    startedAtMs: ms,
    stageStartedAtMs: ms,
    updatedAtMs: ms,
    pausedFrom: z.enum(['running', 'waiting-promote']).nullable(),
    rollback: z
      .object({
        atMs: ms,
        stageIndex: z.number().int().nonnegative(),
        cause: z.enum(['breach', 'abort']),
        reason: z.string(),
        breaches: z.array(criterionResultSchema),
        by: z.string().optional(),
      })
      .strict()
      .nullable(),
    lastCommandOffset: z.string().regex(/^\d+$/).nullable(),
    lastDecision: z
      .object({ decision: z.enum(DECISIONS), code: z.string(), stageIndex: z.number().int().nonnegative() })
      .strict()
      .nullable(),
    history: z.array(
      z
        .object({
          atMs: ms,
          kind: z.enum(historyKinds),
          stageIndex: z.number().int().nonnegative(),
          percentage: z.number(),
          reason: z.string(),
          criteria: z.array(criterionResultSchema).optional(),
          by: z.string().optional(),
        })
        .strict(),
    ),
  })
  .strict()
  .refine((s) => s.status === 'idle' || s.stageIndex < s.stages.length, {
    message: 'stageIndex must name one of the stages',
    path: ['stageIndex'],
  });

export const rolloutCommandSchema = z
  .object({
    command: z.enum(COMMANDS),
    at: ms,
    by: z.string(),
    stages: z.array(stageSchema).min(1).optional(),
    id: z.string().min(1).optional(),
  })
  .strict()
  .refine((c) => c.command !== 'start' || c.stages !== undefined, {
    message: 'a start command needs its stages',
    path: ['stages'],
  });

function parseJson<T>(what: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>, bytes: Buffer | string | null): T {
  let value: unknown;
  try {
    value = JSON.parse((bytes ?? '').toString());
  } catch (cause) {
    throw new TapioError('INVALID_JSON', `${what} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0] as z.ZodIssue;
  const field = issue.path.join('.') || '(root)';
  throw new TapioError('INVALID_CONFIG', `${what}: ${field}: ${issue.message}`, { context: { field } });
}

/** Parses and validates the state record's value (INVALID_JSON, or INVALID_CONFIG naming the field). */
export function parseRolloutState(bytes: Buffer | string | null): RolloutState {
  return parseJson('rollout state', rolloutStateSchema, bytes) as RolloutState;
}

export function encodeRolloutState(state: RolloutState): Buffer {
  return Buffer.from(JSON.stringify(state));
}

/** Parses and validates a command record's value (INVALID_JSON, or INVALID_CONFIG naming the field). */
export function parseRolloutCommand(bytes: Buffer | string | null): RolloutCommand {
  return parseJson('rollout command', rolloutCommandSchema, bytes);
}

export function encodeRolloutCommand(cmd: RolloutCommand): Buffer {
  return Buffer.from(JSON.stringify(rolloutCommandSchema.parse(cmd)));
}

/** Puts a command on the control topic (acks=all); the active controller applies it within a second. */
export async function sendRolloutCommand(producer: Producer, topic: string, cmd: RolloutCommand): Promise<void> {
  await producer.send({ topic, acks: -1, messages: [{ key: ROLLOUT_COMMAND_KEY, value: encodeRolloutCommand(cmd) }] });
}

export async function writeRolloutState(producer: Producer, topic: string, state: RolloutState): Promise<void> {
  await producer.send({ topic, acks: -1, messages: [{ key: ROLLOUT_STATE_KEY, value: encodeRolloutState(state) }] });
}

export interface RolloutStateRecord {
  state: RolloutState;
  offset: string;
}

/**
 * The latest valid rollout state on the control topic, or null when there is none. Reads the topic
 * from the beginning to its end at call time (for `tapio rollout status`).
 */
export async function readRolloutState(
  kafka: Kafka,
  topic: string,
  timeoutMs = 30_000,
): Promise<RolloutStateRecord | null> {
  let latest: RolloutStateRecord | null = null;
  await readTopicToEnd(
    kafka,
    topic,
    (message) => {
      if (message.key?.toString() !== ROLLOUT_STATE_KEY) return;
      try {
        latest = { state: parseRolloutState(message.value), offset: message.offset };
      } catch (err) {
        if (!(err instanceof TapioError)) throw err;
      }
    },
    { timeoutMs, groupPrefix: 'tapio-rollout-read' },
  );
  return latest;
}
