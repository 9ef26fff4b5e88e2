/**
 * Pushes and late replies across server processes on one real Redis (issue 13): the durable
 * delivery queue (BullMQ) sends from whichever process is alive. A dialog a push started on one
 * process is continued by the user's message on another; a process killed between the commit of a
 * late turn and the send of its reply still gets that reply to the user, exactly once.
 *
 * Needs REDIS_URL (CI: redis://127.0.0.1:6379/15); every key lives under a random prefix deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeWeChatApi, type FakeWeChatApi } from '../support/fake-wechat-api.js';
import { ACCOUNT, parseReply, signedQuery, textXml } from '../support/http.js';
import { deleteRedisKeys, ServerGroup, type ServerProcess } from '../support/processes.js';

const REDIS_URL = process.env.REDIS_URL ?? '';
const TOKEN = `push${randomBytes(4).toString('hex')}`;
const PUSH_KEY = `orders-key-${randomBytes(8).toString('hex')}`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function baseEnv(api: FakeWeChatApi, keyPrefix: string): Record<string, string> {
  return {
    WECHAT_TOKEN: TOKEN,
    REDIS_URL,
    REDIS_KEY_PREFIX: keyPrefix,
    LOG_LEVEL: 'warn',
    WECHAT_APPID: 'wx0123456789abcdef',
    WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef',
    WECHAT_API_BASE: api.url,
    DELIVERY_GRACE_MS: '1500',
  };
}

async function post(server: ServerProcess, openid: string, content: string, msgId?: string): Promise<string> {
  const response = await fetch(`${server.url}${signedQuery(openid, TOKEN)}`, { method: 'POST', body: textXml(openid, content, msgId) });
  expect(response.status).toBe(200);
  return response.text();
}

function pushUrl(server: ServerProcess, path = ''): string {
  return `${server.url.replace(/\/wechat$/, '/push')}${path}`;
}

describe.runIf(Boolean(REDIS_URL))('pushes and late replies on several processes sharing one Redis', () => {
  let api: FakeWeChatApi;
  let keyPrefix: string;
  const groups: ServerGroup[] = [];
  beforeAll(async () => {
    api = await startFakeWeChatApi();
  });
  afterAll(async () => {
    await api.close();
  });
  beforeEach(() => {
    keyPrefix = `test:push:${randomBytes(6).toString('hex')}:`;
    api.sent.length = 0;
  });
  afterEach(async () => {
    for (const group of groups.splice(0)) await group.stop();
    const redis = new Redis(REDIS_URL);
    try {
      await deleteRedisKeys(redis, keyPrefix);
    } finally {
      redis.disconnect();
    }
  });

  it("a push starts a dialog on one process: its first reply arrives once, and the user's answer on another process continues it", async () => {
    const group = new ServerGroup();
    groups.push(group);
    const [a, b] = (await group.start(2, { env: { ...baseEnv(api, keyPrefix), PUSH_API_KEYS: `orders:${PUSH_KEY}`, WECHAT_ACCOUNT: ACCOUNT } })) as [ServerProcess, ServerProcess];
    const openid = `oPush${randomBytes(6).toString('hex')}`;
    const body = JSON.stringify({ openid, dialog: 'order-confirmation', input: { orderId: '123', total: 88.5 } });
    const headers = { authorization: `Bearer ${PUSH_KEY}`, 'content-type': 'application/json', 'idempotency-key': 'order-123-confirm' };
    const accepted = await fetch(pushUrl(a), { method: 'POST', headers, body });
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as { id: string };
    await api.waitForSent(1, 10_000);
    expect(api.sent[0]?.body).toEqual({ touser: openid, msgtype: 'text', text: { content: '确认订单 #123（88.50 元）？回复 1 确认，2 取消' } });

    // The calling service retries on the other process with the same Idempotency-Key: same push, nothing sent again.
    const again = await fetch(pushUrl(b), { method: 'POST', headers, body });
    expect(again.status).toBe(202);
    expect(((await again.json()) as { id: string }).id).toBe(id);
    const status = await fetch(pushUrl(b, `/${id}`), { headers: { authorization: `Bearer ${PUSH_KEY}` } });
    expect(((await status.json()) as { status: string }).status).toBe('sent');

    expect(parseReply(await post(b, openid, '1')).Content).toBe('订单 #123 已确认，感谢！');
    await sleep(500);
    expect(api.sent).toHaveLength(1);
  }, 60_000);

  it('a process killed between the commit of a late turn and its send: another process sends the reply, exactly once', async () => {
    const survivors = new ServerGroup();
    const doomed = new ServerGroup();
    groups.push(survivors, doomed);
    const env = { ...baseEnv(api, keyPrefix), REPLY_DEADLINE_MS: '100' };
    const router = 'test/support/fixtures/crash-after-late-commit-router.ts';
    const [b] = (await survivors.start(1, { env, router })) as [ServerProcess];
    const [a] = (await doomed.start(1, { env: { ...env, CRASH_AFTER_LATE_COMMIT: '1' }, router })) as [ServerProcess];
    const openid = `oCrash${randomBytes(6).toString('hex')}`;
    const msgId = String(7_400_000_000_000_000_000n + BigInt(Date.now()));
    expect(await post(a, openid, 'hello', msgId)).toBe('success'); // answered at the 100 ms deadline
    expect(await a.exited).toBe('SIGKILL'); // right after the late turn's commit, before its send
    expect(api.sent).toHaveLength(0);

    await api.waitForSent(1, 15_000); // process B takes the delivery over after the grace period
    expect(api.sent[0]?.body).toEqual({ touser: openid, msgtype: 'text', text: { content: '慢慢来，但一定到' } });
    // WeChat retries the message on B: it was handled, its reply went out late, so `success`.
    expect(await post(b, openid, 'hello', msgId)).toBe('success');
    await sleep(2_500);
    expect(api.sent).toHaveLength(1);
  }, 60_000);
});
