/**
 * A fake of WeChat's server API on 127.0.0.1 (api.weixin.qq.com is not reachable from tests):
 * `POST /cgi-bin/stable_token` and `POST /cgi-bin/message/custom/send`, recording every call and
 * answering errcodes a test queues.
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
  /** Milliseconds the token endpoint waits before answering. */
  tokenDelayMs: number;
  /** Resolves when `sent` holds at least `n` messages, or rejects after `timeoutMs`. */
  waitForSent(n: number, timeoutMs?: number): Promise<void>;
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
    tokenDelayMs: 0,
    waitForSent(n, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`fake WeChat API: ${fake.sent.length} of ${n} messages after ${timeoutMs} ms`)), timeoutMs);
        const check = (): void => {
          if (fake.sent.length >= n) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
  };
  app.post('/cgi-bin/stable_token', (req, res) => {
    fake.tokenRequests.push(req.body as Record<string, unknown>);
    issued += 1;
    setTimeout(() => res.json({ access_token: `ACCESS_TOKEN_${issued}`, expires_in: 7200 }), fake.tokenDelayMs);
  });
  app.post('/cgi-bin/message/custom/send', (req, res) => {
    const errcode = fake.sendErrors.shift() ?? 0;
    if (errcode !== 0) return res.json({ errcode, errmsg: `fake error ${errcode}` });
    fake.sent.push({ accessToken: String(req.query['access_token']), body: req.body as Record<string, unknown> });
    waiters.splice(0).forEach((check) => check());
    return res.json({ errcode: 0, errmsg: 'ok' });
  });
  const server: TestServer = await listenOnLoopback(app);
  return Object.assign(fake, { url: server.url, close: () => server.close() });
}
