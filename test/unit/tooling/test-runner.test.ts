import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoPath } from '../../helpers/paths';

const run = promisify(execFile);

test('scripts/run-tests.sh loads the leak guard and does not force-exit', () => {
  const script = readFileSync(repoPath('scripts/run-tests.sh'), 'utf8');
  assert.match(script, /node --test --require \.\/scripts\/test-child-preload\.cjs/);
  assert.doesNotMatch(script, /^[^#]*--test-force-exit/m);
});

// A file that leaks a timer would hold the run open forever without the guard; with it the file fails,
// its open handles are named, and every other file's results and the summary are still reported.
test('the leak guard fails a file whose process is held open, and the run still reports everything', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapio-leak-guard-'));
  try {
    writeFileSync(
      join(dir, 'leaky.test.js'),
      "require('node:test').test('leaks', () => { setInterval(() => {}, 1e6); });\n",
    );
    writeFileSync(
      join(dir, 'clean.test.js'),
      "for (let i = 0; i < 50; i++) require('node:test').test('t' + i, () => {});\n",
    );
    const child = run(
      process.execPath,
      [
        '--test',
        '--require',
        repoPath('scripts/test-child-preload.cjs'),
        '--test-reporter=spec',
        join(dir, 'leaky.test.js'),
        join(dir, 'clean.test.js'),
      ],
      // This file runs under node --test itself: without its marker the nested run is a runner of its own.
      {
        env: { ...process.env, NODE_TEST_CONTEXT: undefined, TAPIO_TEST_LEAK_GRACE_MS: '300' },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 120_000,
      },
    );
    const failure = await child.then(
      () => assert.fail('the run passed although a file leaked a timer'),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.equal(failure.code, 1);
    const output = failure.stdout + failure.stderr;
    assert.match(output, /test-leak: .*leaky\.test\.js still had open handles 300 ms after its last test: .*Timeout/);
    assert.match(failure.stdout, /^ℹ tests 52$/m);
    assert.match(failure.stdout, /^ℹ pass 51$/m);
    assert.match(failure.stdout, /^ℹ fail 1$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
