import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@tapio/observability';
import { WebhookNotifier } from '@tapio/service-rollout-controller';
import type { RolloutNotification } from '@tapio/service-rollout-controller';
import { eventually } from '../../helpers/stack';
import { receiver, redirector } from '../../helpers/http';

const notification: RolloutNotification = {
  event: 'rollback',
  rolloutId: 'r-1',
  status: 'rolled-back',
  stage: 2,
  stages: 4,
  v2Percentage: 0,
  reason: 'errorRate 0.02 > 0.001',
  at: '2025-06-01T12:00:00.000Z',
};

function capturedLogger() {
  const lines: string[] = [];
  return { lines, logger: createLogger('rollout-controller', 'debug', { write: (l: string) => void lines.push(l) }) };
}

test('rollout webhook: a 308 is not followed, the notification counts as failed, logs hide the URL credentials', async (t) => {
  const target = await receiver(t);
  const source = await redirector(t, 308, `${target.base}/elsewhere`);
  const url = `${source.base.replace('//', '//ops:hook-pw-9@')}/hook?token=tok-q-7`;
  const { lines, logger } = capturedLogger();
  let failures = 0;
  const notifier = new WebhookNotifier({ url, logger, maxAttempts: 2, backoffMs: 1, onFailure: () => failures++ });
  t.after(() => notifier.close(0));

  notifier.notify(notification);
  await eventually(() => failures === 1, 10_000, 'the notification is given up');
  assert.equal(source.requests.length, 2, 'both attempts went to the configured URL');
  assert.deepEqual(target.requests, [], 'the redirect target received nothing');

  const text = lines.join('');
  const undelivered = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['attempts'] === 2);
  assert.equal(undelivered?.['reason'], 'status 308: a redirect, not followed');
  assert.equal(undelivered?.['url'], `${source.base.replace('//', '//***@')}/hook?token=***`);
  for (const secret of ['ops', 'hook-pw-9', 'tok-q-7']) assert.ok(!text.includes(secret), `${secret} is not logged`);
});

test('rollout webhook: the authorization header arrives when configured and is absent otherwise', async (t) => {
  const hook = await receiver(t);
  const { logger } = capturedLogger();
  const withAuth = new WebhookNotifier({ url: `${hook.base}/a`, authorization: 'Bearer rollout-tok', logger });
  const without = new WebhookNotifier({ url: `${hook.base}/b`, logger });
  t.after(() => Promise.all([withAuth.close(0), without.close(0)]));
  withAuth.notify(notification);
  without.notify(notification);
  await eventually(() => hook.requests.length === 2, 10_000, 'both notifications delivered');
  const byPath = new Map(hook.requests.map((r) => [r.url, r]));
  assert.equal(byPath.get('/a')?.headers.authorization, 'Bearer rollout-tok');
  assert.equal(byPath.get('/b')?.headers.authorization, undefined);
  assert.deepEqual(JSON.parse(byPath.get('/a')?.body ?? ''), notification);
});
