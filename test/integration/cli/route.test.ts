import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRoutingConfig } from '@tapio/routing';
import { createTopicsReady } from '@tapio/kafka';
import { admin, kafka, randomName } from '../../helpers/stack';
import { runTapio } from '../../helpers/cli';

const tapio = (args: string[], env: Record<string, string>) => runTapio(args, { ...process.env, ...env });

test('tapio route set / migrate rules write epochs that tapio route show and the routers read', async (t) => {
  const control = randomName('control');
  const a = await admin(t);
  await createTopicsReady(a, [
    { topic: control, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
  ]);
  t.after(() => a.deleteTopics({ topics: [control] }).catch(() => undefined));
  const env = { TAPIO_TOPICS__CONTROL: control };

  const empty = await tapio(['route', 'show'], env);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /epoch 0 \(nothing on the control topic yet: defaults in force\)/);

  const set = await tapio(['route', 'set', '--percentage', '40', '--category', 'network=v2', '--pod', 'web-1=v1'], env);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /epoch 1\n/);
  const migrated = await tapio(['migrate', 'rules', '--category', 'storage', '--to', 'v2'], env);
  assert.match(migrated.stdout, /category storage -> v2 \(epoch 2\)/);

  const doc = await readRoutingConfig(kafka(), control);
  assert.ok(doc);
  assert.equal(doc.epoch, 2);
  assert.equal(doc.v2Percentage, 40);
  assert.deepEqual(doc.categoryOverrides, { network: 'v2', storage: 'v2' });
  assert.deepEqual(doc.entityOverrides.pod, { 'web-1': 'v1' });

  const shown = await tapio(['route', 'show', '--json'], env);
  assert.equal((JSON.parse(shown.stdout) as { epoch: number }).epoch, 2);
  const analyzed = await tapio(['migrate', 'analyze-rules'], env);
  assert.match(analyzed.stdout, /dns-failure-storm +network +namespace +v2 \(category override\)/);
  assert.match(analyzed.stdout, /crash-loop +reliability +pod +40 % of keys on v2/);

  const bad = await tapio(['route', 'set', '--category', 'bogus=v2'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /INVALID_CONFIG: routing config: categoryOverrides\.bogus/);
  assert.equal((await readRoutingConfig(kafka(), control))?.epoch, 2, 'a refused change writes nothing');
});
