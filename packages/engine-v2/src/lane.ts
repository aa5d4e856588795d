import { atLeast } from '@tapio/rules';
import { idOf, sameId } from './row';
import type { EventRow } from './row';
import type { RuleEvent } from './types';

/** How a lane counts distinct pods (R5, R8, R9; README "Readings" 6). */
export const DISTINCT_NONE = 0;
/** Every event with a known pod. */
export const DISTINCT_ALL = 1;
/** Events with a known pod whose measurement is >= `distinctMin` (R5: throttle_ratio >= 0.1). */
export const DISTINCT_MIN_VALUE = 2;

/** What one lane holds and maintains; fixed per rule at construction. */
export interface LaneSpec {
  /** Input types stored in this lane. */
  readonly types: readonly string[];
  /** The lane's window span: its cursor covers [now - spanMs, now]. */
  readonly spanMs: number;
  /** Measurement kept per event (NaN when the event lacks it: README "Readings" 5); null for none. */
  readonly attr: string | null;
  /** A second measurement (R2/R3 limit_bytes), read only at evaluation. */
  readonly attr2: string | null;
  /** Samples with a measurement above this count as spikes (R6); Infinity for none. */
  readonly spikeAbove: number;
  readonly distinct: number;
  readonly distinctMin: number;
  /** Keep each event's pod identity (distinct counts, R1's follower pods). */
  readonly keepPods: boolean;
  /** Keep the event objects themselves (only a rule that is scanned needs them). */
  readonly keepEvents: boolean;
  /**
   * Events in the first slab of this spec's lanes: MIN_SLAB_EVENTS, doubled (up to
   * MAX_FIRST_SLAB_EVENTS) each time one of them outgrows it, so that lanes of a rule whose lanes
   * grow start near the size they reach and skip the first moves (bench/engine.ts: 16 instead of 4
   * measured 1.03x), while rules whose lanes stay small keep small slabs (100k keys of 3 events).
   */
  firstSlabEvents: number;
}

/**
 * First index in [from, to) whose timestamp (f64[base + index * stride]) is > the row's. The row, not
 * its timestamp: a double passed to a call that is not inlined is a heap number per call, and the
 * bench/engine.ts allocation profile had those among V2's largest items.
 */
function upperBound(f64: Float64Array, base: number, stride: number, from: number, to: number, row: EventRow): number {
  const t = row.timestamp;
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((f64[base + mid * stride] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index in [from, to) whose timestamp (f64[base + index * stride]) is >= t. */
function lowerBound(f64: Float64Array, base: number, stride: number, from: number, to: number, t: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((f64[base + mid * stride] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Events in a lane's first slab at the start (see LaneSpec.firstSlabEvents); each later slab is twice its predecessor. */
export const MIN_SLAB_EVENTS = 4;
const MAX_FIRST_SLAB_EVENTS = 16;

/**
 * The numbers of every lane of one engine: slabs of one Float64Array (a lane's slab holds its
 * [t, v, v2, id span, id text slot] records), with a free list per slab size. Why not a JS array per lane: that was
 * an array object and a backing store per lane to load on every evaluation (two more cold lines),
 * and each array grew by reallocation on the heap, where the grown stores live on and were copied
 * by every young-generation collection until promoted (bench/engine.ts: ~60 % of what V2 allocated,
 * two thirds of it surviving). Here a slab is taken and given back without the garbage collector.
 * Freed slabs are reused by size; the array itself grows by doubling and never shrinks.
 */
export class LaneStore {
  /** Replaced by a larger copy when full: lanes read it through the store, never keep it. */
  f64: Float64Array;
  /**
   * Events older than this are dropped by the next `advance` (watermark - lateness - horizon of the
   * rule being evaluated, set by its RuleState.accept): passed here, not as an argument, because a
   * double argument of a call that is not inlined is a heap number per call.
   */
  evictBefore = 0;
  private top = 0;
  /** Free slabs' offsets by slab size in doubles (sizes are cap * stride: few distinct, small). */
  private readonly free: Array<number[] | undefined> = [];
  /**
   * The id texts of stored records (EventRow.idRef: a decoded batch's shared text, or an id's own
   * string) by slot, with a count of the records that refer to each: a record keeps the slot number
   * as one of its doubles. Why not a string pointer per record in a JS array per lane: that array's
   * object and backing store were two more cold lines per insert (the id push was ~7 % of V2's
   * profile on bench/engine.ts's stream), and each pointer to a young text in an old array was work
   * for the young-generation collector.
   */
  private readonly texts: Array<string | null> = [];
  private refs = new Int32Array(1024);
  private readonly freeTexts: number[] = [];
  /** The text of the last `ref` and its slot (inserts come a batch at a time: mostly the same text). */
  private lastText: string | null = null;
  private lastSlot = -1;

  constructor(initialDoubles = 1 << 16) {
    this.f64 = new Float64Array(initialDoubles);
  }

  /** The offset of a new slab of `size` doubles. */
  alloc(size: number): number {
    const list = this.free[size];
    if (list !== undefined && list.length > 0) return list.pop() as number;
    const at = this.top;
    if (at + size > this.f64.length) {
      let n = this.f64.length * 2;
      while (n < at + size) n *= 2;
      const grown = new Float64Array(n);
      grown.set(this.f64.subarray(0, at));
      this.f64 = grown;
    }
    this.top = at + size;
    return at;
  }

  /** One more record refers to `text`; returns its slot. */
  ref(text: string): number {
    let slot = this.lastSlot;
    if (text !== this.lastText) {
      const last = this.lastSlot;
      if (last !== -1 && this.refs[last] === 0) this.dropText(last);
      if (this.freeTexts.length > 0) slot = this.freeTexts.pop() as number;
      else {
        slot = this.texts.length;
        this.texts.push(null);
        if (slot === this.refs.length) {
          const grown = new Int32Array(this.refs.length * 2);
          grown.set(this.refs);
          this.refs = grown;
        }
      }
      this.texts[slot] = text;
      this.refs[slot] = 0;
      this.lastText = text;
      this.lastSlot = slot;
    }
    this.refs[slot] = (this.refs[slot] as number) + 1;
    return slot;
  }

  /** One more record (a detached follower's copy) refers to the text in `slot`. */
  addRef(slot: number): void {
    this.refs[slot] = (this.refs[slot] as number) + 1;
  }

  /** A record that referred to the text in `slot` is gone. */
  unref(slot: number): void {
    const r = (this.refs[slot] as number) - 1;
    this.refs[slot] = r;
    // The last text stays while inserts may still refer to it (ref frees it when the text changes).
    if (r === 0 && slot !== this.lastSlot) this.dropText(slot);
  }

  text(slot: number): string {
    return this.texts[slot] as string;
  }

  /** Texts referred to by some record, or kept as the last one (tests). */
  get textsInUse(): number {
    return this.texts.length - this.freeTexts.length;
  }

  private dropText(slot: number): void {
    this.texts[slot] = null;
    this.freeTexts.push(slot);
  }

  release(at: number, size: number): void {
    let list = this.free[size];
    if (list === undefined) this.free[size] = list = [];
    list.push(at);
  }
}

// Shared stand-ins for the parallel arrays a lane does not use (never written: every write is guarded by
// the spec), so a lane costs only the arrays it needs; 100k keys make that visible (bench/engine.ts).
const NO_PODS: Array<string | null> = [];
const NO_EVENTS: RuleEvent[] = [];
const NO_FOLLOWERS: readonly Lane[] = [];

/**
 * Drops the first n of `size` slots in place. The array keeps its length (the slots past the new
 * size are stale and get overwritten by the next inserts): shortening it would make V8 trim its
 * backing store, and the next inserts grow it again by copying (bench/engine.ts allocation profile:
 * that regrowth was a fifth of V2's allocated bytes). splice(0, n) would allocate the dropped slots.
 */
function dropFront<T>(xs: T[], n: number, size: number): void {
  for (let i = n; i < size; i++) xs[i - n] = xs[i] as T;
}

/**
 * Moves `count` doubles from `from` to `to` within f64 (overlapping ranges allowed). A loop, not
 * copyWithin: the moves are a few records, and copyWithin is a call into the runtime (makeRoom's
 * copyWithin was 3.5 % of V2's profile on bench/engine.ts's stream).
 */
function move(f64: Float64Array, to: number, from: number, count: number): void {
  if (to < from) for (let i = 0; i < count; i++) f64[to + i] = f64[from + i] as number;
  else for (let i = count - 1; i >= 0; i--) f64[to + i] = f64[from + i] as number;
}

/** A finite measurement of the row, or NaN; inline, so that no heap number is made per call. */
function measureAt(row: EventRow, key: string): number {
  const j = row.attrIndex(key);
  const v = j < 0 ? NaN : (row.attrVals[j] as number);
  return Number.isFinite(v) ? v : NaN;
}

/** Puts x at index i of a parallel array of `len` slots in use (a push, a stale slot, or an insert). */
function put<T>(xs: T[], i: number, len: number, x: T): void {
  if (i < len) xs.splice(i, 0, x);
  else if (xs.length === len) xs.push(x);
  else xs[i] = x;
}

/** Evicted slots are dropped from the arrays once this many have piled up at the front. */
const COMPACT_AT = 256;

/**
 * The events of one rule, one scope key and some of the rule's input types, sorted by timestamp with
 * equal timestamps in arrival order (as V1's store), plus running aggregates over a cursor window
 * [lo, hi) of it. `advance` moves the cursor to the events with now - span <= t <= now.
 *
 * In order (now = the newest timestamp), the cursor only moves forward and every event enters and
 * leaves the aggregates once: O(1) amortised per event. An out-of-order event moves the cursor back
 * by the events it skips, and the next in-order event moves it forward again; the allowed lateness
 * bounds that distance. An insert before the tail shifts the slab's later records (out-of-order
 * events only).
 *
 * Records live in [head, size) (the owner's size for a follower; slots past it are stale); the front
 * is evicted by moving head and compacted in bulk.
 *
 * Timestamps, measurements and id spans are one interleaved record per event in the lane's slab of
 * the engine's LaneStore, [t, v, v2, span] with the lane's stride (2 + a slot per measurement), so an
 * insert or a cursor step touches one place instead of several arrays (bench/engine.ts's profile
 * stalled on the loads of each array's header and tail).
 *
 * An id is kept as a text and a span (EventRow.idRef/idSpan): a decoded batch's ids share one string
 * (RuleEventDecoder.copyId), so a stored event costs two doubles (the span, and the text's slot in
 * the LaneStore's table), not a string of its own; the id string is made only for evidence (`id`).
 *
 * A lane keeps ids, timestamps and the measurements it reads, not the events: a decoded event then
 * dies young, which keeps the stored state small and the garbage collector's old generation quiet
 * (bench/engine.ts: GC was the largest item of V2's profile while lanes held whole events).
 */
export class Lane {
  readonly spec: LaneSpec;
  readonly store: LaneStore;
  // Not readonly: a follower gets arrays of its own when it is detached.
  /** Only when the spec keeps events. */
  events: RuleEvent[];
  /**
   * The lane's slab in store.f64 (an owner's; a follower reads its owner's): its offset, and its
   * capacity in events (0 before the first insert, and once released).
   */
  base: number;
  cap: number;
  /** Doubles per event in the slab: [t, measurements..., id span, id text slot]. */
  readonly stride: number;
  pods: Array<string | null>;
  /**
   * The lane whose records this one reads instead of storing its own, or null. A follower has its
   * own head (its evictions), cursor and aggregates over the owner's records; the owner inserts for
   * both and compacts for both. Used for two rules that see exactly the same events (R2 and R3:
   * memory.usage per container); see V2Engine. Why: memory.usage is a third of bench/engine.ts's
   * stream, and on it V2 without R3 ran ~15 % faster (its lane's insert, eviction, memory traffic).
   */
  owner: Lane | null;
  /** Null until the lane has a follower (most never do: one array less per lane). */
  followers: Lane[] | null;
  /** followers.length, on the lane itself: an insert then reads the array only when there are followers. */
  followerCount: number;
  /** Slots in use (an owner's; a follower reads its owner's). */
  size: number;
  head: number;
  lo: number;
  hi: number;
  /** Events in [lo, hi) with a finite measurement. */
  samples: number;
  /**
   * Running sum of those measurements. Only a filter: add/remove in another order than V1's scan
   * can differ in the last bits, so a decision re-sums the window exactly (see engine.ts).
   */
  sum: number;
  spikes: number;
  /** Pod -> events in [lo, hi) that count for it; null when the lane counts no pods. */
  readonly podCounts: Map<string, number> | null;

  /** With an owner, the lane starts as a follower with an empty cursor at the owner's head. */
  constructor(spec: LaneSpec, store: LaneStore, owner: Lane | null = null) {
    this.spec = spec;
    this.store = store;
    this.events = owner !== null ? owner.events : spec.keepEvents ? [] : NO_EVENTS;
    this.base = 0;
    this.cap = 0;
    this.stride = 3 + (spec.attr === null ? 0 : 1) + (spec.attr2 === null ? 0 : 1);
    this.pods = owner !== null ? owner.pods : spec.keepPods ? [] : NO_PODS;
    this.owner = owner;
    this.followers = null;
    this.followerCount = 0;
    if (owner !== null) owner.followerCount = (owner.followers ??= []).push(this);
    this.size = 0;
    this.head = owner !== null ? owner.head : 0;
    this.lo = this.head;
    this.hi = this.head;
    this.samples = 0;
    this.sum = 0;
    this.spikes = 0;
    this.podCounts = spec.distinct === DISTINCT_NONE ? null : new Map();
  }

  get stored(): number {
    return this.count() - this.head;
  }

  /** Slots in use: its own, or its owner's. */
  private count(): number {
    const owner = this.owner;
    return owner === null ? this.size : owner.size;
  }

  /** The slab's offset: its own, or its owner's. */
  private slabBase(): number {
    const owner = this.owner;
    return owner === null ? this.base : owner.base;
  }

  /** Inserts after every event with timestamp <= the new one, keeping the cursor's contents. */
  insert(event: EventRow): void {
    if (this.size === this.cap) this.makeRoom();
    const spec = this.spec;
    const t = event.timestamp;
    const id = event.idRef();
    const span = event.idSpan;
    const stride = this.stride;
    const f64 = this.store.f64;
    const base = this.base;
    const len = this.size;
    const pod = spec.keepPods ? event.podIdentity : null;
    let i = len;
    if (len > this.head && (f64[base + (len - 1) * stride] as number) > t)
      i = upperBound(f64, base, stride, this.head, len, event);
    if (i < len) move(f64, base + (i + 1) * stride, base + i * stride, (len - i) * stride);
    const k = base + i * stride;
    f64[k] = t;
    if (spec.attr !== null) f64[k + 1] = measureAt(event, spec.attr);
    if (spec.attr2 !== null) f64[k + 2] = measureAt(event, spec.attr2);
    f64[k + stride - 2] = span;
    f64[k + stride - 1] = this.store.ref(id);
    if (spec.keepEvents) put(this.events, i, len, event.toEvent());
    if (spec.keepPods) put(this.pods, i, len, pod);
    this.size = len + 1;
    this.shifted(i);
    if (this.followerCount !== 0) for (const f of this.followers as Lane[]) f.shifted(i);
  }

  /**
   * The slab is full: drops the evicted front in place when that frees at least half of it, else
   * moves the records to a slab twice as large (dropping the evicted front on the way).
   */
  private makeRoom(): void {
    const n = this.droppable();
    const stride = this.stride;
    if (this.cap > 0 && n * 2 >= this.cap) {
      this.compactBy(n, true);
      return;
    }
    const store = this.store;
    const spec = this.spec;
    let cap: number;
    if (this.cap === 0) cap = spec.firstSlabEvents;
    else {
      cap = this.cap * 2;
      if (this.cap === spec.firstSlabEvents && cap <= MAX_FIRST_SLAB_EVENTS) spec.firstSlabEvents = cap;
    }
    const base = store.alloc(cap * stride);
    // After alloc: it may have replaced the array.
    this.unrefRecords(0, n);
    move(store.f64, base, this.base + n * stride, (this.size - n) * stride);
    if (this.cap > 0) store.release(this.base, this.cap * stride);
    this.base = base;
    this.cap = cap;
    this.compactBy(n, false);
  }

  /** Evicted slots at the front that no follower still reads. */
  private droppable(): number {
    let n = this.head;
    const followers = this.followers ?? NO_FOLLOWERS;
    for (let f = 0; f < followers.length; f++) n = Math.min(n, (followers[f] as Lane).head);
    return n;
  }

  /**
   * Gives the slab back to the store (the key is being freed); the lane must not be used after. Its
   * counts stay as they were: a follower freed with it still reads `size` for `stored`.
   */
  release(): void {
    if (this.owner !== null || this.cap === 0) return;
    this.unrefRecords(0, this.size);
    this.store.release(this.base, this.cap * this.stride);
    this.cap = 0;
  }

  /** The newest stored timestamp (the last: lanes are sorted), or -Infinity when none is stored. */
  newest(): number {
    const n = this.count();
    return n > this.head ? (this.store.f64[this.slabBase() + (n - 1) * this.stride] as number) : -Infinity;
  }

  /**
   * Whether the lane stores an event with the row's id and timestamp (RULES.md "Redelivery", read as
   * engine-v1's isRedelivery). Such events sit just before the row's insertion point, so no index of
   * ids is kept: the memory per key stays as it was.
   */
  holdsId(row: EventRow): boolean {
    const n = this.count();
    const head = this.head;
    if (n === head) return false;
    const f64 = this.store.f64;
    const base = this.slabBase();
    const stride = this.stride;
    const t = row.timestamp;
    let i = n;
    if ((f64[base + (n - 1) * stride] as number) > t) i = upperBound(f64, base, stride, head, n, row);
    let blob: string | null = null;
    for (i -= 1; i >= head; i--) {
      const k = base + i * stride;
      if ((f64[k] as number) !== t) return false;
      blob ??= row.idRef();
      if (sameId(this.store.text(f64[k + stride - 1] as number), f64[k + stride - 2] as number, blob, row.idSpan)) {
        return true;
      }
    }
    return false;
  }

  /** Timestamp of event i. */
  t(i: number): number {
    return this.store.f64[this.slabBase() + i * this.stride] as number;
  }

  /** Id of event i (made from the shared id text: only evidence asks for it). */
  id(i: number): string {
    const k = this.slabBase() + i * this.stride + this.stride;
    const f64 = this.store.f64;
    return idOf(this.store.text(f64[k - 1] as number), f64[k - 2] as number);
  }

  /** Measurement of event i (NaN when the event lacks it). */
  v(i: number): number {
    return this.store.f64[this.slabBase() + i * this.stride + 1] as number;
  }

  /** Second measurement of event i (R2/R3 limit_bytes). */
  v2(i: number): number {
    return this.store.f64[this.slabBase() + i * this.stride + 2] as number;
  }

  /** First index in [from, to) whose timestamp is >= t. */
  lowerBound(from: number, to: number, t: number): number {
    return lowerBound(this.store.f64, this.slabBase(), this.stride, from, to, t);
  }

  /** Keeps the cursor's contents after an insert at index i. */
  private shifted(i: number): void {
    if (i < this.lo) {
      this.lo += 1;
      this.hi += 1;
    } else if (i < this.hi) {
      this.hi += 1;
      this.add(i);
    }
  }

  /**
   * Makes a follower store its own copy of the events from its head on, so that it can take events
   * its owner does not (a routed record that lists only one of the two rules).
   */
  detach(): void {
    const owner = this.owner;
    if (owner === null) return;
    const from = this.head;
    const size = owner.size;
    const spec = this.spec;
    const stride = this.stride;
    let cap = MIN_SLAB_EVENTS;
    while (cap < size - from) cap *= 2;
    const store = this.store;
    const base = store.alloc(cap * stride);
    move(store.f64, base, owner.base + from * stride, (size - from) * stride);
    this.base = base;
    this.cap = cap;
    for (let i = 0; i < size - from; i++) store.addRef(store.f64[base + i * stride + stride - 1] as number);
    this.events = spec.keepEvents ? owner.events.slice(from, size) : NO_EVENTS;
    this.pods = spec.keepPods ? owner.pods.slice(from, size) : NO_PODS;
    this.size = size - from;
    this.head = 0;
    this.lo -= from;
    this.hi -= from;
    const followers = owner.followers as Lane[];
    followers.splice(followers.indexOf(this), 1);
    owner.followerCount = followers.length;
    this.owner = null;
  }

  /**
   * Moves the cursor to the events with now - span <= t <= now (now: the row's timestamp), then
   * drops the stored events older than store.evictBefore (the rule's watermark - lateness - horizon)
   * that lie before the cursor (with now >= that + span, every such event does); returns how many it
   * dropped. The doubles are read here rather than passed (see upperBound).
   */
  advance(row: EventRow): number {
    const f64 = this.store.f64;
    const base = this.slabBase();
    const stride = this.stride;
    const len = this.count();
    const now = row.timestamp;
    const from = now - this.spec.spanMs;
    const hiT =
      len === this.head || (f64[base + (len - 1) * stride] as number) <= now
        ? len
        : upperBound(f64, base, stride, this.head, len, row);
    let loT = this.lo;
    while (loT < len && (f64[base + loT * stride] as number) < from) loT += 1;
    while (loT > this.head && (f64[base + (loT - 1) * stride] as number) >= from) loT -= 1;
    // Grow first, then shrink, so that lo <= hi throughout (loT <= hiT).
    while (this.hi < hiT) this.add(this.hi++);
    while (this.lo > loT) this.add(--this.lo);
    while (this.lo < loT) this.remove(this.lo++);
    while (this.hi > hiT) this.remove(--this.hi);

    const t = this.store.evictBefore;
    const start = this.head;
    let head = start;
    while (head < this.lo && (f64[base + head * stride] as number) < t) head += 1;
    this.head = head;
    if (this.owner === null && head >= COMPACT_AT && head * 2 >= len) this.compactBy(this.droppable(), true);
    return head - start;
  }

  /**
   * R2/R3's O(1) check: the last event in [lo, hi) with a finite measurement has a positive second
   * measurement and measurement / second >= min (within atLeast's margin); false without one. One
   * call returning a boolean: v() and v2() returned heap numbers where they were not inlined.
   */
  lastRatioAtLeast(min: number): boolean {
    const f64 = this.store.f64;
    const base = this.slabBase();
    const stride = this.stride;
    for (let i = this.hi - 1; i >= this.lo; i--) {
      const k = base + i * stride;
      const v = f64[k + 1] as number;
      if (Number.isNaN(v)) continue;
      const limit = f64[k + 2] as number;
      return limit > 0 && atLeast(v / limit, min);
    }
    return false;
  }

  /** Index of the last event in [lo, hi) with a finite measurement, or -1. */
  lastSample(): number {
    for (let i = this.hi - 1; i >= this.lo; i--) if (!Number.isNaN(this.v(i))) return i;
    return -1;
  }

  /**
   * Drops the first n slots (evicted by this lane and its followers): the records move to the
   * slab's front (unless `moveRecords` is false: makeRoom has already copied them), the arrays
   * drop their front, and every index shifts down by n.
   */
  private compactBy(n: number, moveRecords: boolean): void {
    if (n === 0) return;
    const size = this.size;
    const stride = this.stride;
    if (moveRecords) {
      this.unrefRecords(0, n);
      move(this.store.f64, this.base, this.base + n * stride, (size - n) * stride);
    }
    if (this.spec.keepEvents) dropFront(this.events, n, size);
    if (this.spec.keepPods) dropFront(this.pods, n, size);
    this.size = size - n;
    this.head -= n;
    this.lo -= n;
    this.hi -= n;
    const followers = this.followers ?? NO_FOLLOWERS;
    for (let f = 0; f < followers.length; f++) {
      const follower = followers[f] as Lane;
      follower.head -= n;
      follower.lo -= n;
      follower.hi -= n;
    }
  }

  /** The records [from, to) of this lane's own slab leave it: their id texts lose a reference. */
  private unrefRecords(from: number, to: number): void {
    const store = this.store;
    const f64 = store.f64;
    const stride = this.stride;
    for (let i = from; i < to; i++) store.unref(f64[this.base + i * stride + stride - 1] as number);
  }

  private add(i: number): void {
    const spec = this.spec;
    if (spec.attr !== null) {
      const v = this.v(i);
      if (!Number.isNaN(v)) {
        this.samples += 1;
        this.sum += v;
        if (v > spec.spikeAbove) this.spikes += 1;
      }
    }
    const counts = this.podCounts;
    if (counts !== null) {
      const pod = this.pods[i] ?? null;
      if (pod !== null && (spec.distinct === DISTINCT_ALL || this.v(i) >= spec.distinctMin)) {
        counts.set(pod, (counts.get(pod) ?? 0) + 1);
      }
    }
  }

  private remove(i: number): void {
    const spec = this.spec;
    if (spec.attr !== null) {
      const v = this.v(i);
      if (!Number.isNaN(v)) {
        this.samples -= 1;
        // An empty window restarts the sum at an exact zero, so rounding never accumulates.
        this.sum = this.samples === 0 ? 0 : this.sum - v;
        if (v > spec.spikeAbove) this.spikes -= 1;
      }
    }
    const counts = this.podCounts;
    if (counts !== null) {
      const pod = this.pods[i] ?? null;
      if (pod !== null && (spec.distinct === DISTINCT_ALL || this.v(i) >= spec.distinctMin)) {
        const c = counts.get(pod) ?? 0;
        if (c <= 1) counts.delete(pod);
        else counts.set(pod, c - 1);
      }
    }
  }
}
