/**
 * `wechatDialog()` mounted in a host's own Express app, as a team that already runs one would:
 * routes before and after it, body parsers before it, its own 404 and error handler.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { createRouter } from '../../src/dialog/router.js';
import { defineDialog } from '../../src/dialog/dialog.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { wechatDialog, WechatDialogOptionsError, type WechatDialogMiddleware } from '../../src/http/wechat-dialog.js';
import { text } from '../../src/wechat/replies.js';
import { listenOnLoopback, parseReply, signedQuery, textXml, TOKEN, type TestServer } from '../support/http.js';

interface LogLine {
  level: number;
  msg: string;
  code?: string;
}

/** A host app: JSON and text parsers, a route before and after the middleware, its own 404 and error handler. */
function hostApp(middleware: WechatDialogMiddleware, parsers: express.RequestHandler[]): express.Express {
  const app = express();
  for (const parser of parsers) app.use(parser);
  app.get('/before', (_req, res) => {
    res.json({ route: 'before' });
  });
  app.use('/wx', middleware);
  app.post('/api/echo', (req, res) => {
    res.json({ echoed: req.body as unknown });
  });
  app.get('/boom', () => {
    throw new Error('the host failed');
  });
  app.use((_req, res) => {
    res.status(404).json({ host: 'not found' });
  });
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ host: 'error', message: err.message });
  });
  return app;
}

describe('wechatDialog mounted in a host app', () => {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
  let middleware: WechatDialogMiddleware;
  let server: TestServer;
  beforeAll(async () => {
    middleware = wechatDialog({ token: TOKEN, router, logger });
    // A JSON parser for the host's API, and a text parser that reads every other body (text/xml included).
    server = await listenOnLoopback(hostApp(middleware, [express.json(), express.text({ type: () => true })]));
  });
  afterAll(async () => {
    await server.close();
    await middleware.close();
  });
  afterEach(() => {
    lines.length = 0;
  });

  const say = async (openid: string, content: string, path = '/wx'): Promise<globalThis.Response> =>
    fetch(`${server.url}${path}${signedQuery(openid)}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: textXml(openid, content) });

  it('answers the GET handshake at its mount path', async () => {
    const query = new URLSearchParams(signedQuery().slice(1));
    query.set('echostr', 'mounted-echo');
    const response = await fetch(`${server.url}/wx?${query.toString()}`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('mounted-echo');
    expect((await fetch(`${server.url}/wx/?${query.toString()}`)).status).toBe(200);
  });

  it('holds a two-turn dialog over a body the host text parser already read', async () => {
    const openid = 'oMounted000000000000000001';
    const first = await say(openid, '累加器');
    expect(first.status).toBe(200);
    expect(parseReply(await first.text()).Content).toBe('您需要累加几个数字？');
    const second = await say(openid, '1');
    expect(parseReply(await second.text()).Content).toBe('请输入第1个数字, 目前累加和:0');
  });

  it("leaves the host's routes, body parsers, 404 and error handler alone", async () => {
    expect(await (await fetch(`${server.url}/before`)).json()).toEqual({ route: 'before' });
    const echoed = await fetch(`${server.url}/api/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(await echoed.json()).toEqual({ echoed: { a: 1 } });
    const missing = await fetch(`${server.url}/nowhere`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ host: 'not found' });
    // Under the mount path, but not the endpoint itself: the host's 404, not ours.
    const under = await fetch(`${server.url}/wx/other`);
    expect(under.status).toBe(404);
    expect(await under.json()).toEqual({ host: 'not found' });
    const failed = await fetch(`${server.url}/boom`);
    expect(failed.status).toBe(500);
    expect(await failed.json()).toEqual({ host: 'error', message: 'the host failed' });
  });

  it('answers 401 to a forged push and 405 to other methods, itself', async () => {
    const openid = 'oMounted000000000000000002';
    const forged = await fetch(`${server.url}/wx${signedQuery(openid, 'othertoken')}`, { method: 'POST', body: textXml(openid, 'x') });
    expect(forged.status).toBe(401);
    expect(await forged.text()).toBe('invalid signature');
    const put = await fetch(`${server.url}/wx`, { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST');
  });

  it('refuses a body the host already read as text when it is over the limit (413)', async () => {
    const openid = 'oMounted000000000000000003';
    const response = await say(openid, 'x'.repeat(70 * 1024));
    expect(response.status).toBe(413);
  });
});

describe('wechatDialog and the body parsers before it', () => {
  const openid = 'oParsers000000000000000001';
  const echo = createRouter({ routes: [], fallback: defineDialog('echo', function* (first) {
    return text(`echo: ${first.MsgType === 'text' ? first.Content : first.MsgType}`);
  }) });

  async function withHost(parsers: express.RequestHandler[], run: (url: string, lines: LogLine[]) => Promise<void>): Promise<void> {
    const lines: LogLine[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
    const middleware = wechatDialog({ token: TOKEN, router: echo, store: new MemoryStore({ sweepIntervalMs: 0 }), logger });
    const server = await listenOnLoopback(hostApp(middleware, parsers));
    try {
      await run(server.url, lines);
    } finally {
      await server.close();
      await middleware.close();
    }
  }
  const post = (url: string, contentType: string) =>
    fetch(`${url}/wx${signedQuery(openid)}`, { method: 'POST', headers: { 'content-type': contentType }, body: textXml(openid, 'hi') });

  it('reads the stream itself when no parser took the body', async () => {
    await withHost([], async (url) => {
      expect(parseReply(await (await post(url, 'text/xml')).text()).Content).toBe('echo: hi');
    });
  });

  it('uses a Buffer from express.raw()', async () => {
    await withHost([express.raw({ type: 'text/xml' })], async (url) => {
      expect(parseReply(await (await post(url, 'text/xml')).text()).Content).toBe('echo: hi');
    });
  });

  it('with express.json() and express.urlencoded() before it (they skip text/xml), still works', async () => {
    await withHost([express.json(), express.urlencoded()], async (url) => {
      expect(parseReply(await (await post(url, 'text/xml')).text()).Content).toBe('echo: hi');
    });
  });

  it('a body a parser turned into an object: 500, and one error saying to mount it before that parser', async () => {
    await withHost([express.urlencoded({ type: () => true })], async (url, lines) => {
      const response = await post(url, 'text/xml');
      expect(response.status).toBe(500);
      expect(await response.text()).toBe('internal error');
      const errors = lines.filter((line) => line.level >= 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: 'BODY_CONSUMED' });
      expect(errors[0]?.msg).toMatch(/already read by another body parser.*mount wechatDialog\(\) before express\.json\(\)\/express\.urlencoded\(\)/);
    });
  });
});

describe('wechatDialog options', () => {
  it('without a store: the in-memory store, with a warning', async () => {
    const lines: LogLine[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
    const middleware = wechatDialog({ token: TOKEN, router, logger });
    await middleware.close();
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: expect.stringContaining('no store given: dialog state is kept in this process only') }));
  });

  it.each([
    [{ token: 'no' }, 'token', /token must be the Token .*3 to 32 letters or digits/],
    [{ router: {} }, 'router', /router must be a router table/],
    [{ encodingAESKey: 'short' , appId: 'wx1' }, 'encodingAESKey', /43-letter-or-digit EncodingAESKey/],
    [{ encodingAESKey: 'a'.repeat(43) }, 'encodingAESKey', /needs appId/],
    [{ appSecret: '0123456789abcdef' }, 'appSecret', /needs appId/],
    [{ requireEncryption: true }, 'requireEncryption', /needs appId and encodingAESKey/],
    [{ appId: 'wx1', appSecret: '0123456789abcdef', replyDeadlineMs: 6000 }, 'replyDeadlineMs', /100 to 4900/],
    [{ maxAgeSeconds: -5 }, 'maxAgeSeconds', /from 0 \(no check: unsafe\) to 86400/],
  ] as Array<[Record<string, unknown>, string, RegExp]>)('%j is refused with an error naming the option', (bad, option, message) => {
    const build = () => wechatDialog({ token: TOKEN, router, logger: pino({ level: 'silent' }), ...bad } as Parameters<typeof wechatDialog>[0]);
    expect(build).toThrow(WechatDialogOptionsError);
    expect(build).toThrow(message);
    try {
      build();
    } catch (err) {
      expect((err as WechatDialogOptionsError).option).toBe(option);
    }
  });
});
