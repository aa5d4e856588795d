// R3 (oom-prediction) reads R2's (memory-leak) memory.usage lane while both see the same events;
// a routed record that lists only one of them gives R3 a lane of its own. Every path equals V1.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Event, Result } from '@tapio/events';
import { V1Engine } from '@tapio/engine-v1';
import { V2Engine } from '@tapio/engine-v2';
import { memoryLeak, oomPrediction } from '@tapio/rules';
import { EventsBuilder } from '../../helpers/events-builder';
import { withRedeliveries } from '../../helpers/redeliver';

const NO_TIMEOUT = { ruleTimeoutMs: 60_000 };
type Listing = 'both' | 'r2' | 'r3' | 'process';

function asV1(results: readonly Result[]): Result[] {
  return results.map((r) => ({ ...r, engine: 'v1' }));
}

/** Rising usage with noise and some swapped neighbours (out of order), for several containers. */
function memoryStream(seed: number, containers: number, samples: number): Event[] {
  const b = new EventsBuilder();
  let x = seed;
  const rand = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  const events: Event[] = [];
  for (let s = 0; s < samples; s++) {
    for (let c = 0; c < containers; c++) {
      const usage = 5e8 + (s % 200) * 2.4e6 + rand() * 3e6;
      events.push(
        b.container('memory.usage', s * 15 + c, {
          pod: `pod-${c}`,
          attributes: rand() < 0.05 ? { usage_bytes: usage } : { usage_bytes: usage, limit_bytes: 1e9 },
        }),
      );
    }
  }
  for (let i = 1; i < events.length; i++) {
    if (rand() < 0.1) [events[i - 1], events[i]] = [events[i]!, events[i - 1]!];
  }
  return events;
}

function run(events: readonly Event[], listing: (i: number) => Listing) {
  const v1 = new V1Engine(NO_TIMEOUT);
  const v2 = new V2Engine(NO_TIMEOUT);
  const r1: Result[] = [];
  const r2: Result[] = [];
  events.forEach((e, i) => {
    const how = listing(i);
    if (how === 'process') {
      r1.push(...v1.process(e));
      r2.push(...v2.process(e));
      return;
    }
    const ids =
      how === 'both' ? [memoryLeak.id, oomPrediction.id] : how === 'r2' ? [memoryLeak.id] : [oomPrediction.id];
    const scope = `container/${e.entity.namespace}/${e.entity.pod}/${e.entity.name}`;
    r1.push(...v1.processRouted(e, scope, ids));
    r2.push(...v2.processRouted(e, scope, ids));
  });
  assert.deepEqual(asV1(r2), r1);
  assert.equal(v2.stats.storedEvents, v1.stats.storedEvents);
  assert.equal(v2.stats.lateEvents, v1.stats.lateEvents);
  assert.equal(v2.stats.duplicateEvents, v1.stats.duplicateEvents);
  assert.equal(v2.stats.rules[oomPrediction.id]!.results, v1.stats.rules[oomPrediction.id]!.results);
  return { r1, v1, v2 };
}

describe('R2 and R3 share one memory.usage lane, with V1 results', () => {
  const events = memoryStream(7, 5, 500);

  test('process: both rules fire, and their stored events and late counts equal V1', () => {
    const { r1 } = run(events, () => 'process');
    assert.ok(r1.some((r) => r.ruleId === memoryLeak.id));
    assert.ok(r1.some((r) => r.ruleId === oomPrediction.id));
  });

  test('routed records listing both, then one, then both again (the lane is detached on the first split)', () => {
    const n = events.length;
    const { r1 } = run(events, (i) => (i < n / 3 ? 'both' : i < n / 2 ? (i % 3 === 0 ? 'r3' : 'both') : 'both'));
    assert.ok(r1.some((r) => r.ruleId === oomPrediction.id));
  });

  test('a random mix of process and routed records listing R2, R3 or both', () => {
    for (const seed of [1, 2, 3]) {
      let x = seed;
      const pick = (): Listing => {
        x = (x * 69069 + 1) % 4294967296;
        return (['both', 'r2', 'r3', 'process', 'process', 'both'] as const)[x % 6]!;
      };
      run(memoryStream(seed, 3, 300), () => pick());
    }
  });

  test('redelivered samples are ignored by both rules alike, with the lane shared or detached', () => {
    const twice = withRedeliveries(events, 7, 0.05).events;
    const once = run(events, () => 'process');
    const { r1, v1 } = run(twice, () => 'process');
    assert.deepEqual(r1, once.r1);
    assert.ok(v1.stats.rules[oomPrediction.id]!.duplicateEvents > 0);
    assert.equal(v1.stats.rules[oomPrediction.id]!.duplicateEvents, v1.stats.rules[memoryLeak.id]!.duplicateEvents);
    for (const seed of [4, 5]) {
      let x = seed;
      const pick = (): Listing => {
        x = (x * 69069 + 1) % 4294967296;
        return (['both', 'r2', 'r3', 'process', 'both', 'both'] as const)[x % 6]!;
      };
      run(withRedeliveries(memoryStream(seed, 3, 300), seed, 0.1).events, () => pick());
    }
  });

  test('R3 routed alone before R2 gets its own lane from the start', () => {
    run(events, (i) => (i < 40 ? 'r3' : 'process'));
    run(events, (i) => (i < 40 ? 'r2' : 'process'));
  });
});
