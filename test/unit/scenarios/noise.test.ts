import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event } from '@tapio/events';
import { Rng, generateNoise } from '@tapio/scenarios';
import { runChecks } from './rule-checks';

const START_MS = Date.UTC(2025, 0, 15, 9, 0, 0);
const noise = generateNoise({ seed: 2024, startMs: START_MS, count: 20_000, durationMs: 3_600_000 });

function podOf(e: Event): string | null {
  if (e.entity.kind === 'pod') return `${e.entity.namespace}/${e.entity.name}`;
  if (e.entity.kind === 'container' || e.entity.kind === 'process') return `${e.entity.namespace}/${e.entity.pod}`;
  return null;
}

test('noise covers thousands of pods, tens of nodes and many namespaces', () => {
  assert.equal(noise.length, 20_000);
  const pods = new Set(noise.map(podOf).filter((p) => p !== null));
  const nodes = new Set(
    noise.map((e) => (e.entity.kind === 'node' ? e.entity.name : e.entity.node)).filter((n) => n !== null),
  );
  const namespaces = new Set(noise.map((e) => e.entity.namespace).filter((n) => n !== null));
  const types = new Set(noise.map((e) => e.type));
  assert.ok(pods.size >= 1000, `only ${pods.size} pods`);
  assert.ok(nodes.size >= 20 && nodes.size < 100, `${nodes.size} nodes`);
  assert.ok(namespaces.size >= 10, `${namespaces.size} namespaces`);
  for (const t of [
    'memory.usage',
    'cpu.usage',
    'cpu.throttle',
    'disk.usage',
    'pod.restart',
    'pod.scheduled',
    'deployment.scaled',
  ]) {
    assert.ok(types.has(t), `noise lacks ${t}`);
  }
});

test('noise alone satisfies no rule, in timestamp order', () => {
  assert.deepEqual(runChecks(noise), []);
});

test('noise satisfies no rule in any delivery order either', () => {
  const rng = new Rng(77);
  assert.deepEqual(runChecks(rng.shuffled(noise), undefined, Number.POSITIVE_INFINITY), []);
});

test('noise timestamps stay in range and ids are unique', () => {
  assert.equal(new Set(noise.map((e) => e.id)).size, noise.length);
  for (let i = 0; i < noise.length; i++) {
    const e = noise[i]!;
    assert.ok(e.timestamp >= START_MS && e.timestamp < START_MS + 3_600_000);
    if (i > 0) assert.ok(noise[i - 1]!.timestamp <= e.timestamp);
  }
});

test('noise memory is well under the limit', () => {
  for (const e of noise.filter((x) => x.type === 'memory.usage')) {
    assert.ok(e.attributes['usage_bytes']! / e.attributes['limit_bytes']! < 0.6, e.id);
  }
});

test('noise is deterministic in the seed', () => {
  const again = generateNoise({ seed: 2024, startMs: START_MS, count: 500, durationMs: 600_000 });
  assert.deepEqual(generateNoise({ seed: 2024, startMs: START_MS, count: 500, durationMs: 600_000 }), again);
  assert.notDeepEqual(generateNoise({ seed: 2025, startMs: START_MS, count: 500, durationMs: 600_000 }), again);
});
