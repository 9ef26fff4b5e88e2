/**
 * A commit whose answer does not come in time (issue 10, item 2): Redis was slow (here `CLIENT
 * PAUSE … WRITE` holds the commit script past the 1 s command timeout), the script still ran, so the
 * turn happened. The user must get the turn's real reply, not the apology: with the apology they
 * would type the answer again and the dialog would be one step ahead. Runs on a redis-server this
 * test starts itself (a pause would disturb everyone on a shared Redis).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { text } from '../../src/wechat/replies.js';
import { textFrom } from '../support/messages.js';
import { ownRedisSuitesRun, startRedisServer, type RedisServer } from '../support/redis-server.js';

describe.runIf(ownRedisSuitesRun('ambiguous commit suite'))('a commit stalled past the command timeout (real redis-server)', () => {
  let redis: RedisServer;
  let admin: Redis;
  let store: RedisStore;
  let engine: DialogEngine;
  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.url);
    store = new RedisStore({ redis: createRedisClient(redis.url), keyPrefix: 'test:ambiguous:' });
    engine = new DialogEngine({ router, store });
  });
  afterAll(async () => {
    await store?.close();
    admin?.disconnect();
    await redis?.stop();
  });

  it('answers the real reply when the stalled commit did happen, and the dialog is not a step ahead', async () => {
    const openid = 'oAmbiguous0000000000000001';
    expect((await engine.handle(textFrom(openid, '累加器'))).reply).toEqual(text('您需要累加几个数字？'));
    await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const started = performance.now();
    const stalled = await engine.handle(textFrom(openid, '2'));
    expect(performance.now() - started).toBeGreaterThan(1000); // the command timeout did fire
    expect(stalled).toMatchObject({ reply: text('请输入第1个数字, 目前累加和:0'), outcome: 'continued' });
    expect((await engine.handle(textFrom(openid, '40'))).reply).toEqual(text('请输入第2个数字, 目前累加和:40'));
    expect((await engine.handle(textFrom(openid, '2'))).reply).toEqual(text('累加结束，累加和: 42'));
  });

  it('still answers the apology when Redis does not answer at all within the wait', async () => {
    const openid = 'oAmbiguous0000000000000002';
    expect((await engine.handle(textFrom(openid, '累加器'))).reply).toEqual(text('您需要累加几个数字？'));
    await admin.call('CLIENT', 'PAUSE', '4000', 'WRITE');
    try {
      const started = performance.now();
      const result = await engine.handle(textFrom(openid, '2'));
      expect(result.outcome).toBe('failed');
      expect(performance.now() - started).toBeLessThan(4000); // gave up before WeChat's 5 s
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
  });
});
