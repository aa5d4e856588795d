import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpEndpoint, postOnce } from '@tapio/runtime';
import { receiver, redirector } from '../../helpers/http';

const json = { 'content-type': 'application/json' };

// Root cause: fetch follows redirects by default, and a 307/308 re-sends the POST body to any host.
test('a 307 or 308 is a failed, retriable attempt naming the redirect; its target receives nothing', async (t) => {
  const target = await receiver(t);
  for (const status of [307, 308]) {
    const source = await redirector(t, status, `${target.base}/stolen`);
    const outcome = await postOnce(httpEndpoint(`${source.base}/hook`), json, '{"id":"r1"}', 2000);
    assert.deepEqual(outcome, { kind: 'retry', reason: `status ${status}: a redirect, not followed` });
    assert.equal(source.requests.length, 1, 'one request to the configured URL');
  }
  assert.deepEqual(target.requests, [], 'the redirect target received nothing');
});

test('the authorization header is sent when configured and absent otherwise; userinfo becomes Basic', async (t) => {
  const server = await receiver(t);
  assert.equal((await postOnce(httpEndpoint(`${server.base}/a`), json, '{}', 2000)).kind, 'ok');
  assert.equal((await postOnce(httpEndpoint(`${server.base}/b`, 'Bearer tok-1'), json, '{}', 2000)).kind, 'ok');
  const withUserinfo = httpEndpoint(`${server.base.replace('//', '//hook-user:p%40ss@')}/c?token=tok-2`);
  assert.equal(withUserinfo.shown, `${server.base.replace('//', '//***@')}/c?token=***`);
  assert.equal((await postOnce(withUserinfo, json, '{}', 2000)).kind, 'ok');

  const [a, b, c] = server.requests;
  assert.equal(a?.headers.authorization, undefined, 'no authorization unless configured');
  assert.equal(b?.headers.authorization, 'Bearer tok-1');
  assert.equal(c?.headers.authorization, `Basic ${Buffer.from('hook-user:p@ss').toString('base64')}`);
  assert.equal(c?.url, '/c?token=tok-2', 'the query still goes to the receiver');
});

test('statuses: 2xx ok; 408, 429 and 5xx retried (with Retry-After); other 4xx final', async (t) => {
  const statuses = [202, 408, 429, 503, 404];
  const server = await receiver(t, (req, res) => {
    const status = Number(req.url.slice(1));
    res.writeHead(status, status === 429 ? { 'retry-after': '2' } : {}).end();
  });
  const outcomes = [];
  for (const status of statuses) {
    outcomes.push(await postOnce(httpEndpoint(`${server.base}/${status}`), json, '{}', 2000));
  }
  assert.deepEqual(outcomes, [
    { kind: 'ok', status: 202 },
    { kind: 'retry', reason: 'status 408' },
    { kind: 'retry', reason: 'status 429', retryAfterMs: 2000 },
    { kind: 'retry', reason: 'status 503' },
    { kind: 'fail', reason: 'status 404' },
  ]);
});
