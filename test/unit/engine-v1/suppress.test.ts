import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V1Engine } from '@tapio/engine-v1';
import { V2Engine } from '@tapio/engine-v2';
import { parseEventLine } from '@tapio/events';
import type { Event } from '@tapio/events';

const T0 = 1_750_000_000_000;
const restart = (id: string, s: number): Event =>
  parseEventLine(
    JSON.stringify({
      id,
      timestamp: T0 + s * 1000,
      type: 'pod.restart',
      entity: { kind: 'pod', name: 'web', namespace: 'shop' },
    }),
  );
const KEY = 'pod/shop/web';

for (const [name, make] of [
  ['v1', () => new V1Engine()],
  ['v2', () => new V2Engine()],
] as const) {
  test(`${name}: a detection during a route-change warm-up is withheld and starts no cooldown`, () => {
    const engine = make();
    const until = T0 + 35_000;
    const fired = (e: Event, suppress = -Infinity) =>
      engine.processRouted(e, KEY, ['crash-loop'], suppress).map((r) => r.triggerEventId);
    assert.deepEqual(fired(restart('r1', 0), until), []);
    assert.deepEqual(fired(restart('r2', 10), until), []);
    assert.deepEqual(fired(restart('r3', 20), until), [], 'would fire, but lies before suppressUntil');
    assert.equal(engine.stats.suppressed, 1);
    // No cooldown was started by the withheld detection: the next qualifying event fires at once.
    assert.deepEqual(fired(restart('r4', 40), until), ['r4']);
    // That one was published, so its cooldown (120 s) holds.
    assert.deepEqual(fired(restart('r5', 50)), []);
  });
}
