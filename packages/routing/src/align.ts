/**
 * Event-time alignment of the router's input partitions.
 *
 * A scope key (a node, a service, a namespace) gets events from many source entities, and so from
 * many partitions of tapio.events. kafkajs hands the router one partition's batch at a time; when the
 * router catches up on a backlog, each batch spans minutes of event time, so without alignment the
 * router would forward partition A's minutes, then partition B's same minutes, and the engines would
 * drop B's events as late (RULES.md: a key's watermark is the largest timestamp seen).
 *
 * The aligner buffers each partition's records in offset order and releases them as a k-way merge by
 * event time: the next record out is the oldest head among the partitions with buffered records, and
 * only while no partition that has run dry could still deliver something older. A dry partition holds
 * the others back at its last event time until it delivers again, unless
 *   - its last batch ended at the partition's high watermark (it is caught up: whatever it gets next
 *     is newer than the backlog), or
 *   - it was never seen since the assignment and a whole fetch started after that delivered nothing for
 *     it (it has nothing to give), or
 *   - it has held the others back for `maxHoldMs` (a safety net; counted as `forced`).
 * A partition never seen since the assignment holds the others back entirely until one of those. A
 * partition seen to lag is never judged idle by fetches alone: Kafka leaves a partition out of a fetch
 * response when its next record batch exceeds the per-partition byte limit (unless it comes first).
 *
 * Records leave each partition in offset order, so "committed up to" is simply the offset after the
 * last record released (and acknowledged) per partition. Nothing here touches Kafka: the router feeds
 * it batches and fetch starts, takes releasable records, and pauses partitions whose buffer is full.
 */

export interface AlignEntry<T> {
  /** Event time (ms). Records that could not be decoded take their predecessor's time. */
  ts: number;
  offset: string;
  item: T;
}

export interface AlignerOptions {
  /** Longest time (ms) a dry partition may hold the others back. */
  maxHoldMs: number;
  /** Whole fetches after running dry with nothing delivered before a partition counts as idle. Default 2. */
  idleFetches?: number;
}

interface PartitionState<T> {
  queue: AlignEntry<T>[];
  head: number;
  /** Its last batch ended at the high watermark. */
  caughtUp: boolean;
  /** Event time of the last record ingested; -Infinity before the first. */
  lastTs: number;
  /** Fetch sequence number and wall-clock time at which its buffer last became empty (or it was assigned). */
  drySinceFetch: number;
  drySinceMs: number;
  /** Offset of the first record ingested since the assignment (or reset); null before. */
  firstOffset: string | null;
  /** Offset after the last record whose routed records are acknowledged: what may be committed. */
  ackedUpTo: string | null;
  /** Offset of the last record taken. */
  lastTaken: string | null;
}

export interface Taken<T> {
  partition: number;
  entry: AlignEntry<T>;
}

export class PartitionAligner<T> {
  private readonly partitions = new Map<number, PartitionState<T>>();
  private fetchSeq = 0;
  private readonly idleFetches: number;
  /** Records released because a dry partition had held the others back for maxHoldMs. */
  forced = 0;

  constructor(private readonly options: AlignerOptions) {
    this.idleFetches = options.idleFetches ?? 2;
  }

  /** A new assignment: every buffer is dropped (the records are fetched again from the committed offsets). */
  assign(partitions: readonly number[], nowMs: number): void {
    this.partitions.clear();
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

  /**
   * One batch of a partition, in offset order. `caughtUp`: the batch ends at the high watermark.
   * Records at offsets already ingested (a fetch repeated after a seek) are skipped.
   */
  ingest(partition: number, entries: readonly AlignEntry<T>[], caughtUp: boolean, nowMs: number): void {
    let state = this.partitions.get(partition);
    if (state === undefined) this.partitions.set(partition, (state = this.fresh(nowMs)));
    const last = state.queue.length > state.head ? state.queue[state.queue.length - 1] : undefined;
    const after = last !== undefined ? BigInt(last.offset) : state.lastTaken !== null ? BigInt(state.lastTaken) : -1n;
    for (const entry of entries) {
      if (BigInt(entry.offset) <= after) continue;
      state.firstOffset ??= entry.offset;
      state.queue.push(entry);
      state.lastTs = entry.ts;
    }
    state.caughtUp = caughtUp;
  }

  /** Event time of the last record ingested from a partition (-Infinity before the first). */
  lastTs(partition: number): number {
    return this.partitions.get(partition)?.lastTs ?? -Infinity;
  }

  /** Records buffered for a partition. */
  buffered(partition: number): number {
    const state = this.partitions.get(partition);
    return state === undefined ? 0 : state.queue.length - state.head;
  }

  totalBuffered(): number {
    let n = 0;
    for (const state of this.partitions.values()) n += state.queue.length - state.head;
    return n;
  }

  /** The routed records of every record taken so far from `partition`, up to `offsetAfter`, are acknowledged. */
  ack(partition: number, offsetAfter: string): void {
    const state = this.partitions.get(partition);
    if (state !== undefined) state.ackedUpTo = offsetAfter;
  }

  /** Offsets that may be committed: after the last acknowledged record, per partition that has one. */
  ackedOffsets(): Map<number, string> {
    const out = new Map<number, string>();
    for (const [p, state] of this.partitions) if (state.ackedUpTo !== null) out.set(p, state.ackedUpTo);
    return out;
  }

  /** Where to fetch again from after a failure: the first record not acknowledged, per partition ingested. */
  restartOffsets(): Map<number, string> {
    const out = new Map<number, string>();
    for (const [p, state] of this.partitions) {
      const at = state.ackedUpTo ?? state.firstOffset;
      if (at !== null) out.set(p, at);
    }
    return out;
  }

  /**
   * The event time below which this aligner will release nothing more: the oldest buffered head, or
   * the last event time of a dry partition that still holds the others back (-Infinity if one was never
   * seen). Infinity when nothing holds: every partition is dry and caught up or idle, or none is assigned.
   * Routers of one group publish it to each other, so that together they release in event-time order.
   */
  frontier(nowMs: number): number {
    let f = Infinity;
    for (const state of this.partitions.values()) {
      if (state.queue.length > state.head) {
        f = Math.min(f, (state.queue[state.head] as AlignEntry<T>).ts);
      } else if (!this.idle(state, nowMs)) {
        f = Math.min(f, state.lastTs);
      }
    }
    return f;
  }

  /**
   * Moves up to `max` releasable records, oldest event time first, into `out`; returns how many.
   * `limit`: release nothing newer than this (other routers' frontiers plus the slack they allow).
   */
  take(max: number, nowMs: number, out: Taken<T>[], limit = Infinity): number {
    let n = 0;
    while (n < max) {
      let best: PartitionState<T> | undefined;
      let bestPartition = -1;
      let bound = limit;
      let forcedBound = Infinity;
      for (const [p, state] of this.partitions) {
        if (state.queue.length > state.head) {
          const head = state.queue[state.head] as AlignEntry<T>;
          if (best === undefined || head.ts < (best.queue[best.head] as AlignEntry<T>).ts) {
            best = state;
            bestPartition = p;
          }
          continue;
        }
        if (this.nothingToGive(state)) continue;
        if (nowMs - state.drySinceMs >= this.options.maxHoldMs) {
          if (state.lastTs < forcedBound) forcedBound = state.lastTs;
          continue;
        }
        if (state.lastTs < bound) bound = state.lastTs;
      }
      if (best === undefined) break;
      const entry = best.queue[best.head] as AlignEntry<T>;
      if (entry.ts > bound) break;
      if (entry.ts > forcedBound && this.options.maxHoldMs > 0) this.forced++;
      best.head++;
      best.lastTaken = entry.offset;
      if (best.head === best.queue.length) {
        best.queue = [];
        best.head = 0;
        best.drySinceFetch = this.fetchSeq;
        best.drySinceMs = nowMs;
      } else if (best.head > 4096 && best.head * 2 > best.queue.length) {
        best.queue = best.queue.slice(best.head);
        best.head = 0;
      }
      out.push({ partition: bestPartition, entry });
      n++;
    }
    return n;
  }

  /** A dry partition that no longer holds the others back (nothing to give, or held for maxHoldMs). */
  private idle(state: PartitionState<T>, nowMs: number): boolean {
    return this.nothingToGive(state) || nowMs - state.drySinceMs >= this.options.maxHoldMs;
  }

  /**
   * Caught up, or never seen and left out of a whole fetch. Whole fetches without a batch prove nothing
   * for a partition known to lag: Kafka leaves a partition out of a fetch response when its next record
   * batch is larger than the per-partition limit.
   */
  private nothingToGive(state: PartitionState<T>): boolean {
    return state.caughtUp || (state.lastTs === -Infinity && this.fetchSeq - state.drySinceFetch >= this.idleFetches);
  }

  private fresh(nowMs: number): PartitionState<T> {
    return {
      queue: [],
      head: 0,
      caughtUp: false,
      lastTs: -Infinity,
      drySinceFetch: this.fetchSeq,
      drySinceMs: nowMs,
      firstOffset: null,
      ackedUpTo: null,
      lastTaken: null,
    };
  }
}
