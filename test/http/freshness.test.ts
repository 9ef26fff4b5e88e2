/**
 * The freshness window (issue 10, item 1): in plaintext mode the signature covers only the Token,
 * `timestamp` and `nonce`, so one captured query string signs any body. A push whose `timestamp`
 * is too far from the server's clock is refused (401) before its body is read; in security mode so
 * is one whose decrypted `CreateTime` is.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { createApp } from '../../src/http/app.js';
import { computeMsgSignature, encryptMessage, parseEncodingAESKey } from '../../src/wechat/crypto.js';
import { computeSignature } from '../../src/wechat/signature.js';
import { ACCOUNT, listenOnLoopback, messageXml, nextMsgId, parseReply, textXml, TOKEN, type TestServer } from '../support/http.js';

const APP_ID = 'wx0123456789abcdef';
const ENCODING_AES_KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';

interface LogLine {
  msg: string;
  skewSeconds?: number;
  maxAgeSeconds?: number;
}

/** A query signed as WeChat signs it, with the `timestamp` given (Unix seconds). */
function queryAt(timestamp: number, openid: string): URLSearchParams {
  const nonce = String(Math.floor(Math.random() * 2 ** 31));
  const signature = computeSignature(TOKEN, String(timestamp), nonce);
  return new URLSearchParams({ signature, timestamp: String(timestamp), nonce, openid });
}

describe('the freshness window', () => {
  const store = new MemoryStore({ sweepIntervalMs: 0 });
  const lines: LogLine[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
  let server: TestServer;
  let unchecked: TestServer;
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  beforeAll(async () => {
    const security = { appId: APP_ID, encodingAESKey: ENCODING_AES_KEY, required: false };
    server = await listenOnLoopback(createApp({ token: TOKEN, engine: new DialogEngine({ router, store }), logger, security }));
    unchecked = await listenOnLoopback(
      createApp({ token: TOKEN, engine: new DialogEngine({ router, store }), logger: pino({ level: 'silent' }), maxAgeSeconds: 0 }),
    );
  });
  afterAll(async () => {
    await server.close();
    await unchecked.close();
    await store.close();
  });

  const post = (target: TestServer, query: URLSearchParams, body: string) => fetch(`${target.url}/wechat?${query.toString()}`, { method: 'POST', body });

  it('an hour-old signed push is refused with 401 and a log line giving the skew; no state is touched', async () => {
    const openid = 'oFresh00000000000000000001';
    lines.length = 0;
    const response = await post(server, queryAt(nowSeconds() - 3600, openid), textXml(openid, '累加器'));
    expect(response.status).toBe(401);
    expect(await response.text()).toBe('stale timestamp');
    expect(await store.load({ account: ACCOUNT, openid })).toBeUndefined();
    // Whole seconds: the server's clock may have ticked on since the query was signed.
    const refusal = lines.find((line) => typeof line['skewSeconds'] === 'number');
    expect(refusal).toMatchObject({ maxAgeSeconds: 300 });
    expect(refusal?.['skewSeconds']).toBeGreaterThanOrEqual(3600);
    expect(refusal?.['skewSeconds']).toBeLessThanOrEqual(3602);
    expect(lines.at(-1)?.msg).toMatch(/outside the freshness window/);
  });

  it('a timestamp from the future, or not a number, is refused too', async () => {
    const openid = 'oFresh00000000000000000002';
    expect((await post(server, queryAt(nowSeconds() + 600, openid), textXml(openid, 'x'))).status).toBe(401);
    const notNumber = new URLSearchParams({ timestamp: 'soon', nonce: '1', openid });
    notNumber.set('signature', computeSignature(TOKEN, 'soon', '1'));
    const response = await post(server, notNumber, textXml(openid, 'x'));
    expect(response.status).toBe(401);
    expect(await response.text()).toBe('stale timestamp');
  });

  it('a push within the window is answered (a few minutes of clock skew are fine)', async () => {
    const openid = 'oFresh00000000000000000003';
    const response = await post(server, queryAt(nowSeconds() - 290, openid), textXml(openid, '累加器'));
    expect(response.status).toBe(200);
    expect(parseReply(await response.text()).Content).toBe('您需要累加几个数字？');
  });

  it('with maxAgeSeconds 0 the check is off (unsafe, but possible)', async () => {
    const openid = 'oFresh00000000000000000004';
    const response = await post(unchecked, queryAt(1, openid), textXml(openid, '累加器'));
    expect(response.status).toBe(200);
  });

  it('in security mode, an old push in a fresh envelope is refused by its decrypted CreateTime', async () => {
    const openid = 'oFresh00000000000000000005';
    const old = messageXml({ ToUserName: ACCOUNT, FromUserName: openid, CreateTime: nowSeconds() - 3600, MsgType: 'text', Content: '累加器', MsgId: nextMsgId() });
    const query = queryAt(nowSeconds(), openid);
    const encrypt = encryptMessage({ key: parseEncodingAESKey(ENCODING_AES_KEY), appId: APP_ID, plaintext: old });
    query.set('encrypt_type', 'aes');
    query.set('msg_signature', computeMsgSignature(TOKEN, query.get('timestamp')!, query.get('nonce')!, encrypt));
    const response = await post(server, query, `<xml><ToUserName><![CDATA[${ACCOUNT}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`);
    expect(response.status).toBe(401);
    expect(await response.text()).toBe('stale message');
    expect(await store.load({ account: ACCOUNT, openid })).toBeUndefined();
  });
});
