/**
 * The JSON form of events and results (RULES.md, "Event"): one object per line.
 * Nullable fields are a plain value or null; a missing nullable field reads as null and a
 * missing map as empty. An event without id, timestamp, type, entity.kind or entity.name is invalid.
 */
import { TapioError } from '@tapio/errors';
import type { Entity, Event, Result } from './generated/schemas';

type Json = Record<string, unknown>;

const ENTITY_NULLABLE = ['cluster', 'namespace', 'node', 'pod', 'container', 'service'] as const;

function invalid(message: string, field: string, line: number | undefined): TapioError {
  return new TapioError('INVALID_EVENT', message, { context: { line, field } });
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requiredString(obj: Json, key: string, field: string, line: number | undefined): string {
  const value = obj[key];
  if (value === undefined || value === null) throw invalid(`missing required field ${field}`, field, line);
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid(`${field} must be a non-empty string, got ${describe(value)}`, field, line);
  }
  return value;
}

function optionalString(obj: Json, key: string, field: string, fallback: string, line: number | undefined): string {
  const value = obj[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw invalid(`${field} must be a string, got ${describe(value)}`, field, line);
  return value;
}

function nullableString(obj: Json, key: string, field: string, line: number | undefined): string | null {
  const value = obj[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string')
    throw invalid(`${field} must be a string or null, got ${describe(value)}`, field, line);
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * Validates a parsed JSON value as an event and returns it in canonical form (every field present,
 * in schema order). Throws TapioError INVALID_EVENT naming the field (and the line, when given).
 */
export function toEvent(value: unknown, line?: number): Event {
  if (!isObject(value)) throw invalid(`an event must be a JSON object, got ${describe(value)}`, '(root)', line);
  const id = requiredString(value, 'id', 'id', line);
  const ts = value['timestamp'];
  if (ts === undefined || ts === null) throw invalid('missing required field timestamp', 'timestamp', line);
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts)) {
    throw invalid(`timestamp must be an integer number of epoch milliseconds, got ${describe(ts)}`, 'timestamp', line);
  }
  const type = requiredString(value, 'type', 'type', line);
  const rawEntity = value['entity'];
  if (rawEntity === undefined || rawEntity === null) throw invalid('missing required field entity', 'entity', line);
  if (!isObject(rawEntity)) throw invalid(`entity must be an object, got ${describe(rawEntity)}`, 'entity', line);
  const entity: Entity = {
    cluster: null,
    namespace: null,
    kind: requiredString(rawEntity, 'kind', 'entity.kind', line),
    name: requiredString(rawEntity, 'name', 'entity.name', line),
    node: null,
    pod: null,
    container: null,
    service: null,
  };
  for (const key of ENTITY_NULLABLE) entity[key] = nullableString(rawEntity, key, `entity.${key}`, line);

  const attributes: Record<string, number> = {};
  const rawAttributes = value['attributes'];
  if (rawAttributes !== undefined && rawAttributes !== null) {
    if (!isObject(rawAttributes)) throw invalid(`attributes must be an object of numbers`, 'attributes', line);
    for (const [k, v] of Object.entries(rawAttributes)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw invalid(`attributes.${k} must be a finite number, got ${describe(v)}`, `attributes.${k}`, line);
      }
      attributes[k] = v;
    }
  }
  const labels: Record<string, string> = {};
  const rawLabels = value['labels'];
  if (rawLabels !== undefined && rawLabels !== null) {
    if (!isObject(rawLabels)) throw invalid(`labels must be an object of strings`, 'labels', line);
    for (const [k, v] of Object.entries(rawLabels)) {
      if (typeof v !== 'string') throw invalid(`labels.${k} must be a string, got ${describe(v)}`, `labels.${k}`, line);
      labels[k] = v;
    }
  }
  return {
    id,
    timestamp: ts,
    source: optionalString(value, 'source', 'source', 'unknown', line),
    type,
    severity: optionalString(value, 'severity', 'severity', 'info', line),
    entity,
    attributes,
    labels,
    message: nullableString(value, 'message', 'message', line),
  };
}

/** Parses one line of JSON-lines input. `line` is 1-based and goes into every error. */
export function parseEventLine(text: string, line?: number): Event {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new TapioError('INVALID_JSON', `not valid JSON: ${(cause as Error).message}`, {
      cause,
      context: { line },
    });
  }
  return toEvent(value, line);
}

export interface ParsedLine {
  line: number;
  event: Event;
}

export interface ReadEventsOptions {
  /** Report invalid lines through onInvalid and continue, instead of throwing at the first one. */
  skipInvalid?: boolean;
  onInvalid?: (error: TapioError) => void;
  /** Name of the input, for error context. */
  file?: string;
}

/**
 * Reads JSON-lines events from an async iterable of text chunks (a file stream or stdin).
 * Blank lines are skipped but still counted, so line numbers match the file.
 */
export async function* readEventLines(
  input: AsyncIterable<string | Buffer>,
  options: ReadEventsOptions = {},
): AsyncGenerator<ParsedLine> {
  let line = 0;
  for await (const text of splitLines(input)) {
    line++;
    if (text.trim().length === 0) continue;
    try {
      yield { line, event: parseEventLine(text, line) };
    } catch (err) {
      const error =
        err instanceof TapioError && options.file !== undefined ? err.withContext({ file: options.file }) : err;
      if (!options.skipInvalid || !(error instanceof TapioError)) throw error;
      options.onInvalid?.(error);
    }
  }
}

/** Splits a stream of chunks into lines (\n or \r\n), keeping a trailing line without newline. */
export async function* splitLines(input: AsyncIterable<string | Buffer>): AsyncGenerator<string> {
  let rest = '';
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of input) {
    rest += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = rest.indexOf('\n'); nl !== -1; nl = rest.indexOf('\n', start)) {
      const end = nl > start && rest.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      yield rest.slice(start, end);
      start = nl + 1;
    }
    rest = rest.slice(start);
  }
  rest += decoder.decode();
  if (rest.length > 0) yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

/** One event as a JSON line in schema field order (stable output for tools and fixtures). */
export function eventToJsonLine(event: Event): string {
  const e = event.entity;
  return JSON.stringify({
    id: event.id,
    timestamp: event.timestamp,
    source: event.source,
    type: event.type,
    severity: event.severity,
    entity: {
      cluster: e.cluster,
      namespace: e.namespace,
      kind: e.kind,
      name: e.name,
      node: e.node,
      pod: e.pod,
      container: e.container,
      service: e.service,
    },
    attributes: event.attributes,
    labels: event.labels,
    message: event.message,
  });
}

/** One result as a JSON line in schema field order, so replays are byte-identical run to run. */
export function resultToJsonLine(result: Result): string {
  return JSON.stringify({
    id: result.id,
    ruleId: result.ruleId,
    category: result.category,
    entityKey: result.entityKey,
    triggeredAt: result.triggeredAt,
    triggerEventId: result.triggerEventId,
    severity: result.severity,
    confidence: result.confidence,
    evidence: result.evidence,
    engine: result.engine,
  });
}

/**
 * The Kafka key of an event on tapio.events: the entity that emitted it (ARCHITECTURE.md: "events
 * arrive keyed by the pod that emitted them"). Containers are keyed by their pod, so one pod's
 * events stay in order on one partition.
 */
export function sourceKey(event: Event): string {
  const e = event.entity;
  const ns = e.namespace ?? '';
  if (e.kind === 'container') return `pod/${ns}/${e.pod ?? e.name}`;
  if (e.kind === 'pod') return `pod/${ns}/${e.name}`;
  if (e.kind === 'node') return `node/${e.name}`;
  return `${e.kind}/${ns}/${e.name}`;
}
