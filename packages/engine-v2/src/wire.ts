import { TapioError } from '@tapio/errors';
import type { RecordContext } from '@tapio/errors';
import { EVENT_SCHEMA, WIRE_HEADER_BYTES } from '@tapio/events';
import { EventRow, hashText } from './row';
import type { RuleEvent } from './types';

/**
 * A hand-written reader for one writer schema, tapio.Event (schemas/tapio.Event.avsc), straight into
 * the projected RuleEvent. Avro binary encoding (Avro 1.11 spec, "Binary Encoding"):
 *
 *   long    := zigzag varint            string := long(len) bytes(len)      double := 8 bytes LE
 *   union   := long(branch) value       map    := { long(count) [long(size) if count < 0] (string value)* } long(0)
 *   Event   := id:string timestamp:long source:string type:string severity:string
 *              entity:(cluster:union namespace:union kind:string name:string node:union pod:union
 *                      container:union service:union)
 *              attributes:map<double> labels:map<string> message:union        (every union is [null, string])
 *
 * It mirrors avsc 5.7's Tap step for step where bad bytes are concerned, so that the error code is the
 * one WireDecoder (avsc + resolver) gives: a read past the end yields zeros and never throws, so once
 * past the end the outcome is TRUNCATED_RECORD; a bad union branch or an unsafe timestamp throws
 * (MALFORMED_RECORD); a negative or non-numeric length invalidates (TRUNCATED_RECORD); leftover bytes
 * are TRAILING_BYTES. test/unit/engine-v2/wire.test.ts checks this against avsc on fuzzed bytes.
 *
 * Why: decoding was the largest item of V2's profile. On bench/engine.ts's stream (same buffers,
 * decode alone) this reader does ~1.34M events/s against ~1.19M for avsc's projected decode and
 * ~1.0M for its full decode, and it allocates no string for repeated names (see INTERN_SLOTS).
 */

/** avsc's isSafeLong bound. */
const MAX_SAFE_LONG = 9007199254740990;

/**
 * Short strings (types, kinds, names, map keys, label values) repeat from event to event: a small
 * direct-mapped cache by byte hash returns the same string object, so decoding allocates no string
 * and its hash is already computed when the engine looks it up in a Map.
 */
// 16384: on bench/engine.ts's stream (a few thousand distinct names) 4096 slots missed on ~7 % of
// lookups, each a new string; 16384 miss on ~2 %.
const INTERN_SLOTS = 16384;
const INTERN_MAX_BYTES = 48;

class Malformed extends Error {}

// A little-endian double read through a scratch Float64Array: Buffer#readDoubleLE returns a heap
// number per call (bench/engine.ts allocation profile); this one inlines. On a big-endian host the
// bytes are reversed.
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

function readDouble(buf: Buffer, pos: number): number {
  const b = F64_BYTES;
  if (LITTLE_ENDIAN) {
    b[0] = buf[pos] as number;
    b[1] = buf[pos + 1] as number;
    b[2] = buf[pos + 2] as number;
    b[3] = buf[pos + 3] as number;
    b[4] = buf[pos + 4] as number;
    b[5] = buf[pos + 5] as number;
    b[6] = buf[pos + 6] as number;
    b[7] = buf[pos + 7] as number;
  } else {
    for (let i = 0; i < 8; i++) b[i] = buf[pos + 7 - i] as number;
  }
  return F64[0] as number;
}

/** Node's Buffer has utf8Slice (what avsc's Tap.readString calls), without toString's argument checks. */
type SlicingBuffer = Buffer & {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
};

export class EventWireReader {
  private buf: SlicingBuffer;
  private pos: number;
  private end: number;
  private readonly internStrings: Array<string | null>;
  /** hashText of the last string read by readString(true) / readOptional (0 for null). */
  private hash = 0;
  /** For `decode`. */
  private readonly scratch = new EventRow();
  /** The types whose rows get fields, with which optional ones (decodeInto's `needs`), null for all of every type. */
  private needs: ReadonlyMap<string, number> | null = null;

  constructor() {
    this.buf = Buffer.alloc(0) as SlicingBuffer;
    this.pos = 0;
    this.end = 0;
    this.internStrings = new Array<string | null>(INTERN_SLOTS).fill(null);
  }

  /** Decodes the datum after the 5-byte header (already checked); throws TapioError as WireDecoder does. */
  decode(value: Buffer, schemaId: number, context: RecordContext | undefined): RuleEvent {
    const row = this.scratch;
    this.decodeInto(value, schemaId, context, row, null);
    const event = row.toEvent();
    row.buf = null;
    return event;
  }

  /**
   * As `decode`, into a row (see EventRow: the id stays in `value` until the row's `id` is read).
   * With `needs`, a record of a type not in it is read and checked just the same (the same errors)
   * but its row keeps only id, timestamp, type, kind and name (see EventRow.partial).
   */
  decodeInto(
    value: Buffer,
    schemaId: number,
    context: RecordContext | undefined,
    row: EventRow,
    needs: ReadonlyMap<string, number> | null,
  ): void {
    this.needs = needs;
    this.buf = value as SlicingBuffer;
    this.pos = WIRE_HEADER_BYTES;
    this.end = value.length;
    try {
      this.readEvent(row);
    } catch (cause) {
      if (!(cause instanceof Malformed)) throw cause;
      throw new TapioError('MALFORMED_RECORD', `record value is not a valid Avro datum`, {
        cause,
        context: { ...context, schemaId },
      });
    }
    const pos = this.pos;
    // `pos` can be NaN after a length of ~150 varint bytes, as in avsc; !(pos <= end) counts it as truncated.
    if (!(pos <= value.length)) {
      throw new TapioError('TRUNCATED_RECORD', `record value ends inside its Avro datum (${value.length} bytes)`, {
        context: { ...context, schemaId },
      });
    }
    if (pos !== value.length) {
      throw new TapioError('TRAILING_BYTES', `record value has ${value.length - pos} bytes after its Avro datum`, {
        context: { ...context, schemaId },
      });
    }
  }

  private readEvent(row: EventRow): void {
    // The id: checked as readString does, sliced only when the row's id is read.
    const len = this.readLong();
    const start = this.pos;
    const stop = start + len;
    if (len < 0 || !(stop <= this.end)) {
      if (len < 0 || Number.isNaN(len)) this.invalidate();
      else this.pos = stop;
      row.reset(this.buf, 0, 0);
    } else {
      this.pos = stop;
      row.reset(this.buf, start, stop);
    }
    this.readTimestamp(row);
    this.skipString(); // source
    row.type = this.readString(true);
    row.hType = this.hash;
    const needs = this.needs;
    let need = NEED_ALL;
    if (needs !== null) {
      const n = needs.get(row.type);
      if (n === undefined) {
        this.skipRest(row);
        return;
      }
      need = n;
    }
    this.skipString(); // severity
    this.skipOptional(); // entity.cluster
    row.namespace = this.readOptional();
    row.hNamespace = this.hash;
    row.kind = this.readString(true);
    row.name = this.readString(true);
    row.hName = this.hash;
    row.node = this.readOptionalIf((need & NEED_NODE) !== 0);
    row.hNode = this.hash;
    row.pod = this.readOptional();
    row.hPod = this.hash;
    row.container = this.readOptional();
    row.hContainer = this.hash;
    row.service = this.readOptionalIf((need & NEED_SERVICE) !== 0);
    row.hService = this.hash;
    this.readDoubleMap(row);
    if ((need & NEED_LABELS) !== 0) this.readStringMap(row);
    else this.skipMap(false);
    this.skipOptional(); // message
  }

  /**
   * The rest of a record whose type no rule reads: the same reads as readEvent's, in the same order
   * and with the same checks (so the same errors), but only kind and name are kept (the service
   * checks them); nothing is interned or stored for the other fields.
   */
  private skipRest(row: EventRow): void {
    this.skipString(); // severity
    this.skipOptional(); // entity.cluster
    this.skipOptional(); // entity.namespace
    row.kind = this.readString(true);
    row.name = this.readString(true);
    row.hName = this.hash;
    this.skipOptional(); // entity.node
    this.skipOptional(); // entity.pod
    this.skipOptional(); // entity.container
    this.skipOptional(); // entity.service
    this.skipMap(true); // attributes
    this.skipMap(false); // labels
    this.skipOptional(); // message
    row.partial = true;
    row.namespace = null;
    row.node = null;
    row.pod = null;
    row.container = null;
    row.service = null;
    row.hNamespace = 0;
    row.hNode = 0;
    row.hPod = 0;
    row.hContainer = 0;
    row.hService = 0;
  }

  /** readDoubleMap / readStringMap's reads (and checks), keeping nothing. */
  private skipMap(doubles: boolean): void {
    if (this.pos < this.end && this.buf[this.pos] === 0) {
      this.pos += 1;
      return;
    }
    let n = 0;
    while (this.pos <= this.end && (n = this.readBlockCount()) !== 0) {
      for (; n > 0 && this.pos <= this.end; n--) {
        this.skipString();
        if (doubles) this.pos += 8;
        else this.skipString();
      }
    }
  }

  /** avsc's Tap.readLong, with a read past the end giving 0 as `undefined & 0x7f` does there. */
  private readLong(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let n = 0;
    let k = 0;
    let b = 0;
    let h = 0;
    do {
      b = pos < end ? (buf[pos] as number) : 0;
      pos++;
      h = b & 0x80;
      n |= (b & 0x7f) << k;
      k += 7;
    } while (h !== 0 && k < 28);
    if (h !== 0) {
      let f = n;
      let fk = 268435456;
      do {
        b = pos < end ? (buf[pos] as number) : 0;
        pos++;
        f += (b & 0x7f) * fk;
        fk *= 128;
      } while ((b & 0x80) !== 0);
      this.pos = pos;
      return (f % 2 ? -(f + 1) : f) / 2;
    }
    this.pos = pos;
    return (n >> 1) ^ -(n & 1);
  }

  /**
   * readLong into row.timestamp, with avsc's safe-long check. The value is stored here rather than
   * returned: a double returned from a call that is not inlined is a heap number per event.
   */
  private readTimestamp(row: EventRow): void {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let n = 0;
    let k = 0;
    let b = 0;
    let h = 0;
    do {
      b = pos < end ? (buf[pos] as number) : 0;
      pos++;
      h = b & 0x80;
      n |= (b & 0x7f) << k;
      k += 7;
    } while (h !== 0 && k < 28);
    let timestamp: number;
    if (h !== 0) {
      let f = n;
      let fk = 268435456;
      do {
        b = pos < end ? (buf[pos] as number) : 0;
        pos++;
        f += (b & 0x7f) * fk;
        fk *= 128;
      } while ((b & 0x80) !== 0);
      timestamp = (f % 2 ? -(f + 1) : f) / 2;
    } else {
      timestamp = (n >> 1) ^ -(n & 1);
    }
    this.pos = pos;
    if (!(timestamp >= -MAX_SAFE_LONG && timestamp <= MAX_SAFE_LONG)) throw new Malformed('potential precision loss');
    row.timestamp = timestamp;
  }

  /** Marks the datum as running past the end (avsc's Tap._invalidate). */
  private invalidate(): void {
    this.pos = this.end + 1;
  }

  /** Also sets `hash` to hashText of the string (interned strings only; 0 otherwise). */
  private readString(intern: boolean): string {
    // One-byte lengths (0..63) read inline: the common case, without a call to readLong.
    const b0 = this.pos < this.end ? (this.buf[this.pos] as number) : 0x80;
    let len: number;
    if (b0 < 0x80) {
      len = (b0 >> 1) ^ -(b0 & 1);
      this.pos += 1;
    } else {
      len = this.readLong();
    }
    const start = this.pos;
    const stop = start + len;
    this.hash = 0;
    if (len < 0 || !(stop <= this.end)) {
      if (len < 0 || Number.isNaN(len)) this.invalidate();
      else this.pos = stop;
      return '';
    }
    this.pos = stop;
    if (intern) return this.intern(start, stop);
    return this.buf.utf8Slice(start, stop);
  }

  /**
   * ASCII strings up to INTERN_MAX_BYTES come from the cache (compared by char code); anything else
   * is decoded afresh. Sets `hash` (FNV-1a over the bytes: hashText of the string when ASCII).
   */
  private intern(start: number, stop: number): string {
    const buf = this.buf;
    let hash = 0x811c9dc5;
    let bits = 0;
    for (let i = start; i < stop; i++) {
      const b = buf[i] as number;
      bits |= b;
      hash = Math.imul(hash ^ b, 0x01000193);
    }
    const len = stop - start;
    if (bits >= 0x80) {
      const text = buf.utf8Slice(start, stop);
      this.hash = hashText(text);
      return text;
    }
    this.hash = hash;
    if (len > INTERN_MAX_BYTES) return buf.latin1Slice(start, stop);
    const slot = (hash >>> 0) & (INTERN_SLOTS - 1);
    const cached = this.internStrings[slot] ?? null;
    if (cached !== null && cached.length === len) {
      let i = 0;
      while (i < len && cached.charCodeAt(i) === buf[start + i]) i++;
      if (i === len) return cached;
    }
    const s = buf.latin1Slice(start, stop);
    this.internStrings[slot] = s;
    return s;
  }

  private skipString(): void {
    const b0 = this.pos < this.end ? (this.buf[this.pos] as number) : 0x80;
    let len: number;
    if (b0 < 0x80) {
      len = (b0 >> 1) ^ -(b0 & 1);
      this.pos += 1;
    } else {
      len = this.readLong();
    }
    if (len < 0 || Number.isNaN(len)) this.invalidate();
    else this.pos += len;
  }

  /** A ["null", "string"] union; any other branch index is malformed (avsc throws there). */
  private readOptional(): string | null {
    const b0 = this.pos < this.end ? (this.buf[this.pos] as number) : 0x80;
    let branch: number;
    if (b0 < 0x80) {
      branch = (b0 >> 1) ^ -(b0 & 1);
      this.pos += 1;
    } else {
      branch = this.readLong();
    }
    if (branch === 0) {
      this.hash = 0;
      return null;
    }
    if (branch === 1) return this.readString(true);
    throw new Malformed(`invalid union index: ${branch}`);
  }

  /** readOptional when `wanted`; otherwise skips the value (with the same checks) and gives null, hash 0. */
  private readOptionalIf(wanted: boolean): string | null {
    if (wanted) return this.readOptional();
    this.skipOptional();
    this.hash = 0;
    return null;
  }

  private skipOptional(): void {
    const branch = this.readLong();
    if (branch === 1) this.skipString();
    else if (branch !== 0) throw new Malformed(`invalid union index: ${branch}`);
  }

  /** avsc's readArraySize: a negative count is followed by the block's byte size, which is skipped. */
  private readBlockCount(): number {
    const n = this.readLong();
    if (n >= 0) return n;
    this.readLong();
    return -n;
  }

  private readDoubleMap(row: EventRow): void {
    // The common empty map: a lone zero count.
    if (this.pos < this.end && this.buf[this.pos] === 0) {
      this.pos += 1;
      return;
    }
    let n = 0;
    // Past the end every read is a zero in avsc too, so stopping there changes nothing but the time
    // a huge garbage count would take.
    while (this.pos <= this.end && (n = this.readBlockCount()) !== 0) {
      for (; n > 0 && this.pos <= this.end; n--) {
        const key = this.readString(true);
        const pos = this.pos;
        let v = 0;
        if (pos + 8 <= this.end) v = readDouble(this.buf, pos);
        this.pos = pos + 8;
        row.pushAttr(key, v);
      }
    }
  }

  private readStringMap(row: EventRow): void {
    if (this.pos < this.end && this.buf[this.pos] === 0) {
      this.pos += 1;
      return;
    }
    let n = 0;
    while (this.pos <= this.end && (n = this.readBlockCount()) !== 0) {
      for (; n > 0 && this.pos <= this.end; n--) {
        const key = this.readString(true);
        row.pushLabel(key, this.readString(true));
      }
    }
  }
}

/** Optional fields of a row that a type's rules need (RuleEventDecoder.projectTypes); the rest are always read. */
export const NEED_NODE = 1;
export const NEED_SERVICE = 2;
export const NEED_LABELS = 4;
export const NEED_ALL = NEED_NODE | NEED_SERVICE | NEED_LABELS;

/**
 * The layout of a schema JSON as it matters to Avro resolution: types, field and record names and
 * their order; docs, defaults and logical types (avsc reads timestamp-millis as a plain long here)
 * are left out. Anything unexpected gives null, so an unusual schema falls back to avsc.
 */
function layoutOf(schema: unknown, namespace: string): string | null {
  if (typeof schema === 'string') {
    if (PRIMITIVES.has(schema)) return schema;
    return schema.includes('.') ? `@${schema}` : `@${namespace}.${schema}`;
  }
  if (Array.isArray(schema)) {
    const parts: string[] = [];
    for (const branch of schema) {
      const p = layoutOf(branch, namespace);
      if (p === null) return null;
      parts.push(p);
    }
    return `[${parts.join(',')}]`;
  }
  if (typeof schema !== 'object' || schema === null) return null;
  const s = schema as Record<string, unknown>;
  const type = s['type'];
  if (typeof type === 'string' && PRIMITIVES.has(type)) return type;
  if (type === 'map') {
    const values = layoutOf(s['values'], namespace);
    return values === null ? null : `map<${values}>`;
  }
  if (type === 'record' && typeof s['name'] === 'string' && Array.isArray(s['fields'])) {
    const name = s['name'];
    const ns = typeof s['namespace'] === 'string' ? s['namespace'] : namespace;
    const fullName = name.includes('.') ? name : ns === '' ? name : `${ns}.${name}`;
    const inner = fullName.includes('.') ? fullName.slice(0, fullName.lastIndexOf('.')) : '';
    const fields: string[] = [];
    for (const field of s['fields'] as unknown[]) {
      if (typeof field !== 'object' || field === null) return null;
      const f = field as Record<string, unknown>;
      const t = layoutOf(f['type'], inner);
      if (typeof f['name'] !== 'string' || t === null) return null;
      fields.push(`${f['name']}:${t}`);
    }
    return `record ${fullName}{${fields.join(';')}}`;
  }
  return null;
}

const PRIMITIVES: ReadonlySet<string> = new Set([
  'null',
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'bytes',
  'string',
]);

const EVENT_LAYOUT = layoutOf(EVENT_SCHEMA, '');

/** True when a writer schema has tapio.Event's exact layout, so EventWireReader reads it as avsc would. */
export function isEventLayout(writerSchema: unknown): boolean {
  return EVENT_LAYOUT !== null && layoutOf(writerSchema, '') === EVENT_LAYOUT;
}
