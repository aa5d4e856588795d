import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { DEFAULTS, loadConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import { repoPath } from '../../helpers/paths';

function tempFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tapio-config-'));
  const file = join(dir, 'tapio.yaml');
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): TapioError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TapioError);
    assert.equal(err.code, 'INVALID_CONFIG');
    return err;
  }
  assert.fail('expected INVALID_CONFIG');
}

test('config/defaults.yaml documents exactly the built-in defaults', () => {
  const documented: unknown = parse(readFileSync(repoPath('config/defaults.yaml'), 'utf8'));
  assert.deepEqual(documented, DEFAULTS);
});

test('defaults validate and are frozen; durations become milliseconds', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.kafka.brokers[0], '127.0.0.1:9092');
  assert.equal(config.correlation.hybrid.rollback.latency_threshold, 100);
  assert.ok(Object.isFrozen(config.kafka));
  assert.throws(() => {
    (config.kafka as { clientId: string }).clientId = 'x';
  }, TypeError);
});

test('file then environment override the defaults', () => {
  const file = tempFile('topics:\n  eventPartitions: 4\ncorrelation:\n  hybrid:\n    v2_percentage: 30\n');
  const config = loadConfig({
    file,
    env: { TAPIO_KAFKA__BROKERS: 'a:1, b:2', TAPIO_CORRELATION__HYBRID__V2_PERCENTAGE: '55', TAPIO_STACK_DIR: '/x' },
  });
  assert.equal(config.topics.eventPartitions, 4);
  assert.deepEqual(config.kafka.brokers, ['a:1', 'b:2']);
  assert.equal(config.correlation.hybrid.v2_percentage, 55);
  const viaEnvName = loadConfig({ env: { TAPIO_CONFIG: file } });
  assert.equal(viaEnvName.topics.eventPartitions, 4);
});

test('a bad value names the key, the value and what was expected', () => {
  const file = tempFile('correlation:\n  hybrid:\n    v2_percentage: 150\n');
  const err = configError(() => loadConfig({ file, env: {} }));
  assert.equal(err.context.field, 'correlation.hybrid.v2_percentage');
  assert.match(err.message, /correlation\.hybrid\.v2_percentage = 150/);
  assert.match(err.message, /less than or equal to 100/);
});

test('unknown keys, bad durations, bad env values and unreadable files are rejected', () => {
  assert.match(
    configError(() => loadConfig({ file: tempFile('kafka:\n  brokerz: [x]\n'), env: {} })).message,
    /brokerz/,
  );
  assert.match(
    configError(() =>
      loadConfig({
        file: tempFile('correlation:\n  hybrid:\n    rollback:\n      latency_threshold: fast\n'),
        env: {},
      }),
    ).message,
    /duration/,
  );
  assert.match(
    configError(() => loadConfig({ env: { TAPIO_TOPICS__EVENT_PARTITIONS: 'x' } })).message,
    /unknown config key/,
  );
  assert.match(
    configError(() => loadConfig({ env: { TAPIO_TOPICS__EVENTPARTITIONS: 'many' } })).message,
    /expected a number/,
  );
  assert.match(configError(() => loadConfig({ file: '/nonexistent/tapio.yaml', env: {} })).message, /cannot read/);
  assert.match(configError(() => loadConfig({ file: tempFile('a: [\n'), env: {} })).message, /not valid YAML/);
});
