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
  const parsed = healthSnapshotSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0] as z.ZodIssue;
  const field = issue.path.join('.') || '(root)';
  throw new TapioError('INVALID_EVENT', `health snapshot: ${field}: ${issue.message}`, { context: { field } });
}
