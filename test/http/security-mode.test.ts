/**
 * Security mode (安全模式) and compatible mode (兼容模式) over HTTP: encrypted pushes are checked
 * with msg_signature, decrypted, answered encrypted; every rejection leaves the state as it was.
 */
import { randomBytes } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import type { DialogState, StateKey } from '../../src/dialog/store/store.js';
import { createApp } from '../../src/http/app.js';
import { computeMsgSignature, decryptMessage, encryptMessage, parseEncodingAESKey } from '../../src/wechat/crypto.js';
import { SAFE_XML_PARSER_OPTIONS } from '../../src/wechat/xml.js';
import { ACCOUNT, listenOnLoopback, parseReply, signedQuery, textXml, TOKEN, type TestServer } from '../support/http.js';

const APP_ID = 'wx0123456789abcdef';
const ENCODING_AES_KEY = newEncodingAESKey();
const KEY = parseEncodingAESKey(ENCODING_AES_KEY);
const envelopeParser = new XMLParser(SAFE_XML_PARSER_OPTIONS);

/** The query and body WeChat sends for `plaintextXml` in security mode. */
function encryptedPush(openid: string, plaintextXml: string, options: { appId?: string; msgSignature?: string; key?: Buffer } = {}) {
  const query = new URLSearchParams(signedQuery(openid).slice(1));
  const encrypt = encryptMessage({ key: options.key ?? KEY, appId: options.appId ?? APP_ID, plaintext: plaintextXml });
  query.set('encrypt_type', 'aes');
  query.set('msg_signature', options.msgSignature ?? computeMsgSignature(TOKEN, query.get('timestamp')!, query.get('nonce')!, encrypt));
  const body = `<xml><ToUserName><![CDATA[${ACCOUNT}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  return { query: `?${query.toString()}`, body, encrypt };
}

/** Checks the reply envelope's signature and decrypts it (with `key`) to the reply XML. */
function openEnvelope(xml: string, key = KEY): string {
  const { xml: envelope } = envelopeParser.parse(xml) as { xml: Record<string, string> };
  const { Encrypt, MsgSignature, TimeStamp, Nonce } = envelope as Record<string, string>;
  expect(MsgSignature).toBe(computeMsgSignature(TOKEN, String(TimeStamp), String(Nonce), String(Encrypt)));
  return decryptMessage({ key, appId: APP_ID, encrypt: String(Encrypt) });
}

/** A fresh random EncodingAESKey (43 letters or digits). */
function newEncodingAESKey(): string {
  let key = '';
  while (key.length < 43) key += randomBytes(64).toString('base64').replace(/[^A-Za-z0-9]/g, '');
  return key.slice(0, 43);
}

function serve(store: MemoryStore, required: boolean): Promise<TestServer> {
  const logger = pino({ level: 'silent' });
  const engine = new DialogEngine({ router, store });
  return listenOnLoopback(
    createApp({ token: TOKEN, engine, logger, security: { appId: APP_ID, encodingAESKey: ENCODING_AES_KEY, required } }),
  );
}

describe('security mode (安全模式) and compatible mode (兼容模式)', () => {
  const store = new MemoryStore({ sweepIntervalMs: 0 });
  let server: TestServer;
  let strict: TestServer;
  const openid = 'oSecure000000000000000000001';
  const key: StateKey = { account: ACCOUNT, openid };
  let before: DialogState | undefined;
  const post = (target: TestServer, query: string, body: string) => fetch(`${target.url}/wechat${query}`, { method: 'POST', body });
  const say = async (content: string) => {
    const push = encryptedPush(openid, textXml(openid, content));
    const response = await post(server, push.query, push.body);
    expect(response.status).toBe(200);
    return parseReply(openEnvelope(await response.text())).Content;
  };

  beforeAll(async () => {
    server = await serve(store, false);
    strict = await serve(store, true);
  });
  afterAll(async () => {
    await server.close();
    await strict.close();
    await store.close();
  });
  beforeEach(async () => {
    await store.delete(key);
    expect(await say('累加器')).toBe('您需要累加几个数字？');
    before = await store.load(key);
  });

  it('holds a whole conversation encrypted: each reply is a signed envelope that decrypts to the reply XML', async () => {
    expect(await say('2')).toBe('请输入第1个数字, 目前累加和:0');
    expect(await say('40')).toBe('请输入第2个数字, 目前累加和:40');
    expect(await say('2')).toBe('累加结束，累加和: 42');
  });

  it('a wrong msg_signature gets 401 and touches no state', async () => {
    const push = encryptedPush(openid, textXml(openid, '2'), { msgSignature: '0'.repeat(40) });
    const response = await post(server, push.query, push.body);
    expect(response.status).toBe(401);
    expect(await response.text()).toBe('invalid msg_signature');
    expect(await store.load(key)).toEqual(before);
  });

  type Mutate = (query: string, body: string, encrypt: string) => [string, string];
  it.each<[string, Mutate, { appId?: string }]>([
    ['another AppID', (q, b) => [q, b], { appId: 'wxffffffffffffffff' }],
    ['a truncated ciphertext', (q, b, e) => [q, b.replace(e, e.slice(0, 24))], {}],
    ['no Encrypt element', (q) => [q, textXml(openid, '2')], {}],
  ])('%s: 4xx, a short text, no state change', async (_name, mutate, options) => {
    const push = encryptedPush(openid, textXml(openid, '2'), options);
    const [query, body] = mutate(push.query, push.body, push.encrypt);
    const response = await post(server, query, body);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect((await response.text()).length).toBeLessThan(200);
    expect(await store.load(key)).toEqual(before);
  });

  it('a truncated ciphertext with a matching msg_signature gets 400 (cannot decrypt)', async () => {
    const push = encryptedPush(openid, textXml(openid, '2'));
    const short = push.encrypt.slice(0, 24);
    const query = new URLSearchParams(push.query.slice(1));
    query.set('msg_signature', computeMsgSignature(TOKEN, query.get('timestamp')!, query.get('nonce')!, short));
    const response = await post(server, `?${query.toString()}`, push.body.replace(push.encrypt, short));
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/^cannot decrypt: /);
    expect(await store.load(key)).toEqual(before);
  });

  it('compatible mode: a plaintext push still works when encryption is not required', async () => {
    const response = await post(server, signedQuery(openid), textXml(openid, '1'));
    expect(parseReply(await response.text()).Content).toBe('请输入第1个数字, 目前累加和:0');
  });

  it('WECHAT_REQUIRE_ENCRYPTION: a plaintext push gets 400 and touches no state; encrypted ones work', async () => {
    const response = await post(strict, signedQuery(openid), textXml(openid, '1'));
    expect(response.status).toBe(400);
    expect(await store.load(key)).toEqual(before);
    const push = encryptedPush(openid, textXml(openid, '1'));
    expect(parseReply(openEnvelope(await (await post(strict, push.query, push.body)).text())).Content).toBe('请输入第1个数字, 目前累加和:0');
  });

  it('the GET echostr handshake stays plain in security mode', async () => {
    const q = new URLSearchParams(signedQuery().slice(1));
    q.set('echostr', 'plain-echo');
    q.set('encrypt_type', 'aes');
    expect(await (await fetch(`${server.url}/wechat?${q.toString()}`)).text()).toBe('plain-echo');
  });

  it('an encrypted push to a server without security mode gets 400 saying what to set', async () => {
    const plainStore = new MemoryStore({ sweepIntervalMs: 0 });
    const plainServer = await listenOnLoopback(
      createApp({ token: TOKEN, engine: new DialogEngine({ router, store: plainStore }), logger: pino({ level: 'silent' }) }),
    );
    try {
      const push = encryptedPush(openid, textXml(openid, '2'));
      const response = await post(plainServer, push.query, push.body);
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/WECHAT_APPID and WECHAT_ENCODING_AES_KEY/);
    } finally {
      await plainServer.close();
      await plainStore.close();
    }
  });
});

describe('changing the EncodingAESKey: the previous key keeps working (WECHAT_ENCODING_AES_KEY_PREVIOUS)', () => {
  const NEW_KEY = newEncodingAESKey();
  const store = new MemoryStore({ sweepIntervalMs: 0 });
  let server: TestServer;
  beforeAll(async () => {
    const engine = new DialogEngine({ router, store });
    const security = { appId: APP_ID, encodingAESKey: NEW_KEY, previousEncodingAESKey: ENCODING_AES_KEY, required: true };
    server = await listenOnLoopback(createApp({ token: TOKEN, engine, logger: pino({ level: 'silent' }), security }));
  });
  afterAll(async () => {
    await server.close();
    await store.close();
  });
  const send = async (openid: string, content: string, key: Buffer) => {
    const push = encryptedPush(openid, textXml(openid, content), { key });
    return fetch(`${server.url}/wechat${push.query}`, { method: 'POST', body: push.body });
  };

  it('one dialog goes on across the switch; each reply is encrypted with the key its push used', async () => {
    const openid = 'oRotate00000000000000000001';
    const before = await send(openid, '累加器', KEY);
    expect(parseReply(openEnvelope(await before.text(), KEY)).Content).toBe('您需要累加几个数字？');
    const after = await send(openid, '1', parseEncodingAESKey(NEW_KEY));
    expect(parseReply(openEnvelope(await after.text(), parseEncodingAESKey(NEW_KEY))).Content).toBe('请输入第1个数字, 目前累加和:0');
  });

  it('a push under neither key gets 400 and touches no state', async () => {
    const openid = 'oRotate00000000000000000002';
    const response = await send(openid, '累加器', parseEncodingAESKey(newEncodingAESKey()));
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/^cannot decrypt: /);
    expect(await store.load({ account: ACCOUNT, openid })).toBeUndefined();
  });
});
