import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { pushToXml } from '../../src/cli/push-xml.js';
import { createRemoteChat, RemoteChatError, remoteChatOptionsProblem } from '../../src/cli/remote-chat.js';
import { isNoReplyBody, parseReplyXml, readEncryptedReply, ReplyParseError } from '../../src/cli/reply-parser.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { createApp } from '../../src/http/app.js';
import type { SecurityOptions } from '../../src/http/wechat-handler.js';
import { encryptReply, parseEncodingAESKey } from '../../src/wechat/crypto.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { parseMessage } from '../../src/wechat/parser.js';
import { image, music, news, text, transferCustomerService, video, voice, type Reply } from '../../src/wechat/replies.js';
import { replyToXml } from '../../src/wechat/reply-xml.js';
import { listenOnLoopback, type TestServer } from '../support/http.js';
import { findFreePort } from '../support/ports.js';

const TOKEN = 'remotechat123';
const APP_ID = 'wx0123456789abcdef';
const AES_KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const OPENID = 'oTestUser0000000000000000001';
const ACCOUNT = 'gh_test0000000';
const ACCUMULATOR = ['您需要累加几个数字？', '请输入第1个数字, 目前累加和:0', '请输入第2个数字, 目前累加和:40', '累加结束，累加和: 42'];
const SCRIPT = '累加器\n2\n40\n2\n/retry\n/click V1001\n/quit\n';

/** A push as the server received it: its query and raw body. */
interface Received {
  readonly query: URLSearchParams;
  readonly body: string;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * The demo dialogs behind the real app on 127.0.0.1, with every POST recorded (the body is read
 * by `express.text()`, which the WeChat router honours).
 */
async function startServer(options: { security?: SecurityOptions } = {}): Promise<{ url: string; received: Received[] }> {
  const logger = pino({ level: 'silent' });
  const store = new MemoryStore({ sweepIntervalMs: 0 });
  const engine = new DialogEngine({ router, store, ttlSeconds: 60, logger });
  const received: Received[] = [];
  const outer = express();
  outer.use(express.text({ type: () => true }));
  outer.use((req, _res, next) => {
    if (req.method === 'POST') received.push({ query: new URL(req.originalUrl, 'http://x').searchParams, body: String(req.body) });
    next();
  });
  outer.use(createApp({ token: TOKEN, path: '/wechat', engine, logger, ...options }));
  const server = await listenOnLoopback(outer);
  cleanups.push(async () => {
    await server.close();
    await store.close();
  });
  return { url: `${server.url}/wechat`, received };
}

/** A server on 127.0.0.1 that answers every request with `answer`. */
async function startCannedServer(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const testServer: TestServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  cleanups.push(() => testServer.close());
  return `${testServer.url}/wechat`;
}

/** Runs `wechat-dialog chat …` as a user would, with `input` on stdin. */
async function runCli(args: readonly string[], input: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'chat', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, out, err };
}

/** The chat's output split into what follows each prompt (the first entry is the greeting). */
function replies(out: string): string[] {
  return out.split('> ').map((s) => s.trim()).filter((s) => s !== '');
}

describe('npm run chat -- --url: the terminal chat with a running server', () => {
  it('holds the demo conversation over HTTP in plaintext mode, and /retry re-sends the same push', async () => {
    const { url, received } = await startServer();
    const { code, out, err } = await runCli(['--router', 'dialogs/router.ts', '--url', url, '--token', TOKEN], SCRIPT);
    expect(err).toBe('');
    expect(code).toBe(0);
    const lines = replies(out);
    expect(lines[0]).toContain(`sending to ${url} as WeChat would (plaintext mode)`);
    expect(lines.slice(1, 5)).toEqual(ACCUMULATOR);
    expect(lines[5]).toBe(ACCUMULATOR[3]); // the retry gets the same reply again
    expect(lines[6]).toMatch(/^这个公众号是wechat-dialog项目的demo/);

    expect(received).toHaveLength(6);
    for (const push of received) {
      expect([...push.query.keys()].sort()).toEqual(['nonce', 'openid', 'signature', 'timestamp']);
      expect(push.query.get('openid')).toBe(OPENID);
      expect(push.query.get('timestamp')).toMatch(/^\d{10}$/);
    }
    const messages = received.map((push) => parseMessage(push.body));
    expect(messages[0]).toMatchObject({ ToUserName: ACCOUNT, FromUserName: OPENID, MsgType: 'text', Content: '累加器' });
    expect(received[0]!.body).toMatch(/^<xml><ToUserName><!\[CDATA\[gh_test0000000\]\]><\/ToUserName>.*<CreateTime>\d{10}<\/CreateTime>.*<MsgId>\d{19}<\/MsgId><\/xml>$/);
    const ids = messages.slice(0, 4).map((m) => (m.MsgType === 'text' ? m.MsgId : ''));
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(BigInt(id)).toBeGreaterThan(2n ** 53n);
    // The retry: the same push (MsgId, CreateTime), signed anew.
    expect(received[4]!.body).toBe(received[3]!.body);
    expect(received[4]!.query.get('nonce')).not.toBe(received[3]!.query.get('nonce'));
    // An event has no MsgId.
    expect(messages[5]).toEqual({ ToUserName: ACCOUNT, FromUserName: OPENID, CreateTime: expect.any(Number), MsgType: 'event', Event: 'CLICK', EventKey: 'V1001' });
    expect(received[5]!.body).not.toContain('MsgId');
  }, 30_000);

  it('encrypts every push in security mode (the server refuses plaintext) and opens the encrypted replies', async () => {
    const { url, received } = await startServer({ security: { appId: APP_ID, encodingAESKey: AES_KEY, required: true } });
    const args = ['--url', url, '--token', TOKEN, '--aes-key', AES_KEY, '--appid', APP_ID, '--openid', 'oOtherUser00000000000000002', '--account', 'gh_0123456789ab'];
    const { code, out, err } = await runCli(args, SCRIPT);
    expect(err).toBe('');
    expect(code).toBe(0);
    const lines = replies(out);
    expect(lines[0]).toContain(`(security mode, AppID ${APP_ID})`);
    expect(lines[0]).toContain('chatting as oOtherUser00000000000000002');
    expect(lines.slice(1, 6)).toEqual([...ACCUMULATOR, ACCUMULATOR[3]]);
    expect(lines[6]).toMatch(/^这个公众号是wechat-dialog项目的demo/);
    expect(out).not.toContain('warning');

    expect(received).toHaveLength(6);
    for (const push of received) {
      expect(push.query.get('encrypt_type')).toBe('aes');
      expect(push.query.get('msg_signature')).toMatch(/^[0-9a-f]{40}$/);
      expect(push.query.get('signature')).toMatch(/^[0-9a-f]{40}$/);
      expect(push.body).toMatch(/^<xml><ToUserName><!\[CDATA\[gh_0123456789ab\]\]><\/ToUserName><Encrypt><!\[CDATA\[[A-Za-z0-9+/=]+\]\]><\/Encrypt><\/xml>$/);
      expect(push.body).not.toContain('累加器');
    }
  }, 30_000);

  it('shows a refused push as one error line with the HTTP status, and carries on', async () => {
    const { url } = await startServer();
    const { code, out } = await runCli(['--url', url, '--token', 'wrongtoken'], '累加器\n/click V1001\n/retry\n/quit\n');
    expect(code).toBe(0);
    expect(replies(out).slice(1, 4)).toEqual(['error: HTTP 401 invalid signature', 'error: HTTP 401 invalid signature', 'error: HTTP 401 invalid signature']);
  }, 30_000);

  it('shows a server it cannot reach as one error line', async () => {
    const port = await findFreePort();
    const url = `http://127.0.0.1:${port}/wechat`;
    const { code, out } = await runCli(['--url', url, '--token', TOKEN], '累加器\n/retry\n/quit\n');
    expect(code).toBe(0);
    const lines = replies(out);
    expect(lines[1]).toBe(`error: cannot reach ${url}: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(lines[2]).toBe(lines[1]); // the retry of a push that never arrived
  }, 30_000);

  it('refuses a bad combination of options with a one-line usage error (exit 2)', async () => {
    const env = { ...process.env };
    delete env['WECHAT_TOKEN'];
    const cases: [string[], string][] = [
      [['--url', 'http://127.0.0.1:1/wechat', '--token', TOKEN, '--aes-key', AES_KEY], '--aes-key needs --appid <AppID>'],
      [['--url', 'http://127.0.0.1:1/wechat', '--token', TOKEN, '--appid', APP_ID], '--appid is for security mode'],
      [['--url', 'http://127.0.0.1:1/wechat'], 'chat --url needs the Token the server uses: --token <token> or WECHAT_TOKEN'],
      [['--url', 'http://127.0.0.1:1/wechat', '--token', TOKEN, '--aes-key', 'short', '--appid', APP_ID], '--aes-key: EncodingAESKey must be exactly 43 characters'],
      [['--url', '127.0.0.1:3000/wechat', '--token', TOKEN], 'is not'],
      [['--router', 'dialogs/router.ts', '--token', TOKEN], '--token, --aes-key, --appid and --account are for chat --url'],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, '', env)));
    results.forEach(({ code, out, err }, i) => {
      expect(code).toBe(2);
      expect(out).toBe('');
      expect(err.split('\n')[0]).toContain(`wechat-dialog: `);
      expect(err.split('\n')[0]).toContain(cases[i]![1]);
    });
  }, 30_000);

  it('takes the Token from WECHAT_TOKEN', async () => {
    const { url } = await startServer();
    const { code, out } = await runCli(['--url', url], '累加器\n/quit\n', { ...process.env, WECHAT_TOKEN: TOKEN });
    expect(code).toBe(0);
    expect(replies(out)[1]).toBe(ACCUMULATOR[0]);
  }, 30_000);
});

describe('createRemoteChat', () => {
  it('checks its options', () => {
    expect(remoteChatOptionsProblem({ url: 'http://127.0.0.1:3000/wechat', token: TOKEN })).toBeUndefined();
    expect(remoteChatOptionsProblem({ url: 'ftp://127.0.0.1/wechat', token: TOKEN })).toBe('--url must be http: or https:, got ftp:');
    expect(remoteChatOptionsProblem({ url: 'http://127.0.0.1/wechat', token: '' })).toMatch(/needs the Token/);
    expect(remoteChatOptionsProblem({ url: 'http://127.0.0.1/wechat', token: TOKEN, security: { appId: '', encodingAESKey: AES_KEY } })).toMatch(/--appid/);
  });

  it('sends each message type the chat has and reads the replies, in security mode', async () => {
    const { url, received } = await startServer({ security: { appId: APP_ID, encodingAESKey: AES_KEY, required: true } });
    const chat = createRemoteChat({ url, token: TOKEN, security: { appId: APP_ID, encodingAESKey: AES_KEY } });
    await expect(chat.retryLast()).rejects.toMatchObject({ code: 'NOTHING_SENT' });
    expect(await chat.say('累加器')).toEqual(text(ACCUMULATOR[0]!));
    expect(await chat.send({ MsgType: 'event', Event: 'unsubscribe' })).toBeUndefined(); // success: no reply
    expect(await chat.send({ MsgType: 'location', Location_X: '31.2', Location_Y: '121.4', Scale: '15', Label: '上海' })).toMatchObject({ MsgType: 'text' });
    expect(received).toHaveLength(3);
    expect(chat.warnings).toEqual([]);
    await chat.close();
  });

  it('names what is wrong with an answer WeChat would not accept', async () => {
    const address = { ToUserName: OPENID, FromUserName: ACCOUNT, CreateTime: 1_700_000_000 };
    const key = parseEncodingAESKey(AES_KEY);
    const cases: [(req: IncomingMessage, res: ServerResponse) => void, { security?: boolean; error: string | RegExp }][] = [
      [(_q, res) => res.writeHead(500, { 'Content-Type': 'text/html' }).end('<html>\n<h1>Bad gateway</h1></html>'), { error: 'HTTP 500 <html>' }],
      [(_q, res) => res.writeHead(404).end(), { error: 'HTTP 404 Not Found' }],
      [(_q, res) => res.end('success\n'), { error: /^bad reply: the answer is not "success" and not well-formed XML/ }],
      [(_q, res) => res.end('{"reply":"hi"}'), { error: /^bad reply: the answer is not "success" and not well-formed XML/ }],
      [(_q, res) => res.end('<xml><MsgType><![CDATA[text]]></MsgType></xml>'), { error: 'bad reply: CreateTime is missing from the reply' }],
      [(_q, res) => res.end(replyToXml(text('plain'), address)), { security: true, error: /in plaintext; WeChat in security mode needs the encrypted envelope/ }],
      [
        (_q, res) => res.end(encryptReply({ key, appId: APP_ID, token: 'othertoken', plaintextXml: replyToXml(text('x'), address), timestamp: 1_700_000_000, nonce: '1' })),
        { security: true, error: 'bad reply: cannot open the encrypted reply: its MsgSignature does not match (is the Token the same?)' },
      ],
      [
        (_q, res) => res.end(encryptReply({ key, appId: 'wxother', token: TOKEN, plaintextXml: replyToXml(text('x'), address), timestamp: 1_700_000_000, nonce: '1' })),
        { security: true, error: /^bad reply: cannot open the encrypted reply: the \d+-byte id after the message is not the expected AppID$/ },
      ],
    ];
    for (const [answer, { security, error }] of cases) {
      const url = await startCannedServer(answer);
      const chat = createRemoteChat({ url, token: TOKEN, ...(security === true ? { security: { appId: APP_ID, encodingAESKey: AES_KEY } } : {}) });
      const failure = await chat.say('hi').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(RemoteChatError);
      if (typeof error === 'string') expect((failure as Error).message).toBe(error);
      else expect((failure as Error).message).toMatch(error);
    }
  });

  it('warns when the reply ids are not swapped, and gives up on a server that does not answer', async () => {
    const url = await startCannedServer((_req, res) => {
      setTimeout(() => res.end(replyToXml(text('hi'), { ToUserName: ACCOUNT, FromUserName: OPENID, CreateTime: 1_700_000_000 })), 60);
    });
    const chat = createRemoteChat({ url, token: TOKEN });
    expect(await chat.say('hi')).toEqual(text('hi'));
    expect(chat.warnings).toEqual([
      `the reply is addressed from "${OPENID}" to "${ACCOUNT}": expected from the account "${ACCOUNT}" to the user "${OPENID}" (the push's ids swapped)`,
    ]);
    const slow = createRemoteChat({ url, token: TOKEN, timeoutMs: 20 });
    await expect(slow.say('hi')).rejects.toMatchObject({ code: 'TIMEOUT', message: `no answer from ${url} within 0.02 s` });
  });
});

describe('push XML and reply XML', () => {
  const head = { ToUserName: ACCOUNT, FromUserName: OPENID, CreateTime: 1_700_000_000 };
  const messages: InboundMessage[] = [
    { ...head, MsgType: 'text', Content: ' 你好 ]]> <b>&amp; 😀\n', MsgId: '9223372036854775807' },
    { ...head, MsgType: 'text', Content: '007', MsgId: '1', MsgDataId: '2', Idx: '1' },
    { ...head, MsgType: 'image', PicUrl: 'http://example.invalid/p.jpg', MediaId: 'm', MsgId: '7300000000000000001' },
    { ...head, MsgType: 'voice', MediaId: 'm', Format: 'amr', Recognition: '', MsgId: '7300000000000000002' },
    { ...head, MsgType: 'location', Location_X: '31.2', Location_Y: '121.4', Scale: '15', Label: '上海', MsgId: '7300000000000000003' },
    { ...head, MsgType: 'link', Title: 'T', Description: 'D', Url: 'https://u', MsgId: '7300000000000000004' },
    { ...head, MsgType: 'event', Event: 'subscribe', EventKey: 'qrscene_1', Ticket: 'TICKET' },
    { ...head, MsgType: 'event', Event: 'unsubscribe' },
    { ...head, MsgType: 'event', Event: 'scancode_push', EventKey: 'k', ScanCodeInfo: { ScanType: 'qrcode', ScanResult: 'r' } },
    { ...head, MsgType: 'event', Event: 'pic_weixin', EventKey: 'k', SendPicsInfo: { Count: '2', PicList: [{ PicMd5Sum: 'a' }, { PicMd5Sum: 'b' }] } },
    { ...head, MsgType: 'event', Event: 'pic_sysphoto', EventKey: 'k', SendPicsInfo: { Count: '1', PicList: [{ PicMd5Sum: 'a' }] } },
    {
      ...head,
      MsgType: 'event',
      Event: 'MASSSENDJOBFINISH',
      MsgID: '3487542469355618313',
      Status: 'send success',
      ArticleUrlResult: { Count: '0', ResultList: [] },
    },
    { ...head, MsgType: 'event', Event: 'unknown', RawEvent: 'user_info_modified', EventKey: 'x', Fields: { ...head, CreateTime: '1700000000', MsgType: 'event', Event: 'user_info_modified', EventKey: 'x', OpenID: 'o' } },
    { ...head, MsgType: 'unknown', RawMsgType: 'miniprogrampage', MsgId: '5', Fields: { ...head, CreateTime: '1700000000', MsgType: 'miniprogrampage', MsgId: '5', Title: 't' } },
  ];

  it('writes pushes that the server parser reads back unchanged', () => {
    for (const message of messages) expect(parseMessage(pushToXml(message))).toEqual(message);
  });

  it('writes strings in CDATA, CreateTime and ids bare, lists as <item>', () => {
    expect(pushToXml(messages[0]!)).toBe(
      '<xml><ToUserName><![CDATA[gh_test0000000]]></ToUserName><FromUserName><![CDATA[oTestUser0000000000000000001]]></FromUserName>' +
        '<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>' +
        '<Content><![CDATA[ 你好 ]]]]><![CDATA[> <b>&amp; 😀\n]]></Content><MsgId>9223372036854775807</MsgId></xml>',
    );
    expect(pushToXml(messages[9]!)).toContain('<SendPicsInfo><Count><![CDATA[2]]></Count><PicList><item><PicMd5Sum><![CDATA[a]]></PicMd5Sum></item><item>');
  });

  const replies: Reply[] = [
    text(' 多行\n文本 ]]> <&> 😀 '),
    text(''),
    image('MEDIA'),
    voice('MEDIA'),
    video('MEDIA'),
    video('MEDIA', { Title: 'T', Description: 'D' }),
    music({ ThumbMediaId: 'THUMB' }),
    music({ ThumbMediaId: 'THUMB', Title: 'T', Description: 'D', MusicUrl: 'https://m', HQMusicUrl: 'https://hq' }),
    news([{ Title: 'T', Description: 'D', PicUrl: 'https://p', Url: 'https://u' }]),
    news([1, 2, 3].map((i) => ({ Title: `T${i}`, Description: `D${i}`, PicUrl: `https://p/${i}`, Url: `https://u/${i}` }))),
    transferCustomerService(),
    transferCustomerService('kf@account'),
  ];
  const address = { ToUserName: OPENID, FromUserName: ACCOUNT, CreateTime: 1_700_000_000 };

  it('reads back every reply the server writes', () => {
    for (const reply of replies) expect(parseReplyXml(replyToXml(reply, address))).toEqual({ reply, ...address });
  });

  it('reads the encrypted envelope', () => {
    const key = parseEncodingAESKey(AES_KEY);
    const body = encryptReply({ key, appId: APP_ID, token: TOKEN, plaintextXml: replyToXml(text('x'), address), timestamp: 1_700_000_001, nonce: '12345' });
    expect(readEncryptedReply(body)).toEqual({ Encrypt: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/), MsgSignature: expect.stringMatching(/^[0-9a-f]{40}$/), TimeStamp: '1700000001', Nonce: '12345' });
    expect(readEncryptedReply(replyToXml(text('x'), address))).toBeUndefined();
  });

  it('tells no reply from a reply, and refuses what WeChat would not accept', () => {
    expect(isNoReplyBody('success')).toBe(true);
    expect(isNoReplyBody('')).toBe(true);
    expect(isNoReplyBody('success\n')).toBe(false);
    const headXml = `<ToUserName><![CDATA[${OPENID}]]></ToUserName><FromUserName><![CDATA[${ACCOUNT}]]></FromUserName><CreateTime>1700000000</CreateTime>`;
    const bad: [string, string | RegExp][] = [
      ['not xml', /not "success" and not well-formed XML/],
      ['<root><a>1</a></root>', /the root element is <root>, not <xml>/],
      ['<!DOCTYPE xml [<!ENTITY e "x">]><xml><Content>&e;</Content></xml>', 'the reply contains <!DOCTYPE or <!ENTITY'],
      [`<xml>${headXml}<MsgType><![CDATA[json]]></MsgType></xml>`, /MsgType "json" is not a passive reply type/],
      [`<xml>${headXml}<MsgType><![CDATA[text]]></MsgType></xml>`, 'Content is missing from the reply'],
      [`<xml>${headXml}<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[]]></MediaId></Image></xml>`, /not one WeChat accepts/],
      [`<xml>${headXml}<MsgType><![CDATA[image]]></MsgType><MediaId><![CDATA[m]]></MediaId></xml>`, 'Image is missing from the reply'],
      [`<xml>${headXml}<MsgType><![CDATA[news]]></MsgType><ArticleCount>2</ArticleCount><Articles><item><Title>T</Title><Description>D</Description><PicUrl>p</PicUrl><Url>u</Url></item></Articles></xml>`, 'ArticleCount is "2" but Articles has 1 <item> elements'],
      [`<xml>${headXml}<MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item><Title>T</Title></item></Articles></xml>`, 'Articles.item[0].Description is missing from the reply'],
      [`<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1700000000000.5</CreateTime><MsgType>text</MsgType><Content>c</Content></xml>`, /CreateTime "1700000000000.5" is not Unix seconds/],
    ];
    for (const [xml, message] of bad) {
      expect(() => parseReplyXml(xml), xml).toThrow(ReplyParseError);
      expect(() => parseReplyXml(xml), xml).toThrow(message);
    }
  });
});
