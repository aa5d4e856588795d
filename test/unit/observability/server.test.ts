import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from 'prom-client';
import { createMetricsRegistry, startObservabilityServer } from '@tapio/observability';

test('/metrics serves the registry and /healthz follows the health callback', async (t) => {
  const registry = createMetricsRegistry('test-service', false);
  const counter = new Counter({ name: 'tapio_events_processed_total', help: 'x', registers: [registry] });
  counter.inc(3);
  let ok = true;
  const server = await startObservabilityServer({
    host: '127.0.0.1',
    port: 0,
    registry,
    health: () => ({ ok, lag: 0 }),
  });
  t.after(() => server.close());

  const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
  assert.match(metrics, /tapio_events_processed_total\{service="test-service"\} 3/);

  const healthy = await fetch(`${server.url}/healthz`);
  assert.equal(healthy.status, 200);
  assert.deepEqual(await healthy.json(), { ok: true, lag: 0 });
  ok = false;
  assert.equal((await fetch(`${server.url}/healthz`)).status, 503);
  assert.equal((await fetch(`${server.url}/nope`)).status, 404);
});
