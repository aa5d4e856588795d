import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { TapioError } from '@tapio/errors';
import { eventToJsonLine, parseEventLine, readEventLines, splitLines } from '@tapio/events';
import { repoPath } from '../../helpers/paths';

function expectInvalid(fn: () => unknown, code: string, line: number, field?: string): TapioError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TapioError, `expected TapioError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.context.line, line);
    assert.match(err.message, new RegExp(`line ${line}`));
    if (field !== undefined) {
      assert.equal(err.context.field, field);
      assert.ok(err.message.includes(`field ${field}`), err.message);
    }
    return err;
  }
  assert.fail('expected an error');
}

test('missing nullable fields read as null and missing maps as empty', () => {
  const e = parseEventLine('{"id":"a","timestamp":5,"type":"pod.restart","entity":{"kind":"pod","name":"p"}}', 1);
  assert.deepEqual(e, {
    id: 'a',
    timestamp: 5,
    source: 'unknown',
    type: 'pod.restart',
    severity: 'info',
    entity: {
      cluster: null,
      namespace: null,
      kind: 'pod',
      name: 'p',
      node: null,
      pod: null,
      container: null,
      service: null,
    },
    attributes: {},
    labels: {},
    message: null,
  });
});

test('each required field is reported with its line and name', () => {
  expectInvalid(
    () => parseEventLine('{"timestamp":1,"type":"x","entity":{"kind":"pod","name":"p"}}', 3),
    'INVALID_EVENT',
    3,
    'id',
  );
  expectInvalid(
    () => parseEventLine('{"id":"a","type":"x","entity":{"kind":"pod","name":"p"}}', 4),
    'INVALID_EVENT',
    4,
    'timestamp',
  );
  expectInvalid(
    () => parseEventLine('{"id":"a","timestamp":1,"entity":{"kind":"pod","name":"p"}}', 5),
    'INVALID_EVENT',
    5,
    'type',
  );
  expectInvalid(
    () => parseEventLine('{"id":"a","timestamp":1,"type":"x","entity":{"name":"p"}}', 6),
    'INVALID_EVENT',
    6,
    'entity.kind',
  );
  expectInvalid(
    () => parseEventLine('{"id":"a","timestamp":1,"type":"x","entity":{"kind":"pod"}}', 7),
    'INVALID_EVENT',
    7,
    'entity.name',
  );
  expectInvalid(() => parseEventLine('{"id":"a","timestamp":1,"type":"x"}', 8), 'INVALID_EVENT', 8, 'entity');
});

test('wrong types are reported with the field path', () => {
  expectInvalid(
    () => parseEventLine('{"id":"a","timestamp":1.5,"type":"x","entity":{"kind":"pod","name":"p"}}', 2),
    'INVALID_EVENT',
    2,
    'timestamp',
  );
  expectInvalid(
    () =>
      parseEventLine(
        '{"id":"a","timestamp":1,"type":"x","entity":{"kind":"pod","name":"p"},"attributes":{"usage_ratio":"0.5"}}',
        9,
      ),
    'INVALID_EVENT',
    9,
    'attributes.usage_ratio',
  );
  expectInvalid(
    () => parseEventLine('{"id":"a","timestamp":1,"type":"x","entity":{"kind":"pod","name":"p","node":7}}', 10),
    'INVALID_EVENT',
    10,
    'entity.node',
  );
  expectInvalid(() => parseEventLine('{"id":', 11), 'INVALID_JSON', 11);
  expectInvalid(() => parseEventLine('[1,2]', 12), 'INVALID_EVENT', 12, '(root)');
});

test('reading a file reports invalid lines by number and keeps every valid one', async () => {
  const file = repoPath('test/fixtures/events/invalid.jsonl');
  const invalid: TapioError[] = [];
  const ids: string[] = [];
  for await (const { event, line } of readEventLines(createReadStream(file), {
    skipInvalid: true,
    onInvalid: (e) => invalid.push(e),
    file: 'invalid.jsonl',
  })) {
    ids.push(`${line}:${event.id}`);
  }
  assert.deepEqual(ids, ['1:ok-1', '7:ok-2']);
  assert.deepEqual(
    invalid.map((e) => [e.context.line, e.code, e.context.field]),
    [
      [3, 'INVALID_EVENT', 'timestamp'],
      [4, 'INVALID_EVENT', 'entity.kind'],
      [5, 'INVALID_JSON', undefined],
      [6, 'INVALID_EVENT', 'attributes.usage_ratio'],
    ],
  );
  assert.match(invalid[0]!.message, /file invalid\.jsonl, line 3, field timestamp/);
});

test('without skipInvalid the first invalid line stops the read', async () => {
  const file = repoPath('test/fixtures/events/invalid.jsonl');
  await assert.rejects(
    async () => {
      for await (const _ of readEventLines(createReadStream(file))) void _;
    },
    (err: unknown) => err instanceof TapioError && err.context.line === 3,
  );
});

test('splitLines handles CRLF, chunk boundaries and a last line without newline', async () => {
  // eslint-disable-next-line @typescript-eslint/require-await
  async function* chunks(): AsyncGenerator<Buffer> {
    yield Buffer.from('a\r\nb');
    yield Buffer.from('c\n\nd\xc3'.slice(0, 5), 'latin1');
    yield Buffer.from([0xa9]); // second byte of "é" split across chunks
  }
  const lines: string[] = [];
  for await (const l of splitLines(chunks())) lines.push(l);
  assert.deepEqual(lines, ['a', 'bc', '', 'dé']);
});

test('eventToJsonLine round-trips through parseEventLine', () => {
  const e = parseEventLine(
    '{"message":"m","labels":{"a":"b"},"attributes":{"x":1.5},"entity":{"name":"c","kind":"container","pod":"p","namespace":"n"},"type":"t","id":"i","timestamp":9}',
  );
  const line = eventToJsonLine(e);
  assert.deepEqual(parseEventLine(line), e);
  assert.ok(line.startsWith('{"id":"i","timestamp":9,'), line);
});
