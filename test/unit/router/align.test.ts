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
const fetches = (a: PartitionAligner<string>, n = 2): void => {
  for (let i = 0; i < n; i++) a.fetchStarted();
};

test('aligner: a partition not seen since the assignment holds the others back until two fetches had nothing for it', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 0 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([0, 10, 20]), false, 0);
  assert.deepEqual(takeAll(a), [], 'partition 1 may still deliver older events');
  a.fetchStarted(); // in flight at the assignment
  assert.deepEqual(takeAll(a), []);
  a.ingest(1, batch([5, 15, 25, 35]), false, 0);
  // Both lag: merged by event time up to the lower of their newest times (slack 0).
  assert.deepEqual(times(takeAll(a)), [0, 5, 10, 15, 20]);
  a.ingest(0, batch([30, 40], 3), false, 0);
  assert.deepEqual(times(takeAll(a)), [25, 30, 35]);
});

// The live case that lost incidents (issue 21): partition 0 ended its batch at the high watermark and
// was taken to be unable to deliver anything older, while the producer's next records, older than
// what partition 0 had delivered, were still on their way to partition 1.
test('aligner: a caught-up partition still holds the others back by the slack; nothing is released out of order', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 10 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([90, 100]), true, 0);
  a.ingest(1, batch([50]), true, 0);
  assert.deepEqual(times(takeAll(a)), [], 'the newest time read (100) is not settled: a fetch may have missed records');
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [50, 90], 'up to 100 - slack');
  a.ingest(1, batch([95], 1), true, 0); // produced with 100, visible a moment later
  assert.deepEqual(times(takeAll(a)), []);
  a.ingest(0, batch([111], 2), true, 0);
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [95, 100]);
  assert.equal(a.outOfOrder, 0);
});

test('aligner: records of one partition come out in event-time order, ties in the order read', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 5 });
  a.assign([0], 0);
  a.ingest(0, batch([100, 97, 99, 97, 104, 120]), true, 0);
  fetches(a);
  const out = takeAll(a);
  assert.deepEqual(times(out), [97, 97, 99, 100, 104]);
  assert.deepEqual(
    out.slice(0, 2).map((t) => t.entry.offset),
    ['1', '3'],
  );
});

test('aligner: after the slack of wall-clock time without a record, caught-up partitions stop holding', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 2000 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([10, 20]), true, 1000);
  a.ingest(1, batch([15]), true, 1000);
  fetches(a);
  assert.deepEqual(times(takeAll(a, 2999)), []);
  assert.deepEqual(times(takeAll(a, 3000)), [10, 15, 20]);
  assert.equal(a.frontier(3000), Infinity, 'nothing buffered, nothing holds');
});

test('aligner: a lagging or paused partition holds at its newest time minus the slack', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 5 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([10, 20, 30, 40]), true, 0);
  a.ingest(1, batch([12, 22]), false, 0); // lags: the rest of its backlog is at 17 or later
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [10, 12]);
  a.ingest(1, batch([28, 60], 2), true, 0);
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [20, 22, 28, 30, 40], 'caught up: up to the settled 60 - 5');
  a.setPaused(1, true); // its next records are not fetched: it lags whatever its last batch said
  a.ingest(0, batch([70, 80], 4), true, 0);
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [], 'partition 1 may hold records from 55 on');
  a.setPaused(1, false);
  assert.deepEqual(times(takeAll(a)), [60, 70]);
});

test('aligner: maxHoldMs bounds how long a dry, lagging partition holds, and counts forced releases', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 1000, slackMs: 0 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([0]), false, 0);
  a.ingest(1, batch([5, 50]), false, 0);
  assert.deepEqual(times(takeAll(a, 10)), [0]);
  assert.deepEqual(times(takeAll(a, 900)), []);
  fetches(a);
  // Partition 0 stops holding; partition 1 lags and holds at its newest time (50, slack 0).
  assert.deepEqual(times(takeAll(a, 1010)), [5, 50]);
  assert.equal(a.forced, 2);
  // A partition seen to lag is never judged idle by fetches alone (Kafka leaves out a partition whose
  // next record batch exceeds the per-partition limit).
  const b = new PartitionAligner<string>({ maxHoldMs: 1e9, slackMs: 0 });
  b.assign([0, 1], 0);
  b.ingest(0, batch([60]), false, 0);
  b.ingest(1, batch([70]), true, 0);
  fetches(b, 5);
  assert.deepEqual(times(takeAll(b)), [60]);
  assert.equal(b.forced, 0);
});

test('aligner: re-fetched offsets are skipped; commits follow the acknowledged prefix; restart offsets', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 0 });
  a.assign([3], 0);
  a.ingest(3, batch([1, 3, 2], 40), false, 0);
  a.ingest(3, batch([3, 2, 4], 41), true, 0); // 41 and 42 again, then 43
  assert.equal(a.buffered(3), 4);
  assert.deepEqual(a.restartOffsets(), new Map([[3, '40']]));
  fetches(a);
  const out: Taken<string>[] = [];
  a.take(2, 0, out);
  assert.deepEqual(
    out.map((t) => t.entry.offset),
    ['40', '42'],
    'event times 1 and 2',
  );
  assert.deepEqual(a.ackedOffsets(), new Map(), 'nothing acknowledged yet');
  a.ack(out.slice(1));
  assert.deepEqual(a.ackedOffsets(), new Map(), '42 is acknowledged, 40 not yet: nothing may be committed');
  a.ack(out.slice(0, 1));
  assert.deepEqual(a.ackedOffsets(), new Map([[3, '41']]), '41 was not taken yet');
  const next: Taken<string>[] = [];
  a.take(1, 0, next);
  a.ack(next);
  assert.deepEqual(a.ackedOffsets(), new Map([[3, '43']]));
  assert.deepEqual(a.restartOffsets(), new Map([[3, '43']]));
  a.reset(0);
  assert.equal(a.totalBuffered(), 0);
  a.ingest(3, batch([4], 43), true, 0);
  fetches(a);
  assert.deepEqual(
    takeAll(a, 5000).map((t) => t.entry.offset),
    ['43'],
  );
});

test('aligner: a record older than one already released is counted as out of order, and still released', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 10 });
  a.assign([0], 0);
  a.ingest(0, batch([100, 200]), true, 0);
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [100]);
  a.ingest(0, batch([50], 2), true, 0); // far later than the slack
  assert.equal(a.outOfOrder, 1);
  assert.deepEqual(times(takeAll(a)), [50]);
});

// A producer writes records in event-time order give or take the slack, each produce round spread
// over random partitions; a fetch sees what was written before the previous fetch started, and only
// some of what was written since. Whatever the interleaving, no record is released before an older one.
test('aligner: a skewed stream over random partitions and fetch timings comes out in event-time order', () => {
  let seed = 11;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const slack = 50;
  for (let round = 0; round < 40; round++) {
    const partitions = 1 + Math.floor(rand() * 8);
    const a = new PartitionAligner<string>({ maxHoldMs: 1e12, slackMs: slack });
    a.assign(
      Array.from({ length: partitions }, (_, p) => p),
      0,
    );
    const logs: number[][] = Array.from({ length: partitions }, () => []);
    const visible = new Array<number>(partitions).fill(0); // written before the previous fetch started
    const read = new Array<number>(partitions).fill(0);
    const out: Taken<string>[] = [];
    let clock = 0;
    for (let step = 0; step < 300; step++) {
      // A produce round of 0-5 records, event time = clock minus up to the slack.
      const n = Math.floor(rand() * 6);
      for (let i = 0; i < n; i++)
        (logs[Math.floor(rand() * partitions)] as number[]).push(clock - Math.floor(rand() * slack));
      clock += 1 + Math.floor(rand() * 20);
      // A fetch: everything visible, plus part of what was written since the last fetch started.
      a.fetchStarted();
      for (let p = 0; p < partitions; p++) {
        const log = logs[p] as number[];
        const upTo = rand() < 0.5 ? log.length : (visible[p] as number);
        if (upTo > (read[p] as number)) {
          a.ingest(p, batch(log.slice(read[p], upTo), read[p]), upTo === log.length, 0);
          read[p] = upTo;
        }
        visible[p] = log.length;
      }
      a.take(Number.MAX_SAFE_INTEGER, 0, out);
    }
    for (let p = 0; p < partitions; p++) {
      const log = logs[p] as number[];
      if (log.length > (read[p] as number)) a.ingest(p, batch(log.slice(read[p]), read[p]), true, 0);
    }
    a.take(Number.MAX_SAFE_INTEGER, 1e9, out); // quiet: everything left
    const ts = times(out);
    assert.equal(ts.length, logs.flat().length, `round ${round}: every record released`);
    assert.deepEqual(
      ts,
      [...ts].sort((x, y) => x - y),
      `round ${round}: in event-time order`,
    );
    assert.equal(a.outOfOrder, 0, `round ${round}`);
  }
});

test('aligner: frontier is what holds it back; a limit from other routers holds newer records', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 10_000, slackMs: 0 });
  assert.equal(a.frontier(0), Infinity, 'nothing assigned holds nobody back');
  a.assign([0, 1], 0);
  assert.equal(a.frontier(0), -Infinity, 'partitions never seen');
  a.ingest(0, batch([10, 20, 30]), false, 0);
  a.ingest(1, batch([15, 25]), true, 0);
  fetches(a);
  assert.equal(a.frontier(0), 10);
  const out: Taken<string>[] = [];
  a.take(100, 0, out, 20);
  assert.deepEqual(times(out), [10, 15, 20], 'nothing newer than the limit');
  assert.equal(a.frontier(0), 25);
  assert.deepEqual(times(takeAll(a)), [25, 30]);
  assert.equal(a.frontier(0), 30, 'partition 0 ran dry at 30 and lags');
  a.ingest(0, batch([40], 3), true, 0);
  fetches(a);
  assert.deepEqual(times(takeAll(a)), [40]);
  assert.equal(a.frontier(0), Infinity, 'both caught up, and with slack 0 quiet at once: nothing holds');
});

test('aligner: off (maxHoldMs 0) releases whatever is buffered, oldest first', () => {
  const a = new PartitionAligner<string>({ maxHoldMs: 0, slackMs: 2000 });
  a.assign([0, 1], 0);
  a.ingest(0, batch([30, 10]), false, 0);
  assert.deepEqual(times(takeAll(a)), [10, 30]);
});
