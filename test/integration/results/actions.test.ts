import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryCodec } from '@tapio/events';
import type { Result } from '@tapio/events';
import { DLQ_HEADERS } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { ACTIONS_SINK_HEADER, startActions } from '@tapio/service-actions';
import type { AlertmanagerAlert } from '@tapio/service-actions';
import { makeResult, metricValue } from '../../helpers/results-builder';
import { committedTotal, eventually, kafka, randomName, readTopic, tempTopic, testConfig } from '../../helpers/stack';

/**
 * A webhook receiver that dedups by Idempotency-Key and fails each key's first attempts: a 500,
 * then a dropped connection; results for pod/shop/never always get 503. Also an Alertmanager API.
 */
function receiver() {
  const attempts = new Map<string, number>();
  const accepted = new Map<string, Result>();
  const acceptedPosts = new Map<string, number>();
  const alerts: { body: AlertmanagerAlert[]; contentType: string | undefined }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/am/api/v2/alerts' && req.method === 'POST') {
        alerts.push({ body: JSON.parse(body) as AlertmanagerAlert[], contentType: req.headers['content-type'] });
        res.writeHead(200).end();
        return;
      }
      const key = String(req.headers['idempotency-key']);
      const n = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, n);
      const result = JSON.parse(body) as Result;
      if (result.entityKey === 'pod/shop/never') {
        res.writeHead(503).end('unavailable');
      } else if (n === 1) {
        res.writeHead(500).end('boom');
      } else if (n === 2) {
        req.socket.destroy();
      } else {
        if (!accepted.has(key)) accepted.set(key, result);
        acceptedPosts.set(key, (acceptedPosts.get(key) ?? 0) + 1);
        res.writeHead(200).end('{}');
      }
    });
  });
  return { server, attempts, accepted, acceptedPosts, alerts };
}

test('actions: webhook retries to exactly-once per result id, exhausted retries go to the actions DLQ, Alertmanager shape', async (t) => {
  const input = await tempTopic(t, 'actions-in', 2);
  const sinkDlq = await tempTopic(t, 'actions-dlq', 1);
  const inputDlq = await tempTopic(t, 'actions-in-dlq', 1);
  const groupId = randomName('tapio-actions');
  const recv = receiver();
  await new Promise<void>((resolve) => recv.server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((r) => recv.server.close(r)));
  const base = `http://127.0.0.1:${(recv.server.address() as AddressInfo).port}`;

  const config = testConfig({
    topics: { dlq: inputDlq },
    actions: {
      log: true,
      webhook: { url: `${base}/hook`, timeoutMs: 2000, maxAttempts: 4, backoffInitialMs: 20, backoffMaxMs: 100 },
      alertmanager: { url: `${base}/am/` },
      dlqTopic: sinkDlq,
    },
    http: { port: 0 },
    log: { level: 'silent' },
  });
  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerResult(input);
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  t.after(() => producer.disconnect());

  const good = [0, 1, 2, 3, 4].map((i) =>
    makeResult('crash-loop', `pod/shop/web-${i}`, `e${i}`, {
      severity: 'critical',
      confidence: 0.85,
      evidence: [`e${i - 1}`, `e${i}`],
      triggeredAt: Date.UTC(2025, 5, 1, 12, 0, i),
    }),
  );
  const never = makeResult('disk-pressure', 'pod/shop/never', 'n1', { category: 'storage' });
  await producer.send({
    topic: input,
    acks: -1,
    messages: [
      ...[...good, never].map((r) => ({ key: r.entityKey, value: codec.encode(schemaId, r) })),
      { key: 'pod/shop/web-0', value: Buffer.from([0, 0, 0]) },
    ],
  });

  const service = await startService('actions', (ctx) => startActions(ctx, { inputTopic: input, groupId }), {
    config,
    logger: createLogger('actions', 'silent'),
  });
  let stopped = false;
  t.after(() => (stopped ? undefined : service.shutdown('test end')));

  const dead = await readTopic(t, sinkDlq, 1);
  assert.equal(dead[0]?.headers[DLQ_HEADERS.reason], 'DELIVERY_FAILED');
  assert.equal(dead[0]?.headers[ACTIONS_SINK_HEADER], 'webhook');
  assert.match(dead[0]?.headers[DLQ_HEADERS.message] ?? '', /status 503 after 4 attempt/);
  assert.equal(dead[0]?.key, never.entityKey);
  assert.equal(recv.attempts.get(never.id), 4, 'maxAttempts attempts before dead-lettering');

  await eventually(() => recv.accepted.size === good.length && recv.alerts.length === 6, 20_000, 'all delivered');
  for (const r of good) {
    assert.deepEqual(recv.accepted.get(r.id), r, `webhook body = the result fields (${r.id})`);
    assert.equal(recv.acceptedPosts.get(r.id), 1, 'accepted exactly once');
    assert.equal(recv.attempts.get(r.id), 3, '500, dropped connection, then 200');
  }

  const alert = recv.alerts.find((a) => a.body[0]?.annotations['result_id'] === good[2]!.id);
  assert.ok(alert, 'an alert per result');
  assert.equal(alert.contentType, 'application/json');
  assert.equal(alert.body.length, 1, 'an array of one alert');
  assert.deepEqual(alert.body[0], {
    labels: {
      alertname: 'crash-loop',
      severity: 'critical',
      entity_key: 'pod/shop/web-2',
      category: 'reliability',
      engine: 'v1',
    },
    annotations: {
      summary: 'crash-loop on pod/shop/web-2',
      confidence: '0.85',
      evidence: 'e1,e2',
      result_id: good[2]!.id,
      trigger_event_id: 'e2',
    },
    startsAt: '2025-06-01T12:00:02.000Z',
  });

  const undecodable = await readTopic(t, inputDlq, 1);
  assert.equal(undecodable[0]?.headers[DLQ_HEADERS.reason], 'TRUNCATED_RECORD');

  const text = await fetch(`${service.http.url}/metrics`).then((r) => r.text());
  assert.equal(metricValue(text, 'tapio_actions_delivered_total', { sink: 'webhook' }), 5);
  assert.equal(metricValue(text, 'tapio_actions_delivered_total', { sink: 'alertmanager' }), 6);
  assert.equal(metricValue(text, 'tapio_actions_delivered_total', { sink: 'log' }), 6);
  assert.equal(metricValue(text, 'tapio_actions_failed_total', { sink: 'webhook' }), 1);
  assert.equal(metricValue(text, 'tapio_actions_retries_total', { sink: 'webhook' }), 5 * 2 + 3);

  await service.shutdown('test');
  stopped = true;
  await eventually(async () => (await committedTotal(t, groupId, input)) === 7, 15_000, 'all 7 offsets committed');
});
