import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryCodec, sourceKey } from '@tapio/events';
import type { Event } from '@tapio/events';
import { createLogger } from '@tapio/observability';
import { startService } from '@tapio/runtime';
import { startCollector } from '@tapio/service-collector';
import { readTopic, tempTopic, testConfig } from '../../helpers/stack';

test('the collector produces scenarios and noise at its rate for its duration, keyed by source entity', async (t) => {
  const topic = await tempTopic(t, 'collector', 3);
  const rate = 1500;
  const durationSeconds = 2;
  const config = testConfig({
    http: { port: 0 },
    log: { level: 'silent' },
    collector: {
      ratePerSecond: rate,
      durationSeconds,
      scenarios: ['crash-loop', 'disk-pressure'],
      noiseRatio: 0.8,
      seed: 5,
      maxBatch: 500,
    },
  });
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const service = await startService(
    'collector',
    (ctx) => startCollector(ctx, { topic, startMs: 1_767_225_600_000, onFinished: finished }),
    { config, logger: createLogger('collector', 'silent') },
  );
  t.after(() => service.shutdown('test end'));
  await done;

  const metrics = await fetch(`${service.http.url}/metrics`).then((r) => r.text());
  const sent = Number(/^tapio_collector_events_total\{service="collector"\} (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(sent > 0 && sent <= rate * durationSeconds, `sent ${sent} within the target of ${rate * durationSeconds}`);
  assert.match(metrics, /tapio_collector_target_rate\{service="collector"\} 1500/);

  const records = await readTopic(t, topic, sent);
  const codec = new RegistryCodec({ url: config.registry.url });
  const events: Event[] = [];
  for (const r of records) {
    const e = JSON.parse(JSON.stringify(await codec.decode<Event>(r.value))) as Event;
    assert.equal(r.key, sourceKey(e));
    events.push(e);
  }
  const types = new Set(events.map((e) => e.type));
  assert.ok(types.has('pod.restart'), 'scenario events are in the mix');
  assert.ok(
    events.some((e) => e.id.startsWith('noise-')),
    'noise is in the mix',
  );
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event produced twice');
});
