import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PartitionAligner } from '@tapio/routing';
import type { AlignEntry, Taken } from '@tapio/routing';

/** Records of one partition at the given event times, offsets from `first`. */
const batch = (times: readonly number[], first = 0): AlignEntry<string>[] =>
  times.map((ts, i) => ({ ts, offset: String(first + i), item: `${ts}` }));

const takeAll = (a: PartitionAligner<string>, nowMs = 0): Taken<string>[] => {
  const out: Taken<string>[] = [];
  a.take(Number.MAX_SAFE_INTEGER, nowMs, out);
  return out;
};
const times = (taken: readonly Taken<string>[]): number[] => taken.map((t) => t.entry.ts);

test('aligner: a partition not seen since the assignment holds the others back', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([0, 10, 20]), false, 0);
  assert.deepEqual(takeAll(a), [], 'partition 1 may still deliver older events');
  a.ingest(1, batch([5, 15, 25, 35]), false, 0);
  // Merged by event time until partition 0 runs dry at 20; partition 1 then waits above 20.
  assert.deepEqual(times(takeAll(a)), [0, 5, 10, 15, 20]);
  assert.equal(a.buffered(1), 2);
  a.ingest(0, batch([30, 40], 3), false, 0);
  assert.deepEqual(times(takeAll(a)), [25, 30, 35]);
});

test('aligner: a caught-up partition does not hold the others back; records keep offset order per partition', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([100, 90, 110]), true, 0);
  a.ingest(1, batch([95, 120]), false, 0);
  const out = takeAll(a);
  // 100 before 90: within a partition the order is the offsets'. Partition 0, dry but caught up, holds nothing.
  assert.deepEqual(times(out), [95, 100, 90, 110, 120]);
  a.ingest(0, batch([130], 3), false, 0);
  a.ingest(1, batch([140], 2), false, 0);
  assert.deepEqual(times(takeAll(a)), [130], 'partition 0, dry and lagging, holds 140 back');
});

test('aligner: a partition never seen stops holding after a whole fetch delivered nothing for it; one seen to lag does not', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000 });
  a.assign([0, 1], 0);
  a.ingest(1, batch([5, 50]), false, 0);
  assert.deepEqual(times(takeAll(a)), [], 'partition 0 was never seen');
  a.fetchStarted(); // a fetch already in flight at the assignment
  assert.deepEqual(times(takeAll(a)), []);
  a.fetchStarted(); // the next one started after it, and was delivered entirely without partition 0
  assert.deepEqual(times(takeAll(a)), [5, 50]);

  a.ingest(0, batch([60]), false, 0);
  a.ingest(1, batch([70], 2), false, 0);
  assert.deepEqual(times(takeAll(a)), [60], 'partition 0 ran dry at 60, lagging');
  a.fetchStarted();
  a.fetchStarted();
  a.fetchStarted();
  // Kafka leaves out a partition whose next record batch exceeds the per-partition limit: no proof of idleness.
  assert.deepEqual(times(takeAll(a)), []);
  assert.equal(a.forced, 0);
});

test('aligner: maxHoldMs bounds how long a dry partition holds, and counts forced releases', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 1000 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([0]), false, 0);
  a.ingest(1, batch([5, 50]), false, 0);
  assert.deepEqual(times(takeAll(a, 10)), [0]);
  assert.deepEqual(times(takeAll(a, 900)), []);
  assert.deepEqual(times(takeAll(a, 1010)), [5, 50]);
  assert.equal(a.forced, 2);
});

test('aligner: re-fetched offsets are skipped; ack, commit and restart offsets', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000 });
  a.assign([3], 0);
  a.ingest(3, batch([1, 2, 3], 40), false, 0);
  a.ingest(3, batch([2, 3, 4], 41), true, 0); // 41 and 42 again, then 43
  assert.equal(a.buffered(3), 4);
  assert.deepEqual(a.restartOffsets(), new Map([[3, '40']]));
  const out: Taken<string>[] = [];
  a.take(2, 0, out);
  assert.deepEqual(
    out.map((t) => t.entry.offset),
    ['40', '41'],
  );
  assert.deepEqual(a.ackedOffsets(), new Map(), 'nothing acknowledged yet');
  a.ack(3, '42');
  assert.deepEqual(a.ackedOffsets(), new Map([[3, '42']]));
  assert.deepEqual(a.restartOffsets(), new Map([[3, '42']]));
  a.reset(0);
  assert.equal(a.totalBuffered(), 0);
  a.ingest(3, batch([3, 4], 42), true, 0);
  assert.deepEqual(
    takeAll(a).map((t) => t.entry.offset),
    ['42', '43'],
  );
});

test('aligner: random partitions of a time-ordered stream come out in time order', () => {
  let seed = 7;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 50; round++) {
    const partitions = 1 + Math.floor(rand() * 6);
    const a = new PartitionAligner<string>({ maxHoldMs: 1e12 });
    a.assign(
      Array.from({ length: partitions }, (_, p) => p),
      0,
    );
    const streams: number[][] = Array.from({ length: partitions }, () => []);
    for (let t = 0; t < 400; t++) (streams[Math.floor(rand() * partitions)] as number[]).push(t);
    const next = new Array<number>(partitions).fill(0);
    const out: Taken<string>[] = [];
    // Deliver small batches of random partitions in random order, taking whatever is releasable.
    while (next.some((n, p) => n < (streams[p] as number[]).length)) {
      const p = Math.floor(rand() * partitions);
      const s = streams[p] as number[];
      const n = Math.min(s.length, (next[p] as number) + 1 + Math.floor(rand() * 20));
      a.ingest(p, batch(s.slice(next[p], n), next[p]), n === s.length, 0);
      next[p] = n;
      a.take(Number.MAX_SAFE_INTEGER, 0, out);
    }
    a.take(Number.MAX_SAFE_INTEGER, 0, out);
    const ts = times(out);
    assert.equal(ts.length, 400, `round ${round}: every record released`);
    assert.deepEqual(
      ts,
      [...ts].sort((x, y) => x - y),
      `round ${round}: in event-time order`,
    );
  }
});

test('aligner: frontier is what holds it back; a limit from other routers holds newer records', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000 });
  assert.equal(a.frontier(0), Infinity, 'nothing assigned holds nobody back');
  a.assign([0, 1], 0);
  assert.equal(a.frontier(0), -Infinity, 'partitions never seen');
  a.ingest(0, batch([10, 20, 30]), false, 0);
  a.ingest(1, batch([15, 25]), true, 0);
  assert.equal(a.frontier(0), 10);
  const out: Taken<string>[] = [];
  a.take(100, 0, out, 20);
  assert.deepEqual(times(out), [10, 15, 20], 'nothing newer than the limit');
  assert.equal(a.frontier(0), 25);
  assert.deepEqual(times(takeAll(a)), [25, 30]);
  assert.equal(a.frontier(0), 30, 'partition 0 ran dry at 30 and lags');
  a.ingest(0, batch([40], 3), true, 0);
  assert.deepEqual(times(takeAll(a)), [40]);
  assert.equal(a.frontier(0), Infinity, 'both dry and caught up');
});
