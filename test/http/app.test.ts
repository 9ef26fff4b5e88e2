/**
 * The HTTP surface WeChat sees: the GET handshake, signature checks on every POST, bad bodies,
 * oversize bodies, a throwing dialog. Every rejection is checked for its status, its body, and
 * that the user's dialog state did not change. Runs on every store.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { defineDialog } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRouter } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import type { DialogState, StateKey } from '../../src/dialog/store/store.js';
import { createApp } from '../../src/http/app.js';
import { text } from '../../src/wechat/replies.js';
import { ACCOUNT, listenOnLoopback, messageXml, parseReply, serveDialogs, signedQuery, textXml, TOKEN, type TestServer } from '../support/http.js';
import { protocolVectors } from '../support/shared.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

const counter = defineDialog('counter', function* () {
  let n = 0;
  for (;;) {
    const message = yield text(`count ${n}`);
    if (message.MsgType === 'text' && message.Content === 'boom') throw new Error('dialog bug');
    n += 1;
  }
});
const router = createRouter({ routes: [{ match: { text: 'count' }, dialog: counter }], fallback: null });

const vectors = protocolVectors();

/** `xml` with `<!DOCTYPE x [<!ENTITY e "AAA…">]>` (1,000 characters) hidden between two attribute values. */
const hiddenDtd = (xml: string) => xml.replace('<xml>', `<xml><P a="<![CDATA["/><!DOCTYPE x [<!ENTITY e "${'A'.repeat(1_000)}">]><Q b="]]>"/>`);

describe.each(storeFactories())('HTTP app on $name', (factory) => {
  let store: StoreUnderTest;
  let server: TestServer;
  const openid = 'oUser000000000000000000000001';
  const key: StateKey = { account: ACCOUNT, openid };
  let before: DialogState | undefined;

  const post = (body: string, query = signedQuery(openid), headers: Record<string, string> = {}) =>
    fetch(`${server.url}/wechat${query}`, { method: 'POST', headers: { 'content-type': 'text/xml', ...headers }, body });

  beforeAll(async () => {
    store = await factory.create();
    server = await serveDialogs(router, store.store, 60);
  });
  afterAll(async () => {
    await server?.close();
    await store?.cleanup();
  });
  beforeEach(async () => {
    await store.store.delete(key);
    // An active dialog with two messages: every rejected request below must leave it exactly so.
    expect(parseReply(await (await post(textXml(openid, 'count'))).text()).Content).toBe('count 0');
    expect(parseReply(await (await post(textXml(openid, 'x'))).text()).Content).toBe('count 1');
    before = await store.store.load(key);
    expect(before?.messages).toHaveLength(2);
  });
  const expectStateUnchanged = async () => expect(await store.store.load(key)).toEqual(before);

  describe('GET (server URL verification)', () => {
    it('answers echostr verbatim as text/plain for the official vector', async () => {
      const v = vectors.signature.find((s) => s.id === 'official-url-verify-get');
      expect(v?.token).toBe('AAAAA');
      const engine = new DialogEngine({ router, store: store.store });
      const official = await listenOnLoopback(createApp({ token: v!.token, engine, logger: pino({ level: 'silent' }) }));
      try {
        const q = new URLSearchParams({ signature: v!.signature, timestamp: v!.timestamp, nonce: v!.nonce, echostr: v!.echostr! });
        const response = await fetch(`${official.url}/wechat?${q.toString()}`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
        expect(await response.text()).toBe(v!.expected_response_body);
      } finally {
        await official.close();
      }
    });

    it('answers 401 and no echostr for a wrong or missing signature', async () => {
      const wrong = signedQuery(undefined, 'othertoken') + '&echostr=hello';
      const response = await fetch(`${server.url}/wechat${wrong}`);
      expect(response.status).toBe(401);
      expect(await response.text()).not.toContain('hello');
      expect((await fetch(`${server.url}/wechat?echostr=hello`)).status).toBe(401);
    });

    it('answers 400 when echostr is missing', async () => {
      const response = await fetch(`${server.url}/wechat${signedQuery()}`);
      expect(response.status).toBe(400);
      expect(await response.text()).toBe('echostr is missing');
    });
  });

  describe('POST signature', () => {
    it('a forged signature gets 401, is not parsed, and touches no state', async () => {
      const response = await post(textXml(openid, 'y'), signedQuery(openid, 'forgedtoken'));
      expect(response.status).toBe(401);
      expect(await response.text()).toBe('invalid signature');
      await expectStateUnchanged();
    });

    it('a missing signature, timestamp or nonce gets 401 and touches no state', async () => {
      const full = new URLSearchParams(signedQuery(openid).slice(1));
      for (const name of ['signature', 'timestamp', 'nonce']) {
        const q = new URLSearchParams(full);
        q.delete(name);
        const response = await post(textXml(openid, 'y'), `?${q.toString()}`);
        expect(response.status, name).toBe(401);
      }
      expect((await post(textXml(openid, 'y'), '')).status).toBe(401);
      await expectStateUnchanged();
    });

    it('a repeated signature parameter is not accepted', async () => {
      const q = signedQuery(openid);
      const response = await post(textXml(openid, 'y'), `${q}&signature=${'0'.repeat(40)}`);
      expect(response.status).toBe(401);
      await expectStateUnchanged();
    });
  });

  describe('POST bodies that are not WeChat messages', () => {
    const bad: Array<[string, string]> = [
      ['empty', ''],
      ['not XML', 'hello'],
      ['JSON', '{"MsgType":"text"}'],
      ['truncated XML', textXml(openid, 'y').slice(0, 60)],
      ['root not xml', '<msg><MsgType>text</MsgType></msg>'],
      ['no MsgType', messageXml({ ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1700000000, Content: 'y' })],
      ['event without Event', messageXml({ ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1700000000, MsgType: 'event' })],
      ['text without MsgId', messageXml({ ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1700000000, MsgType: 'text', Content: 'y' })],
      ['bad MsgId', messageXml({ ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1700000000, MsgType: 'text', Content: 'y', MsgId: '12a' })],
      ['DOCTYPE with entities', `<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>${textXml(openid, '&b;')}`],
      // Issue 10, item 4: a DTD behind an attribute value that opens a CDATA section, with an entity
      // that expands in Content (the counter would count it) and in FromUserName (the reply's ToUserName).
      ['a DTD hidden behind an attribute value', hiddenDtd(textXml(openid, 'x').replace('<![CDATA[x]]>', '&e;'.repeat(90)))],
      ['a DTD hidden behind an attribute value, expanding in FromUserName', hiddenDtd(textXml(openid, 'x').replace(`<![CDATA[${openid}]]>`, `${openid}${'&e;'.repeat(9)}`))],
      ['a DTD after the root', `${textXml(openid, 'x')}<!DOCTYPE x [<!ENTITY e "e">]>`],
      ['a processing instruction', textXml(openid, 'x').replace('<xml>', '<xml><?xml-stylesheet href="x.xsl"?>')],
      ['an attribute', textXml(openid, 'x').replace('<Content>', '<Content lang="zh">')],
    ];
    it.each(bad)('%s: 400, a short text, no stack trace, no state change', async (_name, body) => {
      const response = await post(body);
      expect(response.status).toBe(400);
      const text = await response.text();
      expect(text).toMatch(/^not a WeChat message: /);
      expect(text.length).toBeLessThan(300);
      expect(text).not.toMatch(/\n\s+at /);
      await expectStateUnchanged();
    });
  });

  describe('ids not in WeChat\'s format (issue 10, item 6)', () => {
    /** Every store method the app calls, by name: a refused push must call none. */
    const calls: string[] = [];
    let spied: TestServer;
    beforeAll(async () => {
      const target = store.store;
      const spy = new Proxy(target, {
        get(object, property) {
          const value: unknown = Reflect.get(object, property, object);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(String(property));
            return (value as (...a: unknown[]) => unknown).apply(object, args);
          };
        },
      });
      spied = await serveDialogs(router, spy, 60);
    });
    afterAll(async () => {
      await spied?.close();
    });
    const postTo = (body: string) =>
      fetch(`${spied.url}/wechat${signedQuery()}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body });
    const push = (to: string, from: string) =>
      messageXml({ ToUserName: to, FromUserName: from, CreateTime: Math.floor(Date.now() / 1000), MsgType: 'text', Content: 'count', MsgId: '7300000000000000001' });

    it.each([
      ['a colon', `${openid}:x`],
      ['an opening brace', `{${openid}`],
      ['a closing brace', `${openid}}`],
      ['braces', `{${openid}}`],
      ['a space', `${openid} x`],
      ['nothing', ''],
      ['65 characters', 'o'.repeat(65)],
    ])('a FromUserName or ToUserName with %s gets 400 and touches no state', async (_name, id) => {
      for (const [body, field] of [
        [push(ACCOUNT, id), 'FromUserName'],
        [push(id, openid), 'ToUserName'],
      ] as const) {
        calls.length = 0;
        const response = await postTo(body);
        expect(response.status).toBe(400);
        expect(await response.text()).toMatch(new RegExp(`^not a WeChat message: ${field} .* is not a WeChat id`));
        expect(calls).toEqual([]);
      }
      await expectStateUnchanged();
    });

    it('of the pairs that would share a key, gh_a + oX:oY and gh_a:oX + oY, neither is accepted', async () => {
      for (const body of [push('gh_a', 'oX:oY'), push('gh_a:oX', 'oY')]) {
        calls.length = 0;
        expect((await postTo(body)).status).toBe(400);
        expect(calls).toEqual([]);
      }
      await expectStateUnchanged();
    });

    it('ids of 1 and 64 characters with _ and - are WeChat ids: the push is handled', async () => {
      for (const [to, from] of [
        ['g', 'u'],
        [`gh_${'a'.repeat(61)}`, `o-_${'9'.repeat(61)}`],
      ] as const) {
        calls.length = 0;
        const response = await postTo(push(to, from));
        expect(response.status).toBe(200);
        expect(parseReply(await response.text())).toMatchObject({ ToUserName: from, FromUserName: to, Content: 'count 0' });
        expect(calls.length).toBeGreaterThan(0);
        await store.store.delete({ account: to, openid: from });
      }
    });
  });

  describe('oversize bodies', () => {
    it('a body over 64 KiB gets 413 and touches no state', async () => {
      const response = await post(textXml(openid, 'y'.repeat(70 * 1024)));
      expect(response.status).toBe(413);
      expect(await response.text()).toMatch(/too large/);
      await expectStateUnchanged();
    });

    it('a body just under the limit is handled', async () => {
      const response = await post(textXml(openid, '长'.repeat(20 * 1024)));
      expect(response.status).toBe(200);
      expect(parseReply(await response.text()).Content).toBe('count 2');
    });
  });

  describe('a dialog that throws', () => {
    it('answers the apology as a text reply, clears the state, and the next message starts afresh', async () => {
      const response = await post(textXml(openid, 'boom'));
      expect(response.status).toBe(200);
      const reply = parseReply(await response.text());
      expect(reply).toMatchObject({ ToUserName: openid, FromUserName: ACCOUNT, MsgType: 'text', Content: '抱歉，出了点问题，请稍后再试。' });
      expect(await store.store.load(key)).toBeUndefined();
      expect(parseReply(await (await post(textXml(openid, 'count'))).text()).Content).toBe('count 0');
    });
  });

  describe('other requests', () => {
    it('answers 405 with Allow for other methods on the path', async () => {
      const response = await fetch(`${server.url}/wechat${signedQuery()}`, { method: 'PUT', body: 'x' });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, POST');
      await expectStateUnchanged();
    });

    it('answers 404 elsewhere', async () => {
      expect((await fetch(`${server.url}/other`)).status).toBe(404);
    });

    it('answers success (200, text/plain) when the router has nothing to say', async () => {
      const response = await post(textXml('oSomeoneElse0000000000000001', 'nothing routes this'));
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('success');
      await expectStateUnchanged();
    });

    it('reads the body whatever the Content-Type says', async () => {
      const response = await post(textXml(openid, 'y'), signedQuery(openid), { 'content-type': 'application/octet-stream' });
      expect(parseReply(await response.text()).Content).toBe('count 2');
    });
  });
});

describe('reply limits WeChat applies silently are logged', () => {
  it('a text reply over 2048 UTF-8 bytes is sent, with a warning naming the dialog', async () => {
    const long = defineDialog('long-text', function* () {
      return text('字'.repeat(700));
    });
    const lines: Array<{ level: number; dialog?: string; msg: string }> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const engine = new DialogEngine({ router: createRouter({ routes: [], fallback: long }), store: new MemoryStore({ sweepIntervalMs: 0 }) });
    const server = await listenOnLoopback(createApp({ token: TOKEN, engine, logger }));
    try {
      const openid = 'oLongText0000000000000000001';
      const response = await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: textXml(openid, 'hi') });
      expect(parseReply(await response.text()).Content).toBe('字'.repeat(700));
      expect(lines).toContainEqual(
        expect.objectContaining({ level: 40, dialog: 'long-text', msg: 'the text reply is 2100 bytes (UTF-8): WeChat may not show a passive text over 2048 bytes' }),
      );
    } finally {
      await server.close();
    }
  });
});
