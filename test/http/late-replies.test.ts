/**
 * WeChat's clock (design.md): a turn still running at the deadline is answered `success` at once,
 * and its reply reaches the user as a customer-service message (客服消息) when the turn ends.
 * WeChat's API is a fake on 127.0.0.1.
 */
import express from 'express';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defineDialog, record } from '../../src/dialog/dialog.js';
import { createRouter } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { wechatDialog, type WechatDialogMiddleware } from '../../src/http/wechat-dialog.js';
import { news, text, transferCustomerService } from '../../src/wechat/replies.js';
import { startFakeWeChatApi, type FakeWeChatApi } from '../support/fake-wechat-api.js';
import { listenOnLoopback, parseReply, signedQuery, textXml, TOKEN, type TestServer } from '../support/http.js';

const DEADLINE_MS = 150;
const SLOW_MS = 600;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `slow N`: works for SLOW_MS (a recorded effect, like an HTTP call), then asks for a second number. */
const slow = defineDialog('slow', function* (first) {
  const label = yield* record(async () => {
    await sleep(SLOW_MS);
    return first.MsgType === 'text' ? first.Content.slice(5) : '';
  });
  const next = yield text(`查好了：${label}。再发一个数字`);
  return text(`收到 ${next.MsgType === 'text' ? next.Content : '?'}`);
});
const slowNews = defineDialog('slow-news', function* () {
  yield* record(() => sleep(SLOW_MS).then(() => null));
  return news([
    { Title: 'T1', Description: 'D1', PicUrl: 'https://p/1', Url: 'https://u/1' },
    { Title: 'T2', Description: 'D2', PicUrl: 'https://p/2', Url: 'https://u/2' },
  ]);
});
const slowTransfer = defineDialog('slow-transfer', function* () {
  yield* record(() => sleep(SLOW_MS).then(() => null));
  return transferCustomerService();
});
const router = createRouter({
  routes: [
    { match: { text: /^slow / }, dialog: slow },
    { match: { text: 'slow-news' }, dialog: slowNews },
    { match: { text: 'slow-transfer' }, dialog: slowTransfer },
  ],
  fallback: defineDialog('fast', function* (first) {
    return text(`fast: ${first.MsgType === 'text' ? first.Content : ''}`);
  }),
});

describe('late replies as customer-service messages', () => {
  let api: FakeWeChatApi;
  let server: TestServer;
  let middleware: WechatDialogMiddleware;
  const logger = pino({ level: process.env.LOG_TESTS ? 'debug' : 'silent' });
  /** The middleware as a host app mounts it: late replies through its delivery queue (in-process: no Redis store here). */
  const mount = (): WechatDialogMiddleware =>
    wechatDialog({
      token: TOKEN,
      router,
      store: new MemoryStore({ sweepIntervalMs: 0 }),
      logger,
      appId: 'wx0123456789abcdef',
      appSecret: 'APPSECRET0123456',
      apiBase: api.url,
      replyDeadlineMs: DEADLINE_MS,
      delivery: { attempts: 2, backoffMs: 10 },
    });
  beforeAll(async () => {
    api = await startFakeWeChatApi();
    middleware = mount();
    const app = express();
    app.use('/wechat', middleware);
    server = await listenOnLoopback(app);
  });
  afterAll(async () => {
    await server.close();
    await middleware.close();
    await api.close();
  });
  beforeEach(() => {
    api.sent.length = 0;
    api.sendErrors.length = 0;
  });

  const postXml = async (openid: string, xml: string) => {
    const startedAt = performance.now();
    const response = await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: xml });
    return { status: response.status, body: await response.text(), ms: performance.now() - startedAt };
  };
  const post = (openid: string, content: string) => postXml(openid, textXml(openid, content));

  it('a slow turn is answered success at the deadline, and its reply follows as a customer-service message', async () => {
    const openid = 'oLate0000000000000000000001';
    const pushed = textXml(openid, 'slow 天气');
    const answer = await postXml(openid, pushed);
    expect(answer).toMatchObject({ status: 200, body: 'success' });
    expect(answer.ms).toBeLessThan(SLOW_MS);
    await api.waitForSent(1);
    expect(api.sent).toEqual([
      { accessToken: 'ACCESS_TOKEN_1', body: { touser: openid, msgtype: 'text', text: { content: '查好了：天气。再发一个数字' } } },
    ]);
    // WeChat retries the push anyway (our success reached it late): no second copy, passive or not.
    const retried = await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: pushed });
    expect(await retried.text()).toBe('success');
    // The turn was committed: the dialog goes on, and this fast turn is a passive reply again.
    const next = await post(openid, '7');
    expect(parseReply(next.body).Content).toBe('收到 7');
    expect(api.sent).toHaveLength(1);
  });

  it('close() waits for a late turn still running: its reply has been sent when close() resolves (a shutdown loses nothing)', async () => {
    const own = mount();
    const app = express();
    app.use('/wechat', own);
    const alone = await listenOnLoopback(app);
    const openid = 'oLate0000000000000000000008';
    const answer = await fetch(`${alone.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: textXml(openid, 'slow 航班') });
    expect(await answer.text()).toBe('success');
    await alone.close();
    expect(api.sent).toHaveLength(0); // the turn is still running
    await own.close();
    expect(api.sent.map((m) => m.body['text'])).toEqual([{ content: '查好了：航班。再发一个数字' }]);
  });

  it('a fast turn is a passive reply and sends nothing', async () => {
    const answer = await post('oLate0000000000000000000002', 'hello');
    expect(parseReply(answer.body).Content).toBe('fast: hello');
    await sleep(50);
    expect(api.sent).toHaveLength(0);
  });

  it('a token WeChat refuses (40001) is replaced and the message sent once', async () => {
    api.sendErrors.push(40001);
    const tokensBefore = api.tokenRequests.length;
    const openid = 'oLate0000000000000000000003';
    expect((await post(openid, 'slow 车次')).body).toBe('success');
    await api.waitForSent(1);
    expect(api.sent).toHaveLength(1);
    expect(api.sent[0]!.body).toMatchObject({ touser: openid, text: { content: '查好了：车次。再发一个数字' } });
    expect(api.tokenRequests.length).toBe(tokensBefore + 1);
    expect(api.sent[0]!.accessToken).not.toBe('ACCESS_TOKEN_1');
  });

  it('system busy (-1) is retried with backoff', async () => {
    api.sendErrors.push(-1);
    expect((await post('oLate0000000000000000000004', 'slow x')).body).toBe('success');
    await api.waitForSent(1);
    expect(api.sent).toHaveLength(1);
  });

  it('outside the window (45015) is not retried: nothing is sent, the server carries on', async () => {
    api.sendErrors.push(45015, 45015);
    expect((await post('oLate0000000000000000000005', 'slow x')).body).toBe('success');
    await sleep(SLOW_MS + 200);
    expect(api.sent).toHaveLength(0);
    expect(api.sendErrors).toEqual([45015]); // one attempt only
    expect(parseReply((await post('oLate0000000000000000000005', '1')).body).Content).toBe('收到 1');
  });

  it('a late news reply keeps its first article; a late transfer_customer_service sends nothing', async () => {
    expect((await post('oLate0000000000000000000006', 'slow-news')).body).toBe('success');
    await api.waitForSent(1);
    expect(api.sent[0]!.body).toEqual({
      touser: 'oLate0000000000000000000006',
      msgtype: 'news',
      news: { articles: [{ title: 'T1', description: 'D1', url: 'https://u/1', picurl: 'https://p/1' }] },
    });
    expect((await post('oLate0000000000000000000007', 'slow-transfer')).body).toBe('success');
    await sleep(SLOW_MS + 200);
    expect(api.sent).toHaveLength(1);
  });
});
