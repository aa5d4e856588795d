export type { Entity, Event, Result } from './generated/schemas';
export { EVENT_SCHEMA, RESULT_SCHEMA } from './generated/schemas';
export {
  eventToJsonLine,
  parseEventLine,
  readEventLines,
  resultToJsonLine,
  sourceKey,
  splitLines,
  toEvent,
  type ParsedLine,
  type ReadEventsOptions,
} from './json';
export {
  MAGIC_BYTE,
  RegistryCodec,
  WIRE_HEADER_BYTES,
  WireDecoder,
  encodeWire,
  eventAvroType,
  projectSchema,
  readSchemaId,
  resultAvroType,
  type AvroSchema,
  type RecordSchemaJson,
  type RegistryCodecOptions,
  type SchemaSource,
  type WireDecoderOptions,
} from './codec';
