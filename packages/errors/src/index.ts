/**
 * One error class for the whole pipeline. Callers decide retry versus dead-letter by reading
 * `code` and `retriable` along the `cause` chain, never by matching message text.
 */

/** Every error code, with what it means. The key and the code are always equal. */
export const ERROR_CODES = {
  INVALID_JSON: 'A JSON-lines input line is not valid JSON.',
  INVALID_EVENT:
    'An event does not satisfy the contract in RULES.md (a required field is missing or has the wrong type).',
  BAD_MAGIC_BYTE: 'A record value does not start with the Confluent wire-format magic byte 0.',
  TRUNCATED_RECORD: 'A record value ends before the Avro datum it announces is complete.',
  TRAILING_BYTES: 'A record value has bytes left over after its Avro datum.',
  MALFORMED_RECORD: 'A record value holds bytes that are not a valid Avro datum of its writer schema.',
  UNKNOWN_SCHEMA_ID: 'The schema registry does not know the writer-schema id in a record header.',
  INCOMPATIBLE_SCHEMA: 'A writer schema cannot be resolved into the reader schema.',
  REGISTRY_UNAVAILABLE: 'The schema registry did not answer or answered with a server error.',
  INVALID_CONFIG: 'A configuration file or environment override does not satisfy the config schema.',
  RULE_TIMEOUT: 'A correlation rule took longer than its time budget.',
  RULE_FAILED: 'A correlation rule threw while evaluating an event.',
  KAFKA_UNAVAILABLE: 'The Kafka cluster could not be reached or refused a request.',
  REDIS_UNAVAILABLE: 'Redis could not be reached.',
  NOT_SUPPORTED: 'The requested feature is not available in this build.',
  DELIVERY_FAILED: 'An action sink (webhook, Alertmanager) did not accept a result after all attempts.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Where a failing record came from; every field optional, filled in as far as known. */
export interface RecordContext {
  topic?: string;
  partition?: number;
  offset?: string;
  line?: number;
  field?: string;
  schemaId?: number;
  file?: string;
}

export interface TapioErrorOptions {
  retriable?: boolean;
  cause?: unknown;
  context?: RecordContext;
}

const DEFAULT_RETRIABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'REGISTRY_UNAVAILABLE',
  'KAFKA_UNAVAILABLE',
  'REDIS_UNAVAILABLE',
]);

export class TapioError extends Error {
  override readonly name = 'TapioError';
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly context: RecordContext;

  constructor(code: ErrorCode, message: string, options: TapioErrorOptions = {}) {
    super(message + formatContext(options.context), options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = options.retriable ?? DEFAULT_RETRIABLE.has(code);
    this.context = options.context ?? {};
  }

  /** A copy with more context (say, the topic/partition/offset known only to the consumer). */
  withContext(context: RecordContext): TapioError {
    const merged = { ...this.context, ...context };
    const plain = this.message.slice(0, this.message.length - formatContext(this.context).length);
    return new TapioError(this.code, plain, { retriable: this.retriable, cause: this.cause, context: merged });
  }
}

function formatContext(context: RecordContext | undefined): string {
  if (context === undefined) return '';
  const parts: string[] = [];
  if (context.file !== undefined) parts.push(`file ${context.file}`);
  if (context.line !== undefined) parts.push(`line ${context.line}`);
  if (context.field !== undefined) parts.push(`field ${context.field}`);
  if (context.topic !== undefined) {
    parts.push(`${context.topic}/${context.partition ?? '?'}@${context.offset ?? '?'}`);
  }
  if (context.schemaId !== undefined) parts.push(`schema id ${context.schemaId}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

/** Walks the cause chain and returns the first TapioError, if any. */
export function findTapioError(err: unknown): TapioError | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 16 && current !== undefined && current !== null; depth++) {
    if (current instanceof TapioError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True when some error along the cause chain says a retry may succeed. */
export function isRetriable(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 16 && current !== undefined && current !== null; depth++) {
    if (current instanceof TapioError && current.retriable) return true;
    if ((current as { retriable?: unknown }).retriable === true) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** The stable code of an error for metrics labels and DLQ headers. */
export function errorCode(err: unknown): string {
  return findTapioError(err)?.code ?? 'UNEXPECTED';
}
