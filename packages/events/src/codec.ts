/**
 * Avro in the Confluent wire format.
 *
 *   value := magic:u8(=0) schemaId:i32be datum:avro(writer schema #schemaId)
 *
 * Two decoders: `RegistryCodec.decode` goes through @kafkajs/confluent-schema-registry (V1's
 * path, one promise per record), `WireDecoder.decode` reads synchronously from the message buffer
 * at offset 5 with a resolver cached per writer-schema id and an optional projection (V2 and the
 * router). Every failure is a TapioError with a stable code; nothing else escapes.
 */
import avro from 'avsc';
import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { TapioError } from '@tapio/errors';
import type { RecordContext } from '@tapio/errors';
import { EVENT_SCHEMA, RESULT_SCHEMA } from './generated/schemas';

export const MAGIC_BYTE = 0;
export const WIRE_HEADER_BYTES = 5;

export type AvroSchema = avro.Schema;

/** A record schema as JSON, the shape of schemas/*.avsc. */
export interface RecordSchemaJson {
  type: 'record';
  name: string;
  namespace?: string;
  fields: ReadonlyArray<{ name: string; type: unknown; default?: unknown; doc?: string }>;
  [key: string]: unknown;
}

export const eventAvroType = avro.Type.forSchema(EVENT_SCHEMA as unknown as avro.Schema);
export const resultAvroType = avro.Type.forSchema(RESULT_SCHEMA as unknown as avro.Schema);

/** Wire-format bytes of one value. */
export function encodeWire(schemaId: number, type: avro.Type, value: unknown): Buffer {
  const body = type.toBuffer(value);
  const out = Buffer.allocUnsafe(WIRE_HEADER_BYTES + body.length);
  out.writeUInt8(MAGIC_BYTE, 0);
  out.writeInt32BE(schemaId, 1);
  body.copy(out, WIRE_HEADER_BYTES);
  return out;
}

/** Checks the 5-byte header and returns the writer-schema id. */
export function readSchemaId(buf: Buffer | null, context?: RecordContext): number {
  if (buf === null || buf.length === 0) {
    throw new TapioError('TRUNCATED_RECORD', 'record value is empty', { context });
  }
  if (buf[0] !== MAGIC_BYTE) {
    throw new TapioError('BAD_MAGIC_BYTE', `record value starts with byte ${buf[0]}, expected magic byte 0`, {
      context,
    });
  }
  if (buf.length < WIRE_HEADER_BYTES) {
    throw new TapioError('TRUNCATED_RECORD', `record value has ${buf.length} bytes, shorter than the 5-byte header`, {
      context,
    });
  }
  return buf.readInt32BE(1);
}

/**
 * A reader schema that keeps only the named fields of a record schema; nested record fields are
 * named with dots (`entity.kind`). Naming a record field alone keeps all of it. Avro schema
 * resolution then skips the other fields while decoding, without materialising them.
 */
export function projectSchema(schema: RecordSchemaJson, fields: readonly string[]): RecordSchemaJson {
  const wanted = new Map<string, string[]>();
  for (const path of fields) {
    const dot = path.indexOf('.');
    const head = dot === -1 ? path : path.slice(0, dot);
    const list = wanted.get(head) ?? [];
    if (dot !== -1) list.push(path.slice(dot + 1));
    else list.push('*');
    wanted.set(head, list);
  }
  const kept = [];
  for (const field of schema.fields) {
    const sub = wanted.get(field.name);
    if (sub === undefined) continue;
    wanted.delete(field.name);
    const type = field.type as RecordSchemaJson;
    if (sub.includes('*') || typeof type !== 'object' || type === null || type.type !== 'record') {
      kept.push(field);
    } else {
      kept.push({ ...field, type: projectSchema(type, sub) });
    }
  }
  if (wanted.size > 0) {
    throw new TapioError('INCOMPATIBLE_SCHEMA', `projection names unknown fields: ${[...wanted.keys()].join(', ')}`);
  }
  return { ...schema, fields: kept };
}

/** Where writer schemas come from, by id. */
export interface SchemaSource {
  /** Resolves with the Avro schema JSON; rejects with a TapioError (UNKNOWN_SCHEMA_ID or REGISTRY_UNAVAILABLE). */
  fetchSchema(id: number): Promise<AvroSchema>;
}

interface CachedReader {
  readonly type: avro.Type;
  readonly resolver: avro.Resolver | undefined;
}

interface NegativeEntry {
  readonly error: TapioError;
  readonly until: number;
}

export interface WireDecoderOptions {
  /** Keep only these fields (see projectSchema). Default: the whole reader schema. */
  projection?: readonly string[];
  /** How long an id the registry does not know is answered from cache before asking again. */
  unknownIdRetryMs?: number;
  now?: () => number;
}

/**
 * Synchronous decoder for one reader schema. Unknown writer-schema ids are fetched once, with
 * `prepare` (batch) or `ensure` (one id), and cached with their resolver; `decode` never awaits.
 */
export class WireDecoder<T = unknown> {
  readonly readerType: avro.Type;
  private readonly readers = new Map<number, CachedReader>();
  private readonly unknown = new Map<number, NegativeEntry>();
  /** The last transient failure (registry outage) per id, so decode reports it as retriable. */
  private readonly transient = new Map<number, TapioError>();
  private readonly inflight = new Map<number, Promise<void>>();
  private readonly unknownIdRetryMs: number;
  private readonly now: () => number;
  fetches = 0;

  constructor(
    private readonly source: SchemaSource,
    readerSchema: RecordSchemaJson,
    options: WireDecoderOptions = {},
  ) {
    const schema = options.projection ? projectSchema(readerSchema, options.projection) : readerSchema;
    this.readerType = avro.Type.forSchema(schema as unknown as avro.Schema);
    this.unknownIdRetryMs = options.unknownIdRetryMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  has(schemaId: number): boolean {
    return this.readers.has(schemaId);
  }

  /** Registers a writer schema known in advance (no fetch). */
  addWriterSchema(schemaId: number, writerSchema: AvroSchema): void {
    this.readers.set(schemaId, this.buildReader(schemaId, writerSchema));
  }

  /** Fetches, once each, the writer schemas of a batch's records. Never rejects for bad records. */
  async prepare(values: Iterable<Buffer | null>): Promise<void> {
    const ids = new Set<number>();
    for (const value of values) {
      if (value === null || value.length < WIRE_HEADER_BYTES || value[0] !== MAGIC_BYTE) continue;
      const id = value.readInt32BE(1);
      if (!this.readers.has(id)) ids.add(id);
    }
    const pending: Promise<void>[] = [];
    for (const id of ids) pending.push(this.ensure(id).catch(() => undefined));
    await Promise.all(pending);
  }

  /** Makes sure a writer schema is cached; rejects with UNKNOWN_SCHEMA_ID or REGISTRY_UNAVAILABLE. */
  ensure(schemaId: number): Promise<void> {
    if (this.readers.has(schemaId)) return Promise.resolve();
    const negative = this.unknown.get(schemaId);
    if (negative !== undefined && negative.until > this.now()) return Promise.reject(negative.error);
    let running = this.inflight.get(schemaId);
    if (running === undefined) {
      this.fetches++;
      running = this.source
        .fetchSchema(schemaId)
        .then(
          (schema) => {
            this.readers.set(schemaId, this.buildReader(schemaId, schema));
            this.unknown.delete(schemaId);
            this.transient.delete(schemaId);
          },
          (err: unknown) => {
            const error =
              err instanceof TapioError
                ? err
                : new TapioError('REGISTRY_UNAVAILABLE', `fetching schema id ${schemaId} failed`, { cause: err });
            // Only a definite "unknown" is remembered; an outage is retried on the next call.
            if (error.code === 'UNKNOWN_SCHEMA_ID') {
              this.unknown.set(schemaId, { error, until: this.now() + this.unknownIdRetryMs });
            } else {
              this.transient.set(schemaId, error);
            }
            throw error;
          },
        )
        .finally(() => this.inflight.delete(schemaId));
      this.inflight.set(schemaId, running);
    }
    return running;
  }

  /** Decodes one wire-format value in place (no copy of the payload). */
  decode(buf: Buffer | null, context?: RecordContext): T {
    const schemaId = readSchemaId(buf, context);
    const value = buf as Buffer;
    const reader = this.readers.get(schemaId);
    if (reader === undefined) {
      const known = this.unknown.get(schemaId)?.error ?? this.transient.get(schemaId);
      throw (
        known?.withContext({ ...context, schemaId }) ??
        new TapioError('UNKNOWN_SCHEMA_ID', `writer schema ${schemaId} is not loaded; call prepare() first`, {
          context: { ...context, schemaId },
        })
      );
    }
    let result: { value: unknown; offset: number };
    try {
      result = this.readerType.decode(value, WIRE_HEADER_BYTES, reader.resolver);
    } catch (cause) {
      throw new TapioError('MALFORMED_RECORD', `record value is not a valid Avro datum`, {
        cause,
        context: { ...context, schemaId },
      });
    }
    if (result.offset < 0) {
      throw new TapioError('TRUNCATED_RECORD', `record value ends inside its Avro datum (${value.length} bytes)`, {
        context: { ...context, schemaId },
      });
    }
    if (result.offset !== value.length) {
      throw new TapioError(
        'TRAILING_BYTES',
        `record value has ${value.length - result.offset} bytes after its Avro datum`,
        { context: { ...context, schemaId } },
      );
    }
    return result.value as T;
  }

  private buildReader(schemaId: number, writerSchema: AvroSchema): CachedReader {
    const writerType = avro.Type.forSchema(writerSchema);
    if (writerType.equals(this.readerType)) return { type: writerType, resolver: undefined };
    try {
      return { type: writerType, resolver: this.readerType.createResolver(writerType) };
    } catch (cause) {
      throw new TapioError(
        'INCOMPATIBLE_SCHEMA',
        `writer schema ${schemaId} cannot be read as ${this.readerType.name}`,
        {
          cause,
          context: { schemaId },
        },
      );
    }
  }
}

export interface RegistryCodecOptions {
  /** Confluent-compatible API base, e.g. http://127.0.0.1:8081/apis/ccompat/v7 */
  url: string;
  /** Subject compatibility; the registry client checks it on every register, so it is fixed here. */
  compatibility?: keyof typeof COMPATIBILITY;
  retries?: number;
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * Maps a registry client failure to our codes by HTTP status (never by message text). The client's
 * HTTP layer reports a refused or reset connection as status 400 with no response behind it; the
 * registry itself answers 404 for unknown ids and 409/422 for incompatible or invalid schemas. So in
 * a GET by id anything but 404 means the registry was not usable, and in a register only 409/422
 * blame the schema.
 */
function registryError(err: unknown, what: string, op: 'get' | 'register', context?: RecordContext): TapioError {
  if (err instanceof TapioError) return err;
  const status = statusOf(err);
  if (op === 'get' && status === 404) {
    return new TapioError('UNKNOWN_SCHEMA_ID', `${what}: not found in the registry`, { cause: err, context });
  }
  if (op === 'register' && (status === 409 || status === 422)) {
    return new TapioError('INCOMPATIBLE_SCHEMA', `${what}: registry refused the schema (${status})`, {
      cause: err,
      context,
    });
  }
  if (err instanceof Error && err.name.startsWith('ConfluentSchemaRegistry')) {
    return new TapioError('INCOMPATIBLE_SCHEMA', `${what}: ${err.message}`, { cause: err, context });
  }
  return new TapioError('REGISTRY_UNAVAILABLE', `${what}: registry unavailable${status ? ` (status ${status})` : ''}`, {
    cause: err,
    context,
  });
}

/**
 * Attempts after the first when a register may have met another client's first registration of the
 * same subject (50 ms, doubling: ~1.5 s in all). Two races, both seen with Apicurio 3.0.9 when the
 * services start together on a fresh registry (npm start's correlator-v2 exited 1; the test
 * "services registering a new subject at the same moment" reproduces both):
 * - the client registers a new subject's schema first and sets the subject's compatibility after;
 *   a client asking in between reads the registry's global level and throws "Compatibility does not
 *   match the configuration";
 * - two creates of the same new subject at once: the registry answers one of them 409.
 * A schema that is really incompatible also gets 409; it fails the same way, ~1.5 s later.
 */
const FIRST_REGISTRATION_RETRIES = 5;

function mayBeRegistrationRace(err: unknown): boolean {
  if (err instanceof Error && err.name === 'ConfluentSchemaRegistryCompatibilityError') return true;
  return statusOf(err) === 409;
}

/**
 * The schema registry, through @kafkajs/confluent-schema-registry. Registers schemas under
 * `<topic>-value`, encodes to the wire format, decodes (V1's path) and serves writer schemas to
 * WireDecoder (shared cache: one fetch per id).
 */
export class RegistryCodec implements SchemaSource {
  readonly registry: SchemaRegistry;
  private readonly compatibility: keyof typeof COMPATIBILITY;
  private readonly types = new Map<number, avro.Type>();

  constructor(options: RegistryCodecOptions) {
    this.registry = new SchemaRegistry({
      host: options.url,
      retry: { retries: options.retries ?? 2 },
    });
    this.compatibility = options.compatibility ?? 'BACKWARD';
  }

  /**
   * Registers (or finds) a schema under `<topic>-value` and returns its id. Idempotent, also when
   * several services register a new subject at the same moment (see FIRST_REGISTRATION_RETRIES).
   */
  async register(topic: string, schema: AvroSchema | RecordSchemaJson): Promise<number> {
    const subject = `${topic}-value`;
    for (let attempt = 0; ; attempt++) {
      try {
        const { id } = await this.registry.register(
          { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
          { subject, compatibility: COMPATIBILITY[this.compatibility] },
        );
        this.types.set(id, avro.Type.forSchema(schema as AvroSchema));
        return id;
      } catch (err) {
        if (attempt < FIRST_REGISTRATION_RETRIES && mayBeRegistrationRace(err)) {
          await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
          continue;
        }
        throw registryError(err, `registering ${subject}`, 'register');
      }
    }
  }

  async registerEvent(topic: string): Promise<number> {
    return this.register(topic, EVENT_SCHEMA);
  }

  async registerResult(topic: string): Promise<number> {
    return this.register(topic, RESULT_SCHEMA);
  }

  /** Encodes with a schema registered through this codec (synchronous after register). */
  encode(schemaId: number, value: unknown): Buffer {
    const type = this.types.get(schemaId);
    if (type === undefined) {
      throw new TapioError('UNKNOWN_SCHEMA_ID', `schema ${schemaId} was not registered through this codec`, {
        context: { schemaId },
      });
    }
    return encodeWire(schemaId, type, value);
  }

  async fetchSchema(id: number): Promise<AvroSchema> {
    try {
      const type = (await this.registry.getSchema(id)) as unknown as avro.Type;
      return type.schema();
    } catch (err) {
      throw registryError(err, `fetching schema id ${id}`, 'get', { schemaId: id });
    }
  }

  /** V1's path: one promise per record through the registry client. Errors carry stable codes. */
  async decode<T = unknown>(buf: Buffer | null, context?: RecordContext): Promise<T> {
    const schemaId = readSchemaId(buf, context);
    const value = buf as Buffer;
    try {
      return (await this.registry.decode(value)) as T;
    } catch (err) {
      if (statusOf(err) !== undefined || !(err instanceof Error) || err.name.startsWith('ConfluentSchemaRegistry')) {
        throw registryError(err, `decoding with schema id ${schemaId}`, 'get', { ...context, schemaId });
      }
      // avsc failed on the datum: classify from the bytes with the (now cached) writer type.
      throw await this.classifyDatumError(value, schemaId, err, context);
    }
  }

  private async classifyDatumError(
    value: Buffer,
    schemaId: number,
    cause: unknown,
    context?: RecordContext,
  ): Promise<TapioError> {
    const ctx = { ...context, schemaId };
    try {
      const writer = (await this.registry.getSchema(schemaId)) as unknown as avro.Type;
      const { offset } = writer.decode(value, WIRE_HEADER_BYTES);
      if (offset < 0) {
        return new TapioError('TRUNCATED_RECORD', `record value ends inside its Avro datum (${value.length} bytes)`, {
          cause,
          context: ctx,
        });
      }
      if (offset !== value.length) {
        return new TapioError(
          'TRAILING_BYTES',
          `record value has ${value.length - offset} bytes after its Avro datum`,
          {
            cause,
            context: ctx,
          },
        );
      }
    } catch {
      // fall through: the datum itself is malformed
    }
    return new TapioError('MALFORMED_RECORD', 'record value is not a valid Avro datum', { cause, context: ctx });
  }
}
