/**
 * The bench's Redis: which one, which database, and cleaning up after itself (SCAN + DEL of its own
 * key prefix; never FLUSHDB, FLUSHALL or CONFIG).
 */
import type { Redis } from 'ioredis';

/** The database the bench uses, whatever the URL says (`BENCH_REDIS_DB` overrides it). */
export const BENCH_REDIS_DB = Number(process.env.BENCH_REDIS_DB ?? 14);

/**
 * The Redis URL of the bench: `REDIS_URL`, or in a full run `redis://127.0.0.1:6379` when unset,
 * with the database replaced by {@link BENCH_REDIS_DB}. `undefined` when there is none to use.
 */
export function benchRedisUrl(smoke: boolean): string | undefined {
  const configured = process.env.REDIS_URL;
  const base = configured !== undefined && configured !== '' ? configured : smoke ? undefined : 'redis://127.0.0.1:6379';
  if (base === undefined) return undefined;
  const url = new URL(base);
  url.pathname = `/${BENCH_REDIS_DB}`;
  return url.toString();
}

/** Deletes every key under `prefix` (SCAN, never FLUSH); returns how many. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
