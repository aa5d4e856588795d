/**
 * Event-time order across the router's input partitions (ARCHITECTURE.md, "Pipeline guarantees").
 *
 * A scope key (a node, a service, a namespace) gets events from many source entities, so from many
 * partitions of tapio.events, and the rules are order-sensitive. The aligner buffers every record
 * read and releases them in event-time order (ties in the order read) once no assigned partition can
 * still deliver an older one, assuming, as the guarantee does, that producers write in event-time
 * order give or take `slackMs`. What a partition may still deliver (its hold):
 *   - lagging (its last batch ended below the high watermark) or paused: the rest of its backlog was
 *     written after what was read, so nothing older than its newest event time read minus the slack;
 *   - caught up: whatever is written from now on, so nothing older than the newest event time read
 *     anywhere minus the slack; that newest time counts only once two fetches have started since it
 *     was read (a produce request's records appear on its partitions a moment apart, and a fetch that
 *     started before one of them was visible may have missed it);
 *   - never seen since the assignment: anything, until two whole fetches delivered nothing for it;
 *   - when nothing was read for `slackMs` of wall-clock time, caught-up partitions stop holding (a
 *     quiet stream is not held forever: Flink's idleness, Kafka Streams' max.task.idle.ms);
 *   - a lagging partition that ran dry stops holding after `maxHoldMs` (a safety net; counted).
 * The cost: at a steady rate a record waits about the slack (event time) before it is released.
 *
 * Records may leave a partition out of offset order, so "committed up to" is the offset after the
 * longest acknowledged prefix per partition. Nothing here touches Kafka: the router feeds batches and
 * fetch starts, takes releasable records, acknowledges them, and pauses partitions whose buffer is full.
 */

export interface AlignEntry<T> {
  /** Event time (ms). Records that could not be decoded take their predecessor's time. */
  ts: number;
  offset: string;
  item: T;
}

export interface AlignerOptions {
  /** Longest time (ms) a dry, lagging partition may hold the others back; 0 turns ordering off. */
  maxHoldMs: number;
  /** Event-time skew allowed among producers (router.reorderSlackMs), and the quiet time (wall clock) after which caught-up partitions stop holding. */
  slackMs: number;
  /** Fetches started after a read before it counts as visible everywhere (and before a never-seen partition counts as empty). Default 2. */
  idleFetches?: number;
}

/** A record released by `take`, to be acknowledged with `ack` once everything it caused is written. */
export interface Taken<T> {
  readonly partition: number;
  readonly entry: AlignEntry<T>;
}

interface Slot<T> extends Taken<T> {
  /** Read order: the tie-break among equal event times. */
  readonly seq: number;
  acked: boolean;
}

interface PartitionState<T> {
  /** Records read and not yet acknowledged as a prefix, in offset order. */
  slots: Slot<T>[];
  head: number;
  /** Records read and not yet taken. */
  pending: number;
  /** Its last batch ended at the high watermark. */
  caughtUp: boolean;
  paused: boolean;
  /** Event time of the last record read; -Infinity before the first. */
  lastTs: number;
  /** Largest event time read. */
  maxTs: number;
  /** Fetch sequence number and wall-clock time at which it last ran dry (or was assigned). */
  drySinceFetch: number;
  drySinceMs: number;
  /** Offset of the first record read since the assignment (or reset); null before. */
  firstOffset: string | null;
  /** Offset after the longest acknowledged prefix: what may be committed. */
  ackedUpTo: string | null;
  /** Offset of the last record read. */
  lastRead: bigint;
}

/** Min-heap of slots by (event time, read order). */
class SlotHeap<T> {
  private readonly items: Slot<T>[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Slot<T> | undefined {
    return this.items[0];
  }

  clear(): void {
    this.items.length = 0;
  }

  push(slot: Slot<T>): void {
    const items = this.items;
    let i = items.push(slot) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(slot, items[parent] as Slot<T>)) break;
      items[i] = items[parent] as Slot<T>;
      i = parent;
    }
    items[i] = slot;
  }

  pop(): Slot<T> | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && before(items[right] as Slot<T>, items[left] as Slot<T>) ? right : left;
      if (!before(items[child] as Slot<T>, last)) break;
      items[i] = items[child] as Slot<T>;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

const before = <T>(a: Slot<T>, b: Slot<T>): boolean =>
  a.entry.ts < b.entry.ts || (a.entry.ts === b.entry.ts && a.seq < b.seq);

export class PartitionAligner<T> {
  private readonly partitions = new Map<number, PartitionState<T>>();
  private readonly heap = new SlotHeap<T>();
  private readonly idleFetches: number;
  private fetchSeq = 0;
  private readSeq = 0;
  /** Rises of the newest event time read, waiting for `idleFetches` fetches before they count. */
  private marks: { ts: number; fetchSeq: number }[] = [];
  private newestRead = -Infinity;
  private newestSettled = -Infinity;
  private lastReadMs = -Infinity;
  private newestReleased = -Infinity;
  /** Records released because a dry, lagging partition had held the others back for maxHoldMs. */
  forced = 0;
  /** Records read older than one already released: their order is not guaranteed (tapio_events_out_of_order_total). */
  outOfOrder = 0;

  constructor(private readonly options: AlignerOptions) {
    this.idleFetches = options.idleFetches ?? 2;
  }

  /** A new assignment: every buffer is dropped (the records are fetched again from the committed offsets). */
  assign(partitions: readonly number[], nowMs: number): void {
    this.partitions.clear();
    this.heap.clear();
    this.marks = [];
    this.newestRead = -Infinity;
    this.newestSettled = -Infinity;
    this.newestReleased = -Infinity;
    for (const p of partitions) this.partitions.set(p, this.fresh(nowMs));
  }

  /** Forget every buffered record (after a failed produce: the router seeks back and fetches them again). */
  reset(nowMs: number): void {
    this.assign([...this.partitions.keys()], nowMs);
  }

  assigned(): number[] {
    return [...this.partitions.keys()];
  }

  /** kafkajs started a fetch. */
  fetchStarted(): void {
    this.fetchSeq++;
  }

  /** The router paused (or resumed) fetching a partition: a paused partition lags, whatever its last batch said. */
  setPaused(partition: number, paused: boolean): void {
    const state = this.partitions.get(partition);
    if (state !== undefined) state.paused = paused;
  }

  /**
   * One batch of a partition, in offset order. `caughtUp`: the batch ends at the high watermark.
   * Records at offsets already read (a fetch repeated after a seek) are skipped.
   */
  ingest(partition: number, entries: readonly AlignEntry<T>[], caughtUp: boolean, nowMs: number): void {
    let state = this.partitions.get(partition);
    if (state === undefined) this.partitions.set(partition, (state = this.fresh(nowMs)));
    let newest = -Infinity;
    for (const entry of entries) {
      const offset = BigInt(entry.offset);
      if (offset <= state.lastRead) continue;
      state.lastRead = offset;
      state.firstOffset ??= entry.offset;
      const slot: Slot<T> = { partition, entry, seq: this.readSeq++, acked: false };
      state.slots.push(slot);
      state.pending++;
      this.heap.push(slot);
      if (entry.ts < this.newestReleased) this.outOfOrder++;
      state.lastTs = entry.ts;
      if (entry.ts > state.maxTs) state.maxTs = entry.ts;
      if (entry.ts > newest) newest = entry.ts;
      this.lastReadMs = nowMs;
    }
    state.caughtUp = caughtUp;
    if (newest > this.newestRead) {
      this.newestRead = newest;
      this.marks.push({ ts: newest, fetchSeq: this.fetchSeq });
    }
  }

  /** Event time of the last record read from a partition (-Infinity before the first). */
  lastTs(partition: number): number {
    return this.partitions.get(partition)?.lastTs ?? -Infinity;
  }

  /** Records buffered (read, not yet taken) for a partition. */
  buffered(partition: number): number {
    return this.partitions.get(partition)?.pending ?? 0;
  }

  totalBuffered(): number {
    return this.heap.size;
  }

  /** Everything the given taken records caused is acknowledged. */
  ack(taken: readonly Taken<T>[]): void {
    const touched = new Set<PartitionState<T>>();
    for (const t of taken) {
      (t as Slot<T>).acked = true;
      const state = this.partitions.get(t.partition);
      if (state !== undefined) touched.add(state);
    }
    for (const state of touched) {
      let head = state.head;
      while (head < state.slots.length && (state.slots[head] as Slot<T>).acked) head++;
      if (head === state.head) continue;
      state.ackedUpTo = (BigInt((state.slots[head - 1] as Slot<T>).entry.offset) + 1n).toString();
      if (head === state.slots.length) {
        state.slots = [];
        head = 0;
      } else if (head > 4096 && head * 2 > state.slots.length) {
        state.slots = state.slots.slice(head);
        head = 0;
      }
      state.head = head;
    }
  }

  /** Offsets that may be committed: after the longest acknowledged prefix, per partition that has one. */
  ackedOffsets(): Map<number, string> {
    const out = new Map<number, string>();
    for (const [p, state] of this.partitions) if (state.ackedUpTo !== null) out.set(p, state.ackedUpTo);
    return out;
  }

  /** Where to fetch again from after a failure: the first record not acknowledged, per partition read. */
  restartOffsets(): Map<number, string> {
    const out = new Map<number, string>();
    for (const [p, state] of this.partitions) {
      const at = state.ackedUpTo ?? state.firstOffset;
      if (at !== null) out.set(p, at);
    }
    return out;
  }

  /**
   * The event time below which this aligner will release nothing more: the oldest buffered record,
   * or what the partitions may still deliver if that is older. Infinity when nothing holds and nothing
   * is buffered. Routers of one group publish it to each other (router frontier on tapio.health).
   */
  frontier(nowMs: number): number {
    const top = this.heap.peek();
    return Math.min(top?.entry.ts ?? Infinity, this.bound(nowMs).strict);
  }

  /**
   * Moves up to `max` releasable records, oldest event time first, into `out`; returns how many.
   * `limit`: release nothing newer than this (other routers' frontiers plus the slack they allow).
   */
  take(max: number, nowMs: number, out: Taken<T>[], limit = Infinity): number {
    const { strict, withForced } = this.bound(nowMs);
    const upTo = Math.min(withForced, limit);
    let n = 0;
    while (n < max) {
      const top = this.heap.peek();
      if (top === undefined || top.entry.ts > upTo) break;
      this.heap.pop();
      if (top.entry.ts > strict) this.forced++;
      if (top.entry.ts > this.newestReleased) this.newestReleased = top.entry.ts;
      const state = this.partitions.get(top.partition);
      if (state !== undefined && --state.pending === 0) {
        state.drySinceFetch = this.fetchSeq;
        state.drySinceMs = nowMs;
      }
      out.push(top);
      n++;
    }
    return n;
  }

  /** What the partitions may still deliver: `strict` without, `withForced` with the maxHoldMs safety net. */
  private bound(nowMs: number): { strict: number; withForced: number } {
    if (this.options.maxHoldMs <= 0) return { strict: Infinity, withForced: Infinity };
    while (
      this.marks.length > 0 &&
      this.fetchSeq - (this.marks[0] as { fetchSeq: number }).fetchSeq >= this.idleFetches
    ) {
      this.newestSettled = (this.marks.shift() as { ts: number }).ts;
    }
    const slack = this.options.slackMs;
    const live = nowMs - this.lastReadMs >= slack ? Infinity : this.newestSettled - slack;
    let strict = Infinity;
    let withForced = Infinity;
    for (const state of this.partitions.values()) {
      let hold: number;
      let forcedHold: number;
      if (state.maxTs === -Infinity && state.pending === 0) {
        // Never seen: anything may come, until whole fetches show it has nothing.
        hold = forcedHold = this.fetchSeq - state.drySinceFetch >= this.idleFetches ? live : -Infinity;
      } else if (state.caughtUp && !state.paused) {
        hold = forcedHold = live;
      } else {
        hold = state.maxTs - slack;
        forcedHold = state.pending === 0 && nowMs - state.drySinceMs >= this.options.maxHoldMs ? live : hold;
      }
      if (hold < strict) strict = hold;
      if (forcedHold < withForced) withForced = forcedHold;
    }
    return { strict, withForced };
  }

  private fresh(nowMs: number): PartitionState<T> {
    return {
      slots: [],
      head: 0,
      pending: 0,
      caughtUp: false,
      paused: false,
      lastTs: -Infinity,
      maxTs: -Infinity,
      drySinceFetch: this.fetchSeq,
      drySinceMs: nowMs,
      firstOffset: null,
      ackedUpTo: null,
      lastRead: -1n,
    };
  }
}
