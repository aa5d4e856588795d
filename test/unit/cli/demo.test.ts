import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '@tapio/config';
import { demoRunEnv, demoRunId } from '@tapio/service-cli';

test('a demo run gets topics, groups and dedup keys of its own, distinct from the config and other runs', () => {
  const config = loadConfig({ env: {} });
  const a = loadConfig({ env: demoRunEnv(config, demoRunId()) });
  const b = loadConfig({ env: demoRunEnv(config, demoRunId()) });
  for (const key of Object.keys(config.groups) as (keyof typeof config.groups)[]) {
    assert.notEqual(a.groups[key], config.groups[key], `groups.${key}`);
    assert.notEqual(a.groups[key], b.groups[key], `groups.${key} of two runs`);
  }
  for (const key of Object.keys(config.topics) as (keyof typeof config.topics)[]) {
    if (typeof config.topics[key] !== 'string') continue;
    assert.notEqual(a.topics[key], config.topics[key], `topics.${key}`);
    assert.notEqual(a.topics[key], b.topics[key], `topics.${key} of two runs`);
  }
  assert.ok(a.dedup.keyPrefix.startsWith(config.dedup.keyPrefix));
  assert.notEqual(a.dedup.keyPrefix, config.dedup.keyPrefix);
  assert.notEqual(a.dedup.keyPrefix, b.dedup.keyPrefix);
  // Only names change: partitions and the rest of the config stay as configured.
  assert.equal(a.topics.eventPartitions, config.topics.eventPartitions);
});
