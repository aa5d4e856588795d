import { test } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { randomName, testConfig } from '../helpers/stack';

test('Redis answers and SET NX PX keeps the first writer (the dedup primitive)', async (t) => {
  const redis = new Redis(testConfig().redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  t.after(() => redis.quit());
  assert.equal(await redis.ping(), 'PONG');
  const key = randomName('tapio-test');
  assert.equal(await redis.set(key, 'first', 'PX', 5000, 'NX'), 'OK');
  assert.equal(await redis.set(key, 'second', 'PX', 5000, 'NX'), null);
  assert.equal(await redis.get(key), 'first');
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 0 && ttl <= 5000, `ttl ${ttl}`);
  await redis.del(key);
});
