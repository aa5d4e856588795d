/**
 * The health snapshot each engine instance writes to the health topic periodically; the router's
 * breaker and the rollout controller read it. One JSON object per record, keyed by instance.
 */
import { z } from 'zod';
import { TapioError } from '@tapio/errors';

export const healthSnapshotSchema = z
  .object({
    engine: z.enum(['v1', 'v2']),
    /** Which process reported (e.g. `correlator-v2@host:pid`). */
    instance: z.string().min(1),
    /** When the snapshot was taken, epoch ms (wall clock). */
    at: z.number().int().nonnegative(),
    /** Records evaluated since the previous snapshot. */
    calls: z.number().int().nonnegative(),
    /** Of those, failed ones (rule timeouts, rule errors, dead-lettered input). */
    errors: z.number().int().nonnegative(),
    /** Of those, ones slower than the slow-call time the engine was configured with. */
    slowCalls: z.number().int().nonnegative(),
    /** Consumer lag of the instance's group on its input topic (records), at `at`. */
    lag: z.number().int().nonnegative(),
  })
  .strict()
  .refine((s) => s.errors <= s.calls && s.slowCalls <= s.calls, {
    message: 'errors and slowCalls must not exceed calls',
    path: ['calls'],
  });

export type HealthSnapshot = z.output<typeof healthSnapshotSchema>;

export function encodeHealthSnapshot(snapshot: HealthSnapshot): Buffer {
  return Buffer.from(JSON.stringify(snapshot));
}

/** Parses a health record's value; throws INVALID_JSON, or INVALID_EVENT naming the field. */
export function parseHealthSnapshot(bytes: Buffer | string | null): HealthSnapshot {
  let value: unknown;
  try {
    value = JSON.parse((bytes ?? '').toString());
  } catch (cause) {
    throw new TapioError('INVALID_JSON', `health snapshot is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  return healthSnapshotOf(value);
}

/** Validates an already parsed health record as an engine snapshot; throws INVALID_EVENT naming the field. */
export function healthSnapshotOf(value: unknown): HealthSnapshot {
  return validated(healthSnapshotSchema, value, 'health snapshot');
}

function validated<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as z.output<T>;
  const issue = parsed.error.issues[0] as z.ZodIssue;
  const field = issue.path.join('.') || '(root)';
  throw new TapioError('INVALID_EVENT', `${what}: ${field}: ${issue.message}`, { context: { field } });
}

/**
 * What each router of a group tells the others on the health topic (key `router-frontier/<group>/<instance>`):
 * the event time below which it will route nothing more (`frontier`, null when nothing holds it back).
 * A router routes nothing newer than its peers' lowest frontier plus half the allowed lateness, so that
 * several routers catching up on a backlog stay within the lateness of each other in event time.
 */
export const routerFrontierSchema = z
  .object({
    kind: z.literal('router-frontier'),
    group: z.string().min(1),
    instance: z.string().min(1),
    /** Wall clock, epoch ms. */
    at: z.number().int().nonnegative(),
    /** Event time, epoch ms; Number.MIN_SAFE_INTEGER: a partition not read yet; null: nothing held back. */
    frontier: z.number().int().nullable(),
  })
  .strict();

export type RouterFrontier = z.output<typeof routerFrontierSchema>;

export function encodeRouterFrontier(record: RouterFrontier): Buffer {
  return Buffer.from(JSON.stringify(record));
}

/** The kinds of record on the health topic besides engine snapshots (`kind` absent). */
export type HealthRecordKind = 'engine' | 'router-frontier' | 'comparison' | 'unknown';

/** The `kind` of a parsed health-topic value: engine snapshots carry none. */
export function healthRecordKind(value: unknown): HealthRecordKind {
  if (typeof value !== 'object' || value === null) return 'unknown';
  const kind = (value as { kind?: unknown }).kind;
  if (kind === undefined) return 'engine';
  return kind === 'router-frontier' || kind === 'comparison' ? kind : 'unknown';
}

/** Parses a router frontier record; throws INVALID_EVENT naming the field. */
export function parseRouterFrontier(value: unknown): RouterFrontier {
  return validated(routerFrontierSchema, value, 'router frontier');
}
