import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoPath } from '../../helpers/paths';

const run = promisify(execFile);

// Files whose tests finish fast and leave a timer behind (as a leaked kafkajs socket does), with long
// names so that the reports outrun the pipe to the runner: without the preload, node 20 lost a few of
// these 800 verdicts on most runs here (and printed the smaller count with exit code 0).
const FILES = 8;
const SUITES = 5;
const TESTS = 20;
const FIXTURE = `
const { describe, test } = require('node:test');
setInterval(() => {}, 100000);
for (let s = 0; s < ${SUITES}; s++) {
  describe('suite ' + s, () => {
    for (let i = 0; i < ${TESTS}; i++) test('t' + i + ' ' + 'x'.repeat(3000), () => {});
  });
}
`;

test('scripts/run-tests.sh runs node --test with the preload that keeps force-exited results', () => {
  const script = readFileSync(repoPath('scripts/run-tests.sh'), 'utf8');
  assert.match(script, /node --test --require \.\/scripts\/test-child-preload\.cjs --test-force-exit/);
});

test('with --test-force-exit and the preload, the summary counts every test of every file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapio-force-exit-'));
  try {
    const files: string[] = [];
    for (let f = 0; f < FILES; f++) {
      const file = join(dir, `f${f}.test.js`);
      writeFileSync(file, FIXTURE);
      files.push(file);
    }
    const { stdout } = await run(
      process.execPath,
      [
        '--test',
        '--require',
        repoPath('scripts/test-child-preload.cjs'),
        '--test-force-exit',
        '--test-concurrency=2',
        '--test-reporter=spec',
        ...files,
      ],
      // This file runs under node --test itself: without its marker the nested run is a runner of its own.
      { maxBuffer: 256 * 1024 * 1024, env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
    );
    const count = /^ℹ tests (\d+)$/m.exec(stdout);
    assert.ok(count, 'no summary line');
    assert.equal(Number(count[1]), FILES * SUITES * TESTS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
