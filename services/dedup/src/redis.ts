import Redis from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type { TapioConfig } from '@tapio/config';

/**
 * Client options for the dedup path. Commands fail fast while Redis is unreachable or slow
 * (no offline queue, no per-request retries, a command timeout), because the caller owns the
 * retry: it keeps the batch uncommitted and retries it as a whole, which SET NX makes safe.
 * AUTH comes from the URL (`redis://user:password@host`) or `redis.password`; TLS from
 * `rediss://` or `redis.tls`.
 */
export function redisOptions(config: Pick<TapioConfig, 'redis'>, commandTimeoutMs: number): RedisOptions {
  const { redis } = config;
  const url = new URL(redis.url);
  const tls = url.protocol === 'rediss:' || redis.tls;
  const password = redis.password !== '' ? redis.password : decodeURIComponent(url.password);
  const username = decodeURIComponent(url.username);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return {
    host: url.hostname,
    port: url.port === '' ? 6379 : Number(url.port),
    db: Number.isInteger(db) ? db : 0,
    ...(username !== '' ? { username } : {}),
    ...(password !== '' ? { password } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 1000),
    // Reconnect forever, at most every 2 s; the dedup loop reports the outage meanwhile.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...(tls ? { tls: { rejectUnauthorized: redis.tlsRejectUnauthorized, servername: url.hostname } } : {}),
  };
}

export function createRedis(config: Pick<TapioConfig, 'redis'>, commandTimeoutMs: number): Redis {
  // Options only (no URL argument): ioredis would let the URL's fields win over the options.
  return new Redis(redisOptions(config, commandTimeoutMs));
}
