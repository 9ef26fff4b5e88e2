/**
 * The Redis round-trip budget of a turn, counted with MONITOR on real Redis: a continuing turn
 * costs one round trip, a starting or ending turn at most two. Only commands that name this
 * test's keys are counted, and not the commands a Lua script runs inside Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { textFrom } from '../support/messages.js';
import { uniqueKeyPrefix } from '../support/stores.js';
import { deleteRedisKeys } from '../support/processes.js';

const url = process.env.REDIS_URL ?? '';

describe.runIf(Boolean(url))('Redis round trips per turn (MONITOR)', () => {
  const prefix = uniqueKeyPrefix();
  let monitor: Awaited<ReturnType<Redis['monitor']>>;
  let admin: Redis;
  let storeA: RedisStore;
  let storeB: RedisStore;
  const seen: string[][] = [];

  beforeAll(async () => {
    admin = new Redis(url);
    monitor = await admin.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((a) => a.includes(prefix))) seen.push(args);
    });
    storeA = new RedisStore({ redis: createRedisClient(url), keyPrefix: prefix });
    storeB = new RedisStore({ redis: createRedisClient(url), keyPrefix: prefix });
  });
  afterAll(async () => {
    monitor?.disconnect();
    await storeA?.close();
    await storeB?.close();
    if (admin) {
      await deleteRedisKeys(admin, prefix);
      admin.disconnect();
    }
  });

  /** Waits until MONITOR has reported nothing new for 150 ms (at most 2 s). */
  async function quiet(): Promise<void> {
    const deadline = Date.now() + 2000;
    for (let before = -1; before !== seen.length && Date.now() < deadline; ) {
      before = seen.length;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  }

  /** The commands (names) one turn sent, as MONITOR reports them. */
  async function commandsOf(turn: () => Promise<unknown>): Promise<string[]> {
    await quiet();
    seen.length = 0;
    await turn();
    await quiet();
    return seen.map((args) => (args[0] ?? '').toUpperCase());
  }

  it('start <= 2, continue = 1, end <= 2, on the process that handled the previous turn', async () => {
    const engine = new DialogEngine({ router, store: storeA, ttlSeconds: 60 });
    const u = 'oRoundTrips1';
    const start = await commandsOf(() => engine.handle(textFrom(u, '累加器')));
    const continue1 = await commandsOf(() => engine.handle(textFrom(u, '2')));
    const continue2 = await commandsOf(() => engine.handle(textFrom(u, '5')));
    const end = await commandsOf(() => engine.handle(textFrom(u, '6')));
    console.log(`[round trips] start ${start.join('+')}, continue ${continue1.join('+')}, continue ${continue2.join('+')}, end ${end.join('+')}`);
    expect(start.length).toBeLessThanOrEqual(2);
    expect(continue1).toHaveLength(1);
    expect(continue2).toHaveLength(1);
    expect(end.length).toBeLessThanOrEqual(2);
  });

  it('on alternating processes (the other one\'s view is stale), a turn still costs at most two', async () => {
    const processA = new DialogEngine({ router, store: storeA, ttlSeconds: 60 });
    const processB = new DialogEngine({ router, store: storeB, ttlSeconds: 60 });
    const u = 'oRoundTrips2';
    // Setup turns go through commandsOf too, so their MONITOR lines are in before counting starts.
    await commandsOf(() => processA.handle(textFrom(u, '累加器')));
    await commandsOf(() => processB.handle(textFrom(u, '3')));
    const counts: number[] = [];
    for (const [engine, content] of [[processA, '1'], [processB, '2'], [processA, '3']] as const) {
      counts.push((await commandsOf(() => engine.handle(textFrom(u, content)))).length);
    }
    console.log(`[round trips] alternating processes: ${counts.join(', ')}`);
    for (const n of counts) expect(n).toBeLessThanOrEqual(2);
  });
});
