import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, redisOptions } from '@tapio/service-dedup';
import { testConfig } from '../../helpers/stack';

const redisConfig = (redis: Record<string, unknown>) => testConfig({ redis });

test('redis AUTH comes from the URL, and redis.password overrides it', () => {
  const fromUrl = redisOptions(redisConfig({ url: 'redis://dedup:s%40cret@cache.internal:6380/2' }), 500);
  assert.equal(fromUrl.host, 'cache.internal');
  assert.equal(fromUrl.port, 6380);
  assert.equal(fromUrl.db, 2);
  assert.equal(fromUrl.username, 'dedup');
  assert.equal(fromUrl.password, 's@cret');
  assert.equal(fromUrl.tls, undefined);
  const overridden = redisOptions(redisConfig({ url: 'redis://:old@h:1', password: 'new' }), 500);
  assert.equal(overridden.password, 'new');
  assert.equal(overridden.username, undefined);
});

test('redis TLS from rediss:// or redis.tls; commands fail fast for the dedup retry loop', () => {
  const viaScheme = redisOptions(redisConfig({ url: 'rediss://cache:6379' }), 750);
  assert.deepEqual(viaScheme.tls, { rejectUnauthorized: true, servername: 'cache' });
  const viaFlag = redisOptions(redisConfig({ url: 'redis://cache', tls: true, tlsRejectUnauthorized: false }), 750);
  assert.deepEqual(viaFlag.tls, { rejectUnauthorized: false, servername: 'cache' });
  assert.equal(viaFlag.port, 6379);
  assert.equal(viaFlag.enableOfflineQueue, false);
  assert.equal(viaFlag.maxRetriesPerRequest, 0);
  assert.equal(viaFlag.commandTimeout, 750);
});

test('backoff grows exponentially within [initial, max] with jitter', () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    for (let i = 0; i < 50; i++) {
      const ms = backoffMs(attempt, 100, 5000);
      assert.ok(ms >= 100 && ms <= Math.min(5000, 100 * 2 ** attempt), `attempt ${attempt}: ${ms}`);
    }
  }
});
