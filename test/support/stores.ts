/**
 * The stores every store-dependent test runs against: the in-memory store, the Redis store on
 * ioredis-mock, and — only when `REDIS_URL` is set — the Redis store on that real Redis.
 *
 * ```ts
 * describe.each(storeFactories())('$name', (factory) => {
 *   let s: StoreUnderTest;
 *   beforeEach(async () => { s = await factory.create(); });
 *   afterEach(() => s.cleanup());
 * });
 * ```
 *
 * Each created store has its own random key prefix, and `cleanup()` deletes every key under it and
 * closes the client, so tests never see each other's data, on one Redis or on many test files.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import RedisMock from 'ioredis-mock';
import { stateKeyString } from '../../src/dialog/store/keys.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import type { DialogStore, StateKey } from '../../src/dialog/store/store.js';

/** One store, ready to use, with raw access for assertions. */
export interface StoreUnderTest {
  /** The factory's name, e.g. `redis (ioredis-mock)`. */
  name: string;
  store: DialogStore;
  /**
   * Raw key lookup for assertions: the remaining time to live of `key`'s state in **seconds**,
   * rounded like Redis `TTL` (up to a whole second); `-2` when there is no such state.
   */
  rawTtlSeconds?(key: StateKey): Promise<number>;
  /** Stores `raw` as-is under `key`'s storage key, bypassing the codec (to test corrupt values). */
  writeRaw?(key: StateKey, raw: string, ttlSeconds: number): Promise<void>;
  /** Deletes every key this store wrote and closes it. Call once, after the test. */
  cleanup(): Promise<void>;
}

/** Makes fresh {@link StoreUnderTest}s of one kind. */
export interface StoreFactory {
  /** Shown in test names: `memory`, `redis (ioredis-mock)`, `redis (real)`. */
  name: string;
  /**
   * A new store with its own key prefix.
   * @throws when the backend cannot be reached (a real Redis at `REDIS_URL` that does not answer):
   *   the suite fails instead of skipping.
   */
  create(): Promise<StoreUnderTest>;
}

/** `memory`, `redis (ioredis-mock)`, and `redis (real)` when `process.env.REDIS_URL` is set. */
export function storeFactories(): StoreFactory[] {
  const factories: StoreFactory[] = [memoryFactory, mockRedisFactory];
  const url = process.env.REDIS_URL;
  if (url) factories.push(realRedisFactory(url));
  return factories;
}

/** A key prefix no other store in this run uses: `test:<16 hex>:`. */
export function uniqueKeyPrefix(): string {
  return `test:${randomBytes(8).toString('hex')}:`;
}

/** Exposes the memory store's raw entries to the harness. */
class InspectableMemoryStore extends MemoryStore {
  writeRaw(key: StateKey, raw: string, ttlSeconds: number): void {
    this.writeEncoded(key, raw, ttlSeconds);
  }
  rawTtlSeconds(key: StateKey): number {
    const expiresAtMs = this.expiresAtMs(key);
    return expiresAtMs === undefined ? -2 : Math.ceil((expiresAtMs - Date.now()) / 1000);
  }
}

const memoryFactory: StoreFactory = {
  name: 'memory',
  async create() {
    const store = new InspectableMemoryStore({ sweepIntervalMs: 200 });
    return {
      name: 'memory',
      store,
      rawTtlSeconds: async (key) => store.rawTtlSeconds(key),
      writeRaw: async (key, raw, ttlSeconds) => store.writeRaw(key, raw, ttlSeconds),
      cleanup: () => store.close(),
    };
  },
};

const mockRedisFactory: StoreFactory = {
  name: 'redis (ioredis-mock)',
  async create() {
    // ioredis-mock shares one dataset between all instances with the same host:port/db, for the
    // whole module instance (i.e. per test file). A unique fake host gives this instance its own
    // dataset; the unique prefix would keep tests apart anyway.
    const redis = new RedisMock({ host: `mock-${randomBytes(6).toString('hex')}`, port: 6379 });
    return redisUnderTest('redis (ioredis-mock)', redis);
  },
};

function realRedisFactory(url: string): StoreFactory {
  return {
    name: 'redis (real)',
    async create() {
      let connectError: Error | undefined;
      const redis = createRedisClient(url, {
        commandTimeoutMs: 2000,
        connectTimeoutMs: 2000,
        onError: (err) => {
          connectError = err;
        },
      });
      try {
        await redis.ping();
      } catch (err) {
        redis.disconnect();
        const why = connectError ? `${String(err)}; last connection error: ${String(connectError)}` : String(err);
        throw new Error(`REDIS_URL is set to ${url} but Redis does not answer (${why}): start Redis or unset REDIS_URL`, {
          cause: err,
        });
      }
      return redisUnderTest('redis (real)', redis);
    },
  };
}

function redisUnderTest(name: string, redis: Redis): StoreUnderTest {
  const keyPrefix = uniqueKeyPrefix();
  const store = new RedisStore({ redis, keyPrefix });
  return {
    name,
    store,
    rawTtlSeconds: (key) => redis.ttl(stateKeyString(keyPrefix, key)),
    writeRaw: async (key, raw, ttlSeconds) => {
      await redis.set(stateKeyString(keyPrefix, key), raw, 'EX', ttlSeconds);
    },
    async cleanup() {
      try {
        await deleteByPrefix(redis, keyPrefix);
      } finally {
        await store.close();
      }
    },
  };
}

/** `SCAN MATCH <prefix>*` + `DEL` until the cursor comes back to 0. The prefix must hold no glob characters. */
async function deleteByPrefix(redis: Redis, keyPrefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 100);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}
