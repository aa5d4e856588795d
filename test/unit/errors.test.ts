import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, TapioError, errorCode, findTapioError, isRetriable } from '@tapio/errors';
import { repoPath } from '../helpers/paths';

test('every error code equals its key, is unique, and is documented in the README', () => {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const seen = new Set<string>();
  for (const [key, description] of Object.entries(ERROR_CODES)) {
    const err = new TapioError(key as keyof typeof ERROR_CODES, 'x');
    assert.equal(err.code, key);
    assert.ok(!seen.has(key), `duplicate code ${key}`);
    seen.add(key);
    assert.ok(description.length > 10, `code ${key} needs a description`);
    assert.ok(readme.includes(`\`${key}\``), `README.md must document error code ${key}`);
  }
});

test('context is rendered into the message and kept on the error', () => {
  const err = new TapioError('INVALID_EVENT', 'missing id', { context: { line: 7, field: 'id' } });
  assert.equal(err.message, 'missing id (line 7, field id)');
  const placed = err.withContext({ topic: 'tapio.events', partition: 3, offset: '42' });
  assert.equal(placed.message, 'missing id (line 7, field id, tapio.events/3@42)');
  assert.equal(placed.context.offset, '42');
  assert.equal(placed.code, 'INVALID_EVENT');
});

test('retriable and code are read along the cause chain', () => {
  const inner = new TapioError('REGISTRY_UNAVAILABLE', 'registry down');
  const outer = new Error('decode failed', { cause: inner });
  assert.equal(isRetriable(outer), true);
  assert.equal(findTapioError(outer), inner);
  assert.equal(errorCode(outer), 'REGISTRY_UNAVAILABLE');
  assert.equal(isRetriable(new TapioError('BAD_MAGIC_BYTE', 'bad')), false);
  assert.equal(errorCode(new Error('plain')), 'UNEXPECTED');
});
