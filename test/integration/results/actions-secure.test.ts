import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryCodec } from '@tapio/events';
import { DLQ_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { ACTIONS_SINK_HEADER, startActions } from '@tapio/service-actions';
import { receiver, redirector } from '../../helpers/http';
import { makeResult, metricValue } from '../../helpers/results-builder';
import { eventually, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

// Root cause: the sinks used fetch's default redirect: 'follow', so a 307 re-POSTed the result to
// any host; a URL with userinfo was refused by fetch on every attempt, and no header could carry a credential.
test('actions: a redirecting webhook is a failed attempt (dead-lettered, target untouched); credentials are sent, never logged', async (t) => {
  const input = await tempTopic(t, 'actions-sec-in', 1);
  const sinkDlq = await tempTopic(t, 'actions-sec-dlq', 1);
  const inputDlq = await tempTopic(t, 'actions-sec-in-dlq', 1);
  const groupId = randomName('tapio-actions-sec');

  const target = await receiver(t);
  const hook = await redirector(t, 307, `${target.base}/stolen`);
  const alertmanager = await receiver(t, (_req, res) => void res.writeHead(200).end());
  const hookUrl = `${hook.base.replace('//', '//hook-user:hook-pw-5@')}/hook?token=tok-q-3`;

  const lines: string[] = [];
  const logger = createLogger('actions', 'debug', { write: (line: string) => void lines.push(line) });
  const config = testConfig({
    topics: { dlq: inputDlq },
    actions: {
      log: true,
      webhook: { url: hookUrl, timeoutMs: 2000, maxAttempts: 2, backoffInitialMs: 10, backoffMaxMs: 20 },
      alertmanager: { url: `${alertmanager.base}/am`, authorization: 'Bearer am-tok-8' },
      dlqTopic: sinkDlq,
    },
    http: { port: 0 },
  });

  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerResult(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());
  const result = makeResult('crash-loop', 'pod/shop/web-1', 'e1', { severity: 'critical' });
  await producer.send({
    topic: input,
    acks: -1,
    messages: [{ key: result.entityKey, value: codec.encode(schemaId, result) }],
  });

  const service = await startService('actions', (ctx) => startActions(ctx, { inputTopic: input, groupId }), {
    config,
    logger,
  });
  t.after(() => service.shutdown('test end'));

  const [dead] = await readTopic(t, sinkDlq, 1);
  assert.equal(dead?.headers[DLQ_HEADERS.reason], 'DELIVERY_FAILED');
  assert.equal(dead?.headers[ACTIONS_SINK_HEADER], 'webhook');
  assert.match(dead?.headers[DLQ_HEADERS.message] ?? '', /status 307: a redirect, not followed after 2 attempt/);
  assert.deepEqual(target.requests, [], 'the redirect target received nothing');

  assert.equal(hook.requests.length, 2, 'retried like any failed attempt, then dead-lettered');
  for (const req of hook.requests) {
    assert.equal(req.url, '/hook?token=tok-q-3');
    assert.equal(req.headers.authorization, `Basic ${Buffer.from('hook-user:hook-pw-5').toString('base64')}`);
  }
  await eventually(() => alertmanager.requests.length === 1, 20_000, 'the alert delivered');
  assert.equal(alertmanager.requests[0]?.headers.authorization, 'Bearer am-tok-8');

  const metrics = await fetch(`${service.http.url}/metrics`).then((r) => r.text());
  assert.equal(metricValue(metrics, 'tapio_actions_failed_total', { sink: 'webhook' }), 1);
  assert.equal(metricValue(metrics, 'tapio_actions_retries_total', { sink: 'webhook' }), 1);
  assert.equal(metricValue(metrics, 'tapio_actions_delivered_total', { sink: 'alertmanager' }), 1);

  const text = lines.join('');
  const shown = `${hook.base.replace('//', '//***@')}/hook?token=***`;
  const consuming = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['endpoints']);
  assert.deepEqual(consuming?.['endpoints'], { webhook: shown, alertmanager: `${alertmanager.base}/am/api/v2/alerts` });
  assert.ok(text.includes('status 307: a redirect, not followed'), 'the failure is logged with its reason');
  for (const secret of ['hook-user', 'hook-pw-5', 'tok-q-3', 'am-tok-8']) {
    assert.ok(!text.includes(secret), `${secret} is not in the logs`);
  }
});
