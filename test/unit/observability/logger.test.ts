import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, redactUrl } from '@tapio/observability';

function capture() {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line) } };
}

test('the logger redacts credentials at any depth, in child bindings and in errors, and keeps the rest', () => {
  const out = capture();
  const logger = createLogger('test', 'info', out.stream);
  const logged = {
    password: 'pw-top',
    request: { headers: { authorization: 'Bearer tok-header', 'content-type': 'application/json' } },
    config: {
      redis: { url: 'redis://app:pw-redis@cache:6379/0', password: 'pw-redis-2' },
      kafka: { brokers: ['k:9092'], sasl: { mechanism: 'plain', username: 'app', password: 'pw-sasl' } },
      rollout: { uiToken: 'tok-ui', webhookAuthorization: 'Basic c2VjcmV0' },
    },
    hooks: [{ url: 'https://hook-user:pw-hook@hooks.example/x?token=tok-query&team=ops', apiKey: 'key-1' }],
  };
  const before = structuredClone(logged);
  logger
    .child({ clientSecret: 'sec-child' })
    .warn(
      { ...logged, err: Object.assign(new Error('refused'), { headers: { Authorization: 'Bearer tok-err' } }) },
      'x',
    );

  const text = out.lines.join('');
  for (const secret of [
    'pw-top',
    'tok-header',
    'pw-redis',
    'pw-sasl',
    'tok-ui',
    'c2VjcmV0',
    'hook-user',
    'pw-hook',
    'tok-query',
    'key-1',
    'sec-child',
    'tok-err',
  ]) {
    assert.ok(!text.includes(secret), `${secret} is not in the log line`);
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed log line, read field by field
  const line = JSON.parse(text) as Record<string, any>;
  assert.equal(line.password, '[Redacted]');
  assert.equal(line.request.headers.authorization, '[Redacted]');
  assert.equal(line.request.headers['content-type'], 'application/json', 'other headers stay');
  assert.equal(line.config.redis.url, 'redis://***@cache:6379/0', 'a URL keeps its host');
  assert.deepEqual(line.config.kafka.brokers, ['k:9092']);
  assert.equal(line.hooks[0].url, 'https://***@hooks.example/x?token=***&team=***');
  assert.equal(line.clientSecret, '[Redacted]');
  assert.equal(line.err.message, 'refused', 'an error keeps its message');
  assert.equal(line.err.headers.Authorization, '[Redacted]');
  assert.deepEqual(logged, before, 'the logged object itself is not changed');
});

test('redactUrl hides userinfo and query values, keeps what locates the endpoint', () => {
  assert.equal(redactUrl('http://u:p@127.0.0.1:8080/hook?token=abc#frag'), 'http://***@127.0.0.1:8080/hook?token=***');
  assert.equal(redactUrl('https://hooks.example/a'), 'https://hooks.example/a');
  assert.equal(redactUrl('/api/status?token=abc'), '/api/status?token=***');
  assert.equal(redactUrl('redis://u:secret@host:99999'), '[unparseable URL]', 'a malformed URL is not echoed');
  assert.equal(redactUrl(42), '[Redacted]');
});
