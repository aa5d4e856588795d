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

/** The error's message, and its causes' messages, as a log line would carry them. */
function everything(err: TapioError): string {
  let text = '';
  for (let e: unknown = err; e instanceof Error; e = e.cause) text += `${e.message}\n`;
  return text;
}

// Root cause: redis.url was only checked for its scheme, so a bad port passed validation and the
// dedup service then failed at start with Node's "Invalid URL" error, whose input is the whole URL.
test('a malformed TAPIO_REDIS__URL is INVALID_CONFIG naming the key, without the password', () => {
  const err = configError(() => loadConfig({ env: { TAPIO_REDIS__URL: 'redis://app:s3cret-pw@cache:99999/0' } }));
  assert.equal(err.context.field, 'redis.url');
  assert.match(err.message, /redis\.url/);
  assert.match(err.message, /expected a valid redis:\/\/ URL/);
  assert.ok(!everything(err).includes('s3cret'), err.message);

  const wrongScheme = configError(() => loadConfig({ env: { TAPIO_REDIS__URL: 'http://app:s3cret-pw@cache:6379' } }));
  assert.equal(wrongScheme.context.field, 'redis.url');
  assert.ok(!everything(wrongScheme).includes('s3cret'), 'a URL that parses shows without its userinfo');
  assert.match(wrongScheme.message, /http:\/\/\*\*\*@cache:6379/);
});

test('config errors name secret keys but never show their values; other keys keep theirs', () => {
  const password = configError(() => loadConfig({ file: tempFile('redis:\n  password: 31337420\n'), env: {} }));
  assert.match(password.message, /redis\.password = \(not shown: a secret\): Expected string, received number/);
  assert.ok(!password.message.includes('31337420'));

  const header = configError(() =>
    loadConfig({ env: { TAPIO_ACTIONS__WEBHOOK__AUTHORIZATION: 'Bearer tok-123\r\nX-Injected: 1' } }),
  );
  assert.equal(header.context.field, 'actions.webhook.authorization');
  assert.match(
    header.message,
    /actions\.webhook\.authorization = \(not shown: a secret\): expected an HTTP header value/,
  );
  assert.ok(!header.message.includes('tok-123'));

  const typo = configError(() =>
    loadConfig({
      file: tempFile('redis:\n  url: redis://app:s3cret-pw@cache:6379\n  passwrd: s3cret-2\n'),
      env: {},
    }),
  );
  assert.match(typo.message, /passwrd/, 'the unknown key is named');
  assert.ok(!typo.message.includes('s3cret'), typo.message);

  const section = configError(() => loadConfig({ env: { TAPIO_REDIS: 's3cret' } }));
  assert.ok(!everything(section).includes('s3cret'), 'a JSON section is not quoted back');
  const yaml = configError(() => loadConfig({ file: tempFile('redis:\n  password: s3cret: x\n'), env: {} }));
  assert.match(yaml.message, /not valid YAML: .*line 2/);
  assert.ok(!everything(yaml).includes('s3cret'), 'the YAML error does not quote the file');

  const plain = configError(() => loadConfig({ env: { TAPIO_TOPICS__EVENTS: 'bad topic!' } }));
  assert.match(plain.message, /topics\.events = "bad topic!": expected a Kafka topic name/);
});

test('an authorization comes from the environment or from its File twin, not both', () => {
  assert.equal(
    loadConfig({ env: { TAPIO_ACTIONS__WEBHOOK__AUTHORIZATION: 'Bearer env-tok' } }).actions.webhook.authorization,
    'Bearer env-tok',
  );
  const file = tempFile('Bearer file-tok\n');
  const fromFile = loadConfig({ env: { TAPIO_ROLLOUT__WEBHOOKAUTHORIZATIONFILE: file } });
  assert.equal(fromFile.rollout.webhookAuthorization, 'Bearer file-tok', 'the trailing newline is dropped');
  assert.equal(
    loadConfig({ file: tempFile(`actions:\n  alertmanager:\n    authorizationFile: ${file}\n`), env: {} }).actions
      .alertmanager.authorization,
    'Bearer file-tok',
  );
  const others = loadConfig({
    env: { TAPIO_REDIS__PASSWORDFILE: tempFile('redis-pw\r\n'), TAPIO_ROLLOUT__UITOKENFILE: tempFile('ui-tok') },
  });
  assert.equal(others.redis.password, 'redis-pw', 'every secret key has its File twin');
  assert.equal(others.rollout.uiToken, 'ui-tok');

  const both = configError(() =>
    loadConfig({
      env: { TAPIO_ACTIONS__WEBHOOK__AUTHORIZATION: 'Bearer x', TAPIO_ACTIONS__WEBHOOK__AUTHORIZATIONFILE: file },
    }),
  );
  assert.match(both.message, /actions\.webhook\.authorization and actions\.webhook\.authorizationFile are both set/);
  const missing = configError(() =>
    loadConfig({ env: { TAPIO_ACTIONS__WEBHOOK__AUTHORIZATIONFILE: '/nonexistent/token' } }),
  );
  assert.equal(missing.context.field, 'actions.webhook.authorizationFile');
  assert.match(
    configError(() => loadConfig({ env: { TAPIO_ROLLOUT__WEBHOOKAUTHORIZATIONFILE: tempFile('') } })).message,
    /is empty/,
  );

  const twice = configError(() =>
    loadConfig({
      env: {
        TAPIO_ROLLOUT__WEBHOOKURL: 'https://u:pw-1@hooks.example/x',
        TAPIO_ROLLOUT__WEBHOOKAUTHORIZATION: 'Bearer y',
      },
    }),
  );
  assert.equal(twice.context.field, 'rollout.webhookUrl');
  assert.match(twice.message, /credentials and an authorization header/);
  assert.ok(!twice.message.includes('pw-1'));
});
