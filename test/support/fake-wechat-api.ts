/**
 * A fake of WeChat's server API on 127.0.0.1 (api.weixin.qq.com is not reachable from tests):
 * `POST /cgi-bin/stable_token`, `POST /cgi-bin/message/custom/send` and
 * `POST /cgi-bin/message/template/send`, recording every call and answering errcodes a test queues.
 */
import express from 'express';
import { listenOnLoopback, type TestServer } from './http.js';

/** One customer-service message the fake received. */
export interface ReceivedMessage {
  readonly accessToken: string;
  readonly body: Record<string, unknown>;
}

export interface FakeWeChatApi {
  /** Base URL to give as `baseUrl` / `WECHAT_API_BASE`. */
  readonly url: string;
  /** Token requests received, in order (their JSON bodies). */
  readonly tokenRequests: Record<string, unknown>[];
  /** Customer-service messages received and accepted (errcode 0). */
  readonly sent: ReceivedMessage[];
  /** Errcodes to answer the next customer-service sends with, first one first (then 0). */
  readonly sendErrors: number[];
  /** Template messages received and accepted (errcode 0), each answered with a new `msgid`. */
  readonly templates: ReceivedMessage[];
  /** Errcodes to answer the next template sends with, first one first (then 0). */
  readonly templateErrors: number[];
  /** Customer-service and template sends that got an errcode, in order: what was refused. */
  readonly refused: (ReceivedMessage & { readonly errcode: number })[];
  /** Milliseconds the token endpoint waits before answering. */
  tokenDelayMs: number;
  /** Resolves when `sent` holds at least `n` messages, or rejects after `timeoutMs`. */
  waitForSent(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves when `templates` holds at least `n` messages, or rejects after `timeoutMs`. */
  waitForTemplates(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeWeChatApi(): Promise<FakeWeChatApi> {
  const app = express();
  app.use(express.json());
  let issued = 0;
  const waiters: Array<() => void> = [];
  const fake: Omit<FakeWeChatApi, 'url' | 'close'> = {
    tokenRequests: [],
    sent: [],
    sendErrors: [],
    templates: [],
    templateErrors: [],
    refused: [],
    tokenDelayMs: 0,
    waitForSent: (n, timeoutMs) => waitFor(fake.sent, 'messages', n, timeoutMs),
    waitForTemplates: (n, timeoutMs) => waitFor(fake.templates, 'template messages', n, timeoutMs),
  };
  function waitFor(list: readonly unknown[], what: string, n: number, timeoutMs = 5_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fake WeChat API: ${list.length} of ${n} ${what} after ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        if (list.length >= n) {
          clearTimeout(timer);
          resolve();
        } else waiters.push(check);
      };
      check();
    });
  }
  app.post('/cgi-bin/stable_token', (req, res) => {
    fake.tokenRequests.push(req.body as Record<string, unknown>);
    issued += 1;
    setTimeout(() => res.json({ access_token: `ACCESS_TOKEN_${issued}`, expires_in: 7200 }), fake.tokenDelayMs);
  });
  app.post('/cgi-bin/message/custom/send', (req, res) => {
    const errcode = fake.sendErrors.shift() ?? 0;
    const received = { accessToken: String(req.query['access_token']), body: req.body as Record<string, unknown> };
    if (errcode !== 0) {
      fake.refused.push({ ...received, errcode });
      return res.json({ errcode, errmsg: `fake error ${errcode}` });
    }
    fake.sent.push(received);
    waiters.splice(0).forEach((check) => check());
    return res.json({ errcode: 0, errmsg: 'ok' });
  });
  let msgid = 1_000;
  app.post('/cgi-bin/message/template/send', (req, res) => {
    const errcode = fake.templateErrors.shift() ?? 0;
    const received = { accessToken: String(req.query['access_token']), body: req.body as Record<string, unknown> };
    if (errcode !== 0) {
      fake.refused.push({ ...received, errcode });
      return res.json({ errcode, errmsg: `fake error ${errcode}` });
    }
    fake.templates.push(received);
    waiters.splice(0).forEach((check) => check());
    msgid += 1;
    return res.json({ errcode: 0, errmsg: 'ok', msgid });
  });
  const server: TestServer = await listenOnLoopback(app);
  return Object.assign(fake, { url: server.url, close: () => server.close() });
}
