import type { TapioError } from '@tapio/errors';
import type { RuleEntity, RuleEvent } from './types';

/** The entity as avsc's projected decode builds it, all fields in the constructor. */
class DecodedEntity implements RuleEntity {
  constructor(
    public namespace: string | null,
    public kind: string,
    public name: string,
    public node: string | null,
    public pod: string | null,
    public container: string | null,
    public service: string | null,
  ) {}
}

class DecodedEvent implements RuleEvent {
  constructor(
    public id: string,
    public timestamp: number,
    public type: string,
    public entity: RuleEntity,
    public attributes: Record<string, number>,
    public labels: Record<string, string>,
  ) {}
}

/**
 * Shared by every event with no attributes (labels) — most events have no labels — so they cost no
 * allocation. Frozen, so that a consumer that writes to one fails loudly instead of changing every event.
 */
export const NO_ATTRIBUTES: Record<string, number> = Object.freeze({});
export const NO_LABELS: Record<string, string> = Object.freeze({});

/** FNV-1a over a string's char codes: for ASCII the same as the decoder's hash over its UTF-8 bytes. */
export function hashText(s: string | null): number {
  if (s === null) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * Pod identities made recently, by namespace and pod: an event of a pod seen before gets the same
 * string instead of a new one. Why: lanes that count pods keep one per stored event, and in
 * bench/engine.ts's profile of V2 making them was ~3 % of the time, plus their garbage and, in the
 * pod-count maps, hashing each fresh string again. Shared by every row (strings only; a collision
 * just makes a new string).
 */
const POD_SLOTS = 4096;
const podNamespaces = new Array<string | null>(POD_SLOTS).fill(null);
const podNames = new Array<string | null>(POD_SLOTS).fill(null);
const podTexts = new Array<string | null>(POD_SLOTS).fill(null);

function podSlot(hNamespace: number, hPod: number): number {
  const h = Math.imul(hNamespace ^ Math.imul(hPod, 0x9e3779b1), 0x85ebca6b);
  return (h ^ (h >>> 16)) & (POD_SLOTS - 1);
}

/**
 * An id's place in a shared id text, start * ID_SPAN + length (EventRow.idSpan): exact in a double for
 * starts below 2^28 and lengths below 2^24.
 */
export const ID_SPAN = 16_777_216;

/** The id that `span` (EventRow.idSpan) marks in `blob`: the whole of it for -1. */
export function idOf(blob: string, span: number): string {
  if (span < 0) return blob;
  const start = Math.floor(span / ID_SPAN);
  return blob.substring(start, start + (span - start * ID_SPAN));
}

/**
 * Whether the ids that two (text, span) pairs mark (see idOf) are equal, without making either id.
 * Compared by length, then from the last character back (generated ids mostly differ at their end).
 */
export function sameId(a: string, spanA: number, b: string, spanB: number): boolean {
  let startA = 0;
  let lenA = a.length;
  if (spanA >= 0) {
    startA = Math.floor(spanA / ID_SPAN);
    lenA = spanA - startA * ID_SPAN;
  }
  let startB = 0;
  let lenB = b.length;
  if (spanB >= 0) {
    startB = Math.floor(spanB / ID_SPAN);
    lenB = spanB - startB * ID_SPAN;
  }
  if (lenA !== lenB) return false;
  for (let i = lenA - 1; i >= 0; i--) if (a.charCodeAt(startA + i) !== b.charCodeAt(startB + i)) return false;
  return true;
}

/** Node's Buffer has utf8Slice (what avsc's Tap.readString calls), without toString's argument checks. */
type SlicingBuffer = Buffer & { utf8Slice(start: number, end: number): string };

/**
 * One event as the engine reads it, in a reusable slot: what RuleEvent holds, flattened. A batch
 * decode (RuleEventDecoder.decodeRows) fills one row per record and reuses the rows from batch to
 * batch, so a decoded event costs no object: the entity fields are the decoder's interned strings
 * with their byte hashes (the engine finds a scope key's state from them without building the key
 * string), attributes and labels are parallel key/value arrays, and the id is sliced from the
 * record's bytes only when the engine stores or reports it. A row filled from a RuleEvent
 * (`fromEvent`) reads that event instead.
 *
 * Why: bench/engine.ts's profile of V2 had the garbage collector (per-event objects and strings) and
 * the scope-key strings built and hashed per event among its largest items.
 */
export class EventRow {
  private idText: string | null = null;
  /** The record's bytes and where its id lies in them, while `idText` is not yet made. */
  buf: Buffer | null = null;
  idStart = 0;
  idEnd = 0;
  timestamp = 0;
  type = '';
  namespace: string | null = null;
  kind = '';
  name = '';
  node: string | null = null;
  pod: string | null = null;
  container: string | null = null;
  service: string | null = null;
  /** hashText of the type and of each entity field (0 for null). */
  hType = 0;
  hNamespace = 0;
  hName = 0;
  hNode = 0;
  hPod = 0;
  hContainer = 0;
  hService = 0;
  attrCount = 0;
  readonly attrKeys: string[] = [];
  readonly attrVals: number[] = [];
  labelCount = 0;
  readonly labelKeys: string[] = [];
  readonly labelVals: string[] = [];
  /** The event this row was filled from (fromEvent), or the one made by toEvent; null otherwise. */
  private event: RuleEvent | null = null;
  /** podIdentity, once made (undefined before). */
  private podText: string | null | undefined = undefined;
  /** Whether `event` is the caller's own (fromEvent): labels are read from it. */
  private borrowed = false;
  /**
   * Decoded with only id, timestamp, type, kind and name (RuleEventDecoder.fullTypesOnly: a type
   * that no rule reads); the other entity fields read null, and there are no attributes or labels.
   */
  partial = false;
  /**
   * The text a lane keeps for this row's id and where the id lies in it (see idRef): a batch's shared
   * id text (RuleEventDecoder.decodeRows) with idSpan = start * ID_SPAN + length, or the id itself with
   * idSpan = -1; null until one of the two is set.
   */
  idBlob: string | null = null;
  idSpan = -1;

  get id(): string {
    let id = this.idText;
    if (id === null) {
      id = (this.buf as SlicingBuffer).utf8Slice(this.idStart, this.idEnd);
      this.idText = id;
    }
    return id;
  }

  /**
   * The id's text for a lane to keep (with idSpan, see idOf): the batch's shared id text when the
   * decoder made one, otherwise the id string itself (made now if need be).
   */
  idRef(): string {
    let blob = this.idBlob;
    if (blob === null) {
      blob = this.id;
      this.idBlob = blob;
      this.idSpan = -1;
    }
    return blob;
  }

  /** Whether the id is empty (without making it). */
  get idIsEmpty(): boolean {
    const id = this.idText;
    return id !== null ? id === '' : this.idEnd === this.idStart;
  }

  /** Starts a decoded row: the id is [idStart, idEnd) of buf. */
  reset(buf: Buffer, idStart: number, idEnd: number): void {
    this.idText = null;
    this.buf = buf;
    this.idStart = idStart;
    this.idEnd = idEnd;
    this.idBlob = null;
    this.idSpan = -1;
    this.attrCount = 0;
    this.labelCount = 0;
    this.event = null;
    this.borrowed = false;
    this.podText = undefined;
    this.partial = false;
  }

  pushAttr(key: string, value: number): void {
    const n = this.attrCount;
    if (n < this.attrKeys.length) {
      this.attrKeys[n] = key;
      this.attrVals[n] = value;
    } else {
      this.attrKeys.push(key);
      this.attrVals.push(value);
    }
    this.attrCount = n + 1;
  }

  pushLabel(key: string, value: string): void {
    const n = this.labelCount;
    if (n < this.labelKeys.length) {
      this.labelKeys[n] = key;
      this.labelVals[n] = value;
    } else {
      this.labelKeys.push(key);
      this.labelVals.push(value);
    }
    this.labelCount = n + 1;
  }

  /** Fills the row from an event object; attributes and labels are read from it. */
  fromEvent(event: RuleEvent): void {
    const e = event.entity;
    this.idText = event.id;
    this.buf = null;
    this.idBlob = null;
    this.idSpan = -1;
    this.timestamp = event.timestamp;
    this.type = event.type;
    // A missing nullable field reads as null (RULES.md), as @tapio/rules' `present` treats it.
    this.namespace = e.namespace ?? null;
    this.kind = e.kind;
    this.name = e.name;
    this.node = e.node ?? null;
    this.pod = e.pod ?? null;
    this.container = e.container ?? null;
    this.service = e.service ?? null;
    this.hType = hashText(event.type ?? null);
    this.hNamespace = hashText(this.namespace);
    this.hName = hashText(e.name ?? null);
    this.hNode = hashText(this.node);
    this.hPod = hashText(this.pod);
    this.hContainer = hashText(this.container);
    this.hService = hashText(this.service);
    this.attrCount = 0;
    const attributes = event.attributes as Record<string, number> | null | undefined;
    // A value that is not a number reads as missing, as in the catalogue's `measure`.
    if (attributes !== null && attributes !== undefined) {
      for (const key of Object.keys(attributes)) {
        const v = attributes[key];
        this.pushAttr(key, typeof v === 'number' ? v : NaN);
      }
    }
    this.labelCount = 0;
    this.event = event;
    this.borrowed = true;
    this.podText = undefined;
    this.partial = false;
  }

  /**
   * `<namespace>/<pod>` as @tapio/rules podIdentity computes it, or null; made once per event (an
   * event can enter several lanes that count pods).
   */
  get podIdentity(): string | null {
    let text = this.podText;
    if (text === undefined) {
      const own = this.kind === 'pod';
      const pod = own ? this.name : this.pod;
      if (pod === null || pod === undefined || pod === '') {
        text = null;
      } else {
        const ns = this.namespace;
        const slot = podSlot(this.hNamespace, own ? this.hName : this.hPod);
        if (podNamespaces[slot] === ns && podNames[slot] === pod) {
          text = podTexts[slot] ?? null;
        } else {
          text = `${ns ?? ''}/${pod}`;
          podNamespaces[slot] = ns;
          podNames[slot] = pod;
          podTexts[slot] = text;
        }
      }
      this.podText = text;
    }
    return text;
  }

  /** Index in attrVals of the attribute (its last occurrence, as in the decoded map), or -1. */
  attrIndex(key: string): number {
    const keys = this.attrKeys;
    for (let i = this.attrCount - 1; i >= 0; i--) if (keys[i] === key) return i;
    return -1;
  }

  /** A finite attribute value, or NaN (the catalogue's `measure` returns null there). */
  attr(key: string): number {
    const j = this.attrIndex(key);
    const v = j < 0 ? NaN : (this.attrVals[j] as number);
    return Number.isFinite(v) ? v : NaN;
  }

  /** A label's value, or undefined; a key that repeats takes its last value. */
  label(key: string): string | undefined {
    if (this.borrowed) return (this.event as RuleEvent).labels[key];
    const keys = this.labelKeys;
    for (let i = this.labelCount - 1; i >= 0; i--) if (keys[i] === key) return this.labelVals[i];
    return undefined;
  }

  /** The row as a RuleEvent: the caller's own for `fromEvent`; otherwise made once, as the decoder built it. */
  toEvent(): RuleEvent {
    if (this.event !== null) return this.event;
    if (this.partial) throw new Error(`event ${this.id} of type ${this.type} was decoded without its entity fields`);
    let attributes = NO_ATTRIBUTES;
    if (this.attrCount > 0) {
      attributes = {};
      for (let i = 0; i < this.attrCount; i++) attributes[this.attrKeys[i] as string] = this.attrVals[i] as number;
    }
    let labels = NO_LABELS;
    if (this.labelCount > 0) {
      labels = {};
      for (let i = 0; i < this.labelCount; i++) labels[this.labelKeys[i] as string] = this.labelVals[i] as string;
    }
    const entity = new DecodedEntity(
      this.namespace,
      this.kind,
      this.name,
      this.node,
      this.pod,
      this.container,
      this.service,
    );
    const event = new DecodedEvent(this.id, this.timestamp, this.type, entity, attributes, labels);
    this.event = event;
    return event;
  }
}

/**
 * A decoded batch: `rows[i]` is record i when `errors[i]` is null. Reused from batch to batch: the
 * rows are overwritten, so a row must be used (or `toEvent`ed) before the next decode into it.
 */
export class RowBatch {
  readonly rows: EventRow[] = [];
  readonly errors: Array<TapioError | null> = [];
  length = 0;
  bad = 0;

  /** Row i, made on first use. */
  row(i: number): EventRow {
    let row = this.rows[i];
    if (row === undefined) {
      row = new EventRow();
      this.rows.push(row);
    }
    return row;
  }
}
