import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { defineDialog, record } from '../src/dialog/dialog.js';
import { createRouter } from '../src/dialog/router.js';
import { createRedisClient } from '../src/dialog/store/redis-client.js';
import { startServer, throttledWarning } from '../src/server.js';
import { text } from '../src/wechat/replies.js';
import { startFakeWeChatApi } from './support/fake-wechat-api.js';
import { signedQuery, textXml, TOKEN } from './support/http.js';
import { freePorts } from './support/ports.js';
import { deleteRedisKeys } from './support/processes.js';
import { uniqueKeyPrefix } from './support/stores.js';

describe('throttledWarning (Redis connection errors during an outage)', () => {
  it('logs the first error at once, then at most one line per interval with the count left out', () => {
    const lines: Array<{ fields: object; message: string }> = [];
    let clock = 0;
    const warn = throttledWarning({ warn: (fields: object, message: string) => lines.push({ fields, message }) } as never, 'Redis connection error', 30_000, () => clock);
    warn(new Error('ECONNREFUSED 1'));
    for (let i = 0; i < 20; i += 1) {
      clock += 1000;
      warn(new Error(`ECONNREFUSED ${i + 2}`));
    }
    clock += 10_000;
    warn(new Error('ECONNREFUSED last'));
    expect(lines).toEqual([
      { fields: { err: 'ECONNREFUSED 1' }, message: 'Redis connection error' },
      { fields: { err: 'ECONNREFUSED last', skipped: 20 }, message: 'Redis connection error' },
    ]);
  });
});

/**
 * The environment of a server on `port` with an AppID and AppSecret, WeChat's API at `apiBase`, a
 * key prefix of its own, and `REDIS_URL` when the tests have one; plus `extra`.
 */
function serverEnv(apiBase: string, port: number, extra: Record<string, string>): Record<string, string> {
  return {
    WECHAT_TOKEN: TOKEN,
    HOST: '127.0.0.1',
    PORT: String(port),
    WECHAT_APPID: 'wx0123456789abcdef',
    WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef',
    WECHAT_API_BASE: apiBase,
    REDIS_KEY_PREFIX: uniqueKeyPrefix(),
    LOG_LEVEL: 'silent',
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    ...extra,
  };
}

describe('startServer with late replies (WECHAT_APPSECRET)', () => {
  it('answers a slow turn success and sends its reply through the fake WeChat API, with the token shared through the store', async () => {
    const api = await startFakeWeChatApi();
    const [port] = await freePorts(1);
    const env = serverEnv(api.url, port!, { REPLY_DEADLINE_MS: '150' }); // with REDIS_URL, the token lives in Redis
    const config = loadConfig(env);
    const slow = defineDialog('slow', function* () {
      const answer = yield* record(() => new Promise<string>((resolve) => setTimeout(() => resolve('晚到的回复'), 500)));
      return text(answer);
    });
    const server = await startServer(config, pino({ level: 'silent' }), { router: createRouter({ routes: [], fallback: slow }) });
    try {
      const openid = 'oServerLate000000000000001';
      const response = await fetch(`http://127.0.0.1:${port}/wechat${signedQuery(openid)}`, { method: 'POST', body: textXml(openid, 'hi') });
      expect(await response.text()).toBe('success');
      await api.waitForSent(1);
      expect(api.sent[0]).toEqual({ accessToken: 'ACCESS_TOKEN_1', body: { touser: openid, msgtype: 'text', text: { content: '晚到的回复' } } });
      expect(api.tokenRequests).toEqual([{ grant_type: 'client_credential', appid: 'wx0123456789abcdef', secret: env['WECHAT_APPSECRET'], force_refresh: false }]);
      if (process.env.REDIS_URL) {
        const redis = createRedisClient(process.env.REDIS_URL);
        try {
          const key = `${env['REDIS_KEY_PREFIX']}access_token:wx0123456789abcdef`;
          expect(await redis.get(key)).toBe('ACCESS_TOKEN_1');
          expect(await redis.ttl(key)).toBeGreaterThan(7200 - 300 - 10);
        } finally {
          redis.disconnect();
        }
      }
    } finally {
      await server.close();
      await api.close();
      await cleanUp(env['REDIS_KEY_PREFIX'] ?? '');
    }
  });
});

/** Deletes what a server left in the real Redis under `keyPrefix` (the token, the delivery queue, push statuses). */
async function cleanUp(keyPrefix: string): Promise<void> {
  if (!process.env.REDIS_URL) return;
  const redis = new Redis(process.env.REDIS_URL);
  try {
    await deleteRedisKeys(redis, keyPrefix);
  } finally {
    redis.disconnect();
  }
}

describe('startServer with the push API (PUSH_API_KEYS)', () => {
  it('mounts POST /push and GET /push/<id>: a text push is sent once and its status reads sent', async () => {
    const api = await startFakeWeChatApi();
    const [port] = await freePorts(1);
    const key = 'orders-key-0123456789abcdef';
    const env = serverEnv(api.url, port!, { PUSH_API_KEYS: `orders:${key}` }); // with REDIS_URL, the queue is BullMQ on it
    const server = await startServer(loadConfig(env), pino({ level: 'silent' }), { router: createRouter({ routes: [], fallback: null }) });
    try {
      const base = `http://127.0.0.1:${port}/push`;
      const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
      const accepted = await fetch(base, { method: 'POST', headers, body: JSON.stringify({ openid: 'oServerPush00000000000001', text: '您的订单已发货' }) });
      expect(accepted.status).toBe(202);
      const { id } = (await accepted.json()) as { id: string };
      await api.waitForSent(1);
      expect(api.sent[0]?.body).toEqual({ touser: 'oServerPush00000000000001', msgtype: 'text', text: { content: '您的订单已发货' } });
      let status = '';
      for (let i = 0; i < 50 && status !== 'sent'; i += 1) {
        status = (((await (await fetch(`${base}/${id}`, { headers })).json()) as { status: string }).status);
        if (status !== 'sent') await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(status).toBe('sent');
      expect((await fetch(base, { method: 'POST', body: '{}' })).status).toBe(401);
    } finally {
      await server.close();
      await api.close();
      await cleanUp(env['REDIS_KEY_PREFIX'] ?? '');
    }
  });
});
