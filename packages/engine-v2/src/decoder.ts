import { TapioError } from '@tapio/errors';
import type { RecordContext } from '@tapio/errors';
import { EVENT_SCHEMA, WireDecoder, readSchemaId } from '@tapio/events';
import type { AvroSchema, SchemaSource } from '@tapio/events';
import { ID_SPAN } from './row';
import type { EventRow, RowBatch } from './row';
import type { RuleEvent } from './types';
import { EventWireReader, NEED_ALL, isEventLayout } from './wire';

/**
 * The fields of tapio.Event that the catalogue reads, for a projected decode:
 * - id, timestamp, type: every rule (trigger, window, evidence, inputs by type);
 * - entity.namespace/kind/name/node/pod/container/service: scope keys (RULES.md "Scope keys"),
 *   kind filters (R5, R6) and distinct pods (R1, R5, R8, R9);
 * - attributes: usage_bytes, limit_bytes, throttle_ratio, usage_ratio, inode_ratio (R2-R6, R10);
 * - labels: destination (R9's service key).
 * Nothing reads source, severity, message or entity.cluster; Avro resolution skips their bytes.
 */
export const RULE_EVENT_FIELDS: readonly string[] = Object.freeze([
  'id',
  'timestamp',
  'type',
  'entity.namespace',
  'entity.kind',
  'entity.name',
  'entity.node',
  'entity.pod',
  'entity.container',
  'entity.service',
  'attributes',
  'labels',
]);

/** Buffer's latin1Slice (toString('latin1') without its argument checks). */
type TextBuffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Bytes of one batch's id text (ID_SPAN's bound on starts). */
const MAX_ID_TEXT = 2 ** 28;

/** Where one record of a batch came from, for error context. */
export interface BatchContext {
  topic?: string;
  partition?: number;
  /** Offsets of the batch's records, in order (strings, as kafkajs gives them). */
  offsets?: ArrayLike<string>;
}

/**
 * V2's decoder: wire-format values decoded synchronously at offset 5 into `RuleEvent`s (only the
 * fields of RULE_EVENT_FIELDS). A writer schema with tapio.Event's own layout is read by the
 * hand-written EventWireReader; any other writer schema goes through avsc with a resolver cached per
 * writer-schema id (WireDecoder). Both give the same events and the same error codes. Call `prepare`
 * once per batch so that unknown schema ids are fetched before decoding. Bad records throw TapioError
 * (BAD_MAGIC_BYTE, TRUNCATED_RECORD, TRAILING_BYTES, MALFORMED_RECORD, UNKNOWN_SCHEMA_ID).
 */
export class RuleEventDecoder {
  readonly wire: WireDecoder<RuleEvent>;
  private readonly reader: EventWireReader;
  /** Writer-schema id -> read by EventWireReader (true) or by avsc (false). */
  private readonly direct: Map<number, boolean>;
  /** See fullTypesOnly and projectTypes. */
  private needs: ReadonlyMap<string, number> | null = null;
  /** The id bytes of the batch being decoded (see copyId); grown as needed, reused. */
  private idScratch = Buffer.allocUnsafeSlow(16_384) as TextBuffer;

  constructor(source: SchemaSource, options: { unknownIdRetryMs?: number } = {}) {
    this.reader = new EventWireReader();
    this.direct = new Map();
    // Sees each fetched writer schema (once per id, never per record) to pick the reader for it.
    const watching: SchemaSource = {
      fetchSchema: (id) =>
        source.fetchSchema(id).then((schema) => {
          this.direct.set(id, isEventLayout(schema));
          return schema;
        }),
    };
    this.wire = new WireDecoder<RuleEvent>(watching, EVENT_SCHEMA, {
      ...options,
      projection: RULE_EVENT_FIELDS,
    });
  }

  /** Registers a writer schema known in advance (benchmarks, tests, a pinned producer schema). */
  addWriterSchema(schemaId: number, writerSchema: AvroSchema): void {
    this.wire.addWriterSchema(schemaId, writerSchema);
    this.direct.set(schemaId, isEventLayout(writerSchema));
  }

  /**
   * From now on, decodeRows gives every field only to rows of these types (V2Engine.inputTypes: the
   * types some rule reads); a record of another type is still read and checked in full, with the
   * same errors, but its row keeps only id, timestamp, type, kind and name (EventRow.partial), which
   * is all the engine reads of it. Null: every row in full (the default). Only records read by the
   * hand-written reader are affected. Why: ~27 % of bench/engine.ts's stream has types no rule reads,
   * and interning their entity fields and map keys was most of their decode time.
   */
  fullTypesOnly(types: Iterable<string> | null): void {
    this.needs = types === null ? null : new Map([...types].map((t) => [t, NEED_ALL]));
  }

  /**
   * As fullTypesOnly, and within those types only the optional fields their rules read
   * (V2Engine.fieldNeeds: node, service, labels as NEED_* bits); the others are read and checked
   * but left null/empty in the row. Only the id and timestamp of a row go into a result, so results
   * are the same. Why: no rule reads node, service or labels of memory.usage, a third of
   * bench/engine.ts's stream, and interning strings is most of the decoder's time.
   */
  projectTypes(needs: ReadonlyMap<string, number> | null): void {
    this.needs = needs === null ? null : new Map(needs);
  }

  /** Whether records of this writer-schema id are read by the hand-written reader (tests, metrics). */
  readsDirectly(schemaId: number): boolean {
    return this.direct.get(schemaId) === true;
  }

  /** Fetches, once each, the writer schemas a batch needs; never rejects for bad records. */
  prepare(values: Iterable<Buffer | null>): Promise<void> {
    return this.wire.prepare(values);
  }

  /** One value; throws TapioError for a bad record. */
  decode(value: Buffer | null, context?: RecordContext): RuleEvent {
    const schemaId = readSchemaId(value, context);
    if (this.direct.get(schemaId) === true) return this.reader.decode(value as Buffer, schemaId, context);
    return this.wire.decode(value, context);
  }

  /**
   * Decodes a batch into reused rows (see EventRow): `batch.rows[i]` is record i where
   * `batch.errors[i]` is null, its TapioError otherwise. Sets `batch.length` and `batch.bad`, and
   * returns `bad`. The same records and errors as `decodeBatch`, without an object per event.
   */
  decodeRows(values: ArrayLike<Buffer | null>, batch: RowBatch, context: BatchContext = {}): number {
    let bad = 0;
    const n = values.length;
    const errors = batch.errors;
    let idBytes = 0;
    for (let i = 0; i < n; i++) {
      const row = batch.row(i);
      const value = values[i] ?? null;
      try {
        const schemaId = readSchemaId(value, undefined);
        if (this.direct.get(schemaId) === true) {
          this.reader.decodeInto(value as Buffer, schemaId, undefined, row, this.needs);
          if (!row.partial) idBytes = this.copyId(row, idBytes);
        } else row.fromEvent(this.wire.decode(value));
        errors[i] = null;
      } catch (err) {
        errors[i] = withRecordContext(err, context, i);
        bad += 1;
      }
    }
    if (idBytes > 0) {
      // One string for the batch's ids, which lanes keep instead of a string per event (see copyId).
      const text = this.idScratch.latin1Slice(0, idBytes);
      for (let i = 0; i < n; i++) {
        const row = batch.rows[i] as EventRow;
        if (errors[i] === null && row.idSpan >= 0) row.idBlob = text;
      }
    }
    errors.length = n;
    batch.length = n;
    batch.bad = bad;
    return bad;
  }

  /**
   * Appends a decoded row's id bytes to the batch's id text at `at` and marks the row with its span
   * (EventRow.idSpan); returns the new end. An id with a non-ASCII byte is left out (its row makes its
   * own string, as before). Why: a lane keeps an id per stored event, and making no id string at all
   * made V2 1.26x faster on bench/engine.ts's stream (a probe: the slice, and the garbage collector
   * copying and promoting those strings while they live through their windows); one string per batch
   * costs one slice, and lanes keep its slot in the engine's text table (LaneStore) and the span.
   * Memory: a batch's text lives as long as its longest-kept id, so what is held is at most the ids of the records that arrived
   * within the longest horizon plus the allowed lateness: more than separate strings where ids of
   * short windows share a batch with ids of long ones, but without a header per string (retained
   * after bench/engine.ts's run: 26.1 MiB, 27.4 MiB with a string per id).
   */
  private copyId(row: EventRow, at: number): number {
    const src = row.buf as Buffer;
    const from = row.idStart;
    const len = row.idEnd - from;
    if (len >= ID_SPAN || at + len > MAX_ID_TEXT) return at;
    let dst = this.idScratch;
    if (at + len > dst.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(dst.length * 2, at + len)) as TextBuffer;
      dst.copy(grown, 0, 0, at);
      this.idScratch = dst = grown;
    }
    let bits = 0;
    for (let k = 0; k < len; k++) {
      const b = src[from + k] as number;
      bits |= b;
      dst[at + k] = b;
    }
    if (bits >= 0x80) return at;
    row.idSpan = at * ID_SPAN + len;
    return at + len;
  }

  /**
   * Decodes a batch into `events` (same index; null where the record is bad) and `errors` (the
   * TapioError of each bad record, null elsewhere). Returns the number of bad records. The arrays
   * are overwritten from index 0 and truncated to the batch's length, so a consumer can reuse them.
   */
  decodeBatch(
    values: ArrayLike<Buffer | null>,
    events: Array<RuleEvent | null>,
    errors: Array<TapioError | null>,
    context: BatchContext = {},
  ): number {
    let bad = 0;
    const n = values.length;
    for (let i = 0; i < n; i++) {
      try {
        events[i] = this.decode(values[i] ?? null);
        errors[i] = null;
      } catch (err) {
        events[i] = null;
        errors[i] = withRecordContext(err, context, i);
        bad += 1;
      }
    }
    events.length = n;
    errors.length = n;
    return bad;
  }
}

/** The error with the record's topic/partition/offset (only built for bad records). */
function withRecordContext(err: unknown, context: BatchContext, index: number): TapioError {
  const ctx: RecordContext = {};
  if (context.topic !== undefined) ctx.topic = context.topic;
  if (context.partition !== undefined) ctx.partition = context.partition;
  const offset = context.offsets?.[index];
  if (offset !== undefined) ctx.offset = offset;
  if (err instanceof TapioError) return err.withContext(ctx);
  return new TapioError('MALFORMED_RECORD', 'record value could not be decoded', { cause: err, context: ctx });
}
