/** Runs of the pipeline that the CLI starts on a shared cluster (`tapio demo`, `tapio verify`). */
import type { TapioConfig } from '@tapio/config';

/**
 * Config overrides (TAPIO_* variables) that give one run topics, consumer groups and dedup keys of
 * its own (`<kind>.<run>.<topic>`, `<group>-<kind>-<run>`), so that a run neither starts on what an
 * earlier one left (a backlog, committed offsets, a rollout in progress, dedup fingerprints) nor
 * touches a deployment on the same cluster, which keeps the stable names of its config.
 */
export function privateRunEnv(
  config: Pick<TapioConfig, 'topics' | 'groups' | 'dedup'>,
  kind: string,
  runId: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, name] of Object.entries(config.topics)) {
    if (typeof name === 'string') env[`TAPIO_TOPICS__${key.toUpperCase()}`] = `${kind}.${runId}.${name}`;
  }
  for (const [key, group] of Object.entries(config.groups))
    env[`TAPIO_GROUPS__${key.toUpperCase()}`] = `${group}-${kind}-${runId}`;
  env['TAPIO_DEDUP__KEYPREFIX'] = `${config.dedup.keyPrefix}${kind}-${runId}:`;
  return env;
}

/** A run id: sortable by start time, unique among runs started in the same second. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}
