/**
 * The shared access_token: one fetch for many callers and processes, a refused token forgotten,
 * a newer token never deleted by a stale caller; on memory, ioredis-mock and (with REDIS_URL) Redis.
 */
import type { Redis } from 'ioredis';
import RedisMock from 'ioredis-mock';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MemoryAccessTokenCache,
  RedisAccessTokenCache,
  SharedAccessToken,
  type AccessTokenCache,
} from '../../src/delivery/access-token.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { WeChatApiError, type AccessToken } from '../../src/wechat/customer-service.js';
import { uniqueKeyPrefix } from '../support/stores.js';

interface CacheUnderTest {
  /** Two caches over one storage, as two processes see it. */
  readonly caches: [AccessTokenCache, AccessTokenCache];
  cleanup(): Promise<void>;
}

function redisCaches(redis: Redis, other: Redis): CacheUnderTest {
  const keyPrefix = uniqueKeyPrefix();
  const options = { keyPrefix, appId: 'wx0123456789abcdef' };
  return {
    caches: [new RedisAccessTokenCache(redis, options), new RedisAccessTokenCache(other, options)],
    async cleanup() {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
      other.disconnect();
    },
  };
}

const factories: Array<{ name: string; create(): CacheUnderTest }> = [
  {
    name: 'memory',
    create: () => {
      const cache = new MemoryAccessTokenCache();
      return { caches: [cache, cache], cleanup: async () => undefined };
    },
  },
  {
    name: 'redis (ioredis-mock)',
    create: () => {
      const host = `mock-${randomBytes(6).toString('hex')}`;
      return redisCaches(new RedisMock({ host, port: 6379 }), new RedisMock({ host, port: 6379 }));
    },
  },
];
const url = process.env.REDIS_URL;
if (url) factories.push({ name: 'redis (real)', create: () => redisCaches(createRedisClient(url), createRedisClient(url)) });

describe.each(factories)('SharedAccessToken on $name', (factory) => {
  let under: CacheUnderTest | undefined;
  afterEach(async () => {
    await under?.cleanup();
  });

  /** A token endpoint that counts its calls and answers after `delayMs`. */
  function endpoint(delayMs = 50, expiresIn = 7200) {
    const calls = { n: 0 };
    const fetchToken = async (): Promise<AccessToken> => {
      calls.n += 1;
      const n = calls.n;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return { accessToken: `TOKEN_${n}`, expiresIn };
    };
    return { calls, fetchToken };
  }

  it('twenty callers in two "processes" at once: one fetch, one token for all', async () => {
    under = factory.create();
    const { calls, fetchToken } = endpoint(100);
    const a = new SharedAccessToken({ cache: under.caches[0], fetchToken, pollMs: 10 });
    const b = new SharedAccessToken({ cache: under.caches[1], fetchToken, pollMs: 10 });
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).get()));
    expect(new Set(tokens)).toEqual(new Set(['TOKEN_1']));
    expect(calls.n).toBe(1);
    expect(await a.get()).toBe('TOKEN_1'); // cached now: no second fetch
    expect(calls.n).toBe(1);
  });

  it('a refused token is forgotten and the next get fetches a new one', async () => {
    under = factory.create();
    const { calls, fetchToken } = endpoint(1);
    const token = new SharedAccessToken({ cache: under.caches[0], fetchToken });
    expect(await token.get()).toBe('TOKEN_1');
    await token.invalidate('TOKEN_1');
    expect(await token.get()).toBe('TOKEN_2');
    expect(calls.n).toBe(2);
  });

  it('a caller that invalidates a stale token does not delete the newer one another process stored', async () => {
    under = factory.create();
    const { fetchToken } = endpoint(1);
    const a = new SharedAccessToken({ cache: under.caches[0], fetchToken });
    const b = new SharedAccessToken({ cache: under.caches[1], fetchToken });
    await a.get();
    await a.invalidate('TOKEN_1');
    expect(await a.get()).toBe('TOKEN_2');
    await b.invalidate('TOKEN_1'); // b still held the old one
    expect(await under.caches[1].get()).toBe('TOKEN_2');
  });

  it('keeps a token for expires_in minus the margin (seconds)', async () => {
    under = factory.create();
    const { calls, fetchToken } = endpoint(1, 301);
    const token = new SharedAccessToken({ cache: under.caches[0], fetchToken, marginSeconds: 300 });
    expect(await token.get()).toBe('TOKEN_1');
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // 301 - 300 = 1 s
    expect(await token.get()).toBe('TOKEN_2');
    expect(calls.n).toBe(2);
  });

  it('a failing fetch rejects every waiting caller, releases the lock, and the next get tries again', async () => {
    under = factory.create();
    let fail = true;
    const fetchToken = async (): Promise<AccessToken> => {
      if (fail) throw new WeChatApiError('errcode 40164 invalid ip', 'config', 40164);
      return { accessToken: 'OK', expiresIn: 7200 };
    };
    const token = new SharedAccessToken({ cache: under.caches[0], fetchToken });
    const results = await Promise.allSettled([token.get(), token.get()]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await token.get()).toBe('OK');
  });

  it('gives up (transient) when another holder keeps the lock without storing a token', async () => {
    under = factory.create();
    await under.caches[1].lock('someone-else', 10_000);
    const token = new SharedAccessToken({ cache: under.caches[0], fetchToken: endpoint().fetchToken, waitMs: 300, pollMs: 20 });
    await expect(token.get()).rejects.toMatchObject({ kind: 'transient' });
  });
});
