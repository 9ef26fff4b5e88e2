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

describe('startServer with late replies (WECHAT_APPSECRET)', () => {
  it('answers a slow turn success and sends its reply through the fake WeChat API, with the token shared through the store', async () => {
    const api = await startFakeWeChatApi();
    const [port] = await freePorts(1);
    const env: Record<string, string> = {
      WECHAT_TOKEN: TOKEN,
      HOST: '127.0.0.1',
      PORT: String(port),
      WECHAT_APPID: 'wx0123456789abcdef',
      WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef',
      REPLY_DEADLINE_MS: '150',
      WECHAT_API_BASE: api.url,
      REDIS_KEY_PREFIX: uniqueKeyPrefix(),
      LOG_LEVEL: 'silent',
    };
    if (process.env.REDIS_URL) env['REDIS_URL'] = process.env.REDIS_URL; // the token then lives in Redis
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
          await redis.del(key);
        } finally {
          redis.disconnect();
        }
      }
    } finally {
      await server.close();
      await api.close();
    }
  });
});
