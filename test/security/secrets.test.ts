/**
 * No secret in any log line (docs/security.md, "Secrets in logs"): the access_token, the AppSecret,
 * the EncodingAESKeys, the Token and Redis passwords, whatever error path runs. Each path is driven
 * for real (a late reply through the middleware, the server's startup, the `serve` command) and
 * every line the logger wrote is searched for every secret.
 *
 * Two loggers see each path: the project's own ({@link createLogger}, with its redact paths) and a
 * plain `pino()` without them, as a host app passes to `wechatDialog({ logger })`: the errors must
 * be clean at their source, not only censored by the project's logger.
 *
 * Redis refusing a write is driven two ways: a client whose `set`/`eval` reject with a
 * `ReplyError` carrying `command: { name, args }` exactly as ioredis builds it (always), and this
 * file's own `redis-server` (never the shared one) made to answer OOM (`maxmemory 1`) or READONLY
 * (`REPLICAOF` a closed port) at the right moment (when redis-server is installed).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import express from 'express';
import { Redis, ReplyError } from 'ioredis';
import RedisMock from 'ioredis-mock';
import { pino, type DestinationStream, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { MemoryAccessTokenCache, RedisAccessTokenCache, SharedAccessToken, type AccessTokenCache } from '../../src/delivery/access-token.js';
import { InProcessDeliveryQueue } from '../../src/delivery/in-process-queue.js';
import { WeChatMessageSender } from '../../src/delivery/sender.js';
import { defineDialog, record } from '../../src/dialog/dialog.js';
import { createRouter } from '../../src/dialog/router.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import type { DialogStore } from '../../src/dialog/store/store.js';
import { wechatDialog, type WechatDialogMiddleware } from '../../src/http/wechat-dialog.js';
import { createLogger, LOG_REDACT_CENSOR, type LogLevel } from '../../src/logging.js';
import { redactUrl, startServer } from '../../src/server.js';
import { fetchStableAccessToken, sendCustomMessage } from '../../src/wechat/customer-service.js';
import { text } from '../../src/wechat/replies.js';
import { listenOnLoopback, signedQuery, textXml, type TestServer } from '../support/http.js';
import { findFreePort } from '../support/ports.js';
import { ROOT } from '../support/processes.js';
import { ownRedisSuitesRun, startRedisServer, type RedisServer } from '../support/redis-server.js';
import { uniqueKeyPrefix } from '../support/stores.js';

// ---------------------------------------------------------------------------------------------
// The secrets, each a string that cannot occur in a log line by chance.

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const WX_TOKEN = `tok${hex(8)}`; // the Token (令牌): 3 to 32 letters or digits
const APP_ID = 'wx0123456789abcdef';
const APP_SECRET = `AppSecret${hex(12)}`;
const AES_KEY = `Aes${hex(20)}`; // 43 letters or digits
const PREVIOUS_AES_KEY = `Old${hex(20)}`;
const REDIS_PASSWORD = `RedisPw${hex(10)}`;
const WRONG_REDIS_PASSWORD = `WrongPw${hex(10)}`;
/** Every access_token the fake WeChat API issues starts with this (and is searched for in full). */
const ACCESS_TOKEN_PREFIX = 'AccessTok';

const STATIC_SECRETS = [WX_TOKEN, APP_SECRET, AES_KEY, PREVIOUS_AES_KEY, REDIS_PASSWORD, WRONG_REDIS_PASSWORD];

// ---------------------------------------------------------------------------------------------
// Capturing log lines.

interface Captured {
  readonly logger: Logger;
  readonly lines: string[];
}

/** A destination that keeps every line pino writes. */
function collector(lines: string[]): DestinationStream {
  return { write: (line: string) => void lines.push(line) };
}

/** The two loggers each path is checked with. */
const LOGGERS: ReadonlyArray<{ readonly name: string; create(level?: LogLevel): Captured }> = [
  {
    name: "the project's logger (createLogger)",
    create: (level = 'trace') => {
      const lines: string[] = [];
      return { logger: createLogger(level, collector(lines)), lines };
    },
  },
  {
    name: "a host app's plain pino logger",
    create: (level = 'trace') => {
      const lines: string[] = [];
      return { logger: pino({ level }, collector(lines)), lines };
    },
  },
];

/** Fails listing every (secret, line) pair where a secret occurs; `secrets` must not be empty strings. */
function expectNoSecrets(lines: readonly string[], secrets: readonly string[]): void {
  expect(secrets.every((s) => s.length >= 8)).toBe(true);
  const leaks = lines.flatMap((line) => secrets.filter((secret) => line.includes(secret)).map((secret) => `${secret} in: ${line.trim()}`));
  expect(leaks).toEqual([]);
}

/** The error as any logger or `console` could show it: inspected in full, and through pino's serializer. */
function expectCleanError(err: unknown, secrets: readonly string[]): void {
  expectNoSecrets([inspect(err, { depth: Infinity }), JSON.stringify(pino.stdSerializers.err(err as Error))], secrets);
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const LATE_OUTCOME = /delivery sent|delivery failed/;
/** The log lines that say what became of late replies. */
const lateOutcomes = (lines: readonly string[]): string[] => lines.filter((line) => LATE_OUTCOME.test(line));

// ---------------------------------------------------------------------------------------------
// A fake of WeChat's API whose answers each test queues.

type Answer =
  /** WeChat's error JSON; with `echo`, `errmsg` also quotes the request's secret (the AppSecret or the access_token), as a misbehaving proxy might. */
  | { readonly errcode: number; readonly errmsg: string; readonly echo?: boolean }
  /** Never answers (a timeout). */
  | 'hang'
  /** HTTP 200 with an HTML page that quotes the request URL and body, as a misbehaving proxy might. */
  | 'html-echo';

interface FakeApi {
  readonly url: string;
  /** Every access_token issued so far (the secrets of the send path). */
  readonly issued: string[];
  /** Answers of the next token requests, first one first; a token when empty. */
  readonly tokenAnswers: Answer[];
  /** Answers of the next sends, first one first; `ok` when empty. */
  readonly sendAnswers: Answer[];
  /** Runs before the next token answer (then is cleared). */
  beforeToken: (() => Promise<void>) | undefined;
  /** Runs before the next send answer (then is cleared). */
  beforeSend: (() => Promise<void>) | undefined;
  sends: number;
  close(): Promise<void>;
}

async function startFakeApi(): Promise<FakeApi> {
  const app = express();
  app.use(express.json());
  const fake: Omit<FakeApi, 'url' | 'close'> = {
    issued: [],
    tokenAnswers: [],
    sendAnswers: [],
    beforeToken: undefined,
    beforeSend: undefined,
    sends: 0,
  };
  const answer = (req: express.Request, res: express.Response, planned: Answer | undefined, ok: () => object): void => {
    if (planned === 'hang') return;
    if (planned === 'html-echo') {
      res.type('html').send(`<html><body>bad gateway for ${req.originalUrl} ${JSON.stringify(req.body)}</body></html>`);
      return;
    }
    if (planned === undefined) {
      res.json(ok());
      return;
    }
    const echoed = String(req.query['access_token'] ?? (req.body as { secret?: string }).secret);
    res.json({ errcode: planned.errcode, errmsg: planned.echo === true ? `${planned.errmsg} [echo: ${echoed}]` : planned.errmsg });
  };
  app.post('/cgi-bin/stable_token', (req, res) => {
    const hook = fake.beforeToken;
    fake.beforeToken = undefined;
    void (hook?.() ?? Promise.resolve()).then(() =>
      answer(req, res, fake.tokenAnswers.shift(), () => {
        const token = `${ACCESS_TOKEN_PREFIX}${hex(16)}`;
        fake.issued.push(token);
        return { access_token: token, expires_in: 7200 };
      }),
    );
  });
  app.post('/cgi-bin/message/custom/send', (req, res) => {
    fake.sends += 1;
    const hook = fake.beforeSend;
    fake.beforeSend = undefined;
    void (hook?.() ?? Promise.resolve()).then(() => answer(req, res, fake.sendAnswers.shift(), () => ({ errcode: 0, errmsg: 'ok' })));
  });
  const server: TestServer = await listenOnLoopback(app);
  return Object.assign(fake, { url: server.url, close: () => server.close() });
}

/** The secrets of a path that went through `api`: the static ones and every access_token it issued. */
const secretsOf = (api: FakeApi): string[] => [...STATIC_SECRETS, ...api.issued];

// ---------------------------------------------------------------------------------------------
// The late-reply path, for real: a push whose turn outlives the deadline, answered `success`, its
// reply then sent as a customer-service message; failures are logged by the middleware.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const slow = defineDialog('slow', function* () {
  yield* record(() => sleep(300).then(() => null));
  return text('慢慢来');
});
const router = createRouter({ routes: [{ match: { text: 'slow' }, dialog: slow }], fallback: slow });

interface LateRig {
  push(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The middleware with late replies on, answering at 100 ms. `attempts`: sends in all for a transient
 * failure (the delivery queue's retries), 1 by default so that one failure is the outcome.
 */
async function lateRig(options: {
  logger: Logger;
  api: FakeApi;
  store?: DialogStore;
  accessTokenCache?: AccessTokenCache;
  attempts?: number;
  /** Keep deliveries in the process even on a RedisStore (the token cache still on its Redis). */
  inProcessQueue?: boolean;
}): Promise<LateRig> {
  const { store } = options;
  const deliveryQueue =
    options.inProcessQueue === true && store instanceof RedisStore
      ? new InProcessDeliveryQueue({
          store,
          logger: options.logger,
          attempts: options.attempts ?? 1,
          backoffMs: 10,
          warnOnStart: false,
          sender: new WeChatMessageSender({
            api: { baseUrl: options.api.url },
            token: new SharedAccessToken({
              cache: new RedisAccessTokenCache(store.client, { keyPrefix: store.keyPrefix, appId: APP_ID }),
              fetchToken: () => fetchStableAccessToken(APP_ID, APP_SECRET, { baseUrl: options.api.url }),
            }),
          }),
        })
      : undefined;
  const middleware: WechatDialogMiddleware = wechatDialog({
    token: WX_TOKEN,
    router,
    logger: options.logger,
    appId: APP_ID,
    appSecret: APP_SECRET,
    encodingAESKey: AES_KEY,
    previousEncodingAESKey: PREVIOUS_AES_KEY,
    apiBase: options.api.url,
    replyDeadlineMs: 100,
    delivery: { attempts: options.attempts ?? 1, backoffMs: 10 },
    ...(options.store === undefined ? {} : { store: options.store }),
    ...(options.accessTokenCache === undefined ? {} : { accessTokenCache: options.accessTokenCache }),
    ...(deliveryQueue === undefined ? {} : { deliveryQueue }),
  });
  const app = express();
  app.use('/wechat', middleware);
  const server = await listenOnLoopback(app);
  const openid = `oSecrets${hex(6)}`;
  return {
    async push() {
      const response = await fetch(`${server.url}/wechat${signedQuery(openid, WX_TOKEN)}`, { method: 'POST', body: textXml(openid, 'slow') });
      expect(await response.text()).toBe('success'); // answered at the deadline; the reply follows late
    },
    async close() {
      await server.close();
      await middleware.close();
    },
  };
}

/** Pushes once and waits until the middleware logged what became of the late reply; returns that line. */
async function pushAndWait(rig: LateRig, lines: string[]): Promise<string> {
  const before = lateOutcomes(lines).length;
  await rig.push();
  await waitFor(() => lateOutcomes(lines).length > before, 'the late reply outcome in the log');
  return lateOutcomes(lines)[before] as string;
}

// ---------------------------------------------------------------------------------------------
// A Redis client whose writes Redis refuses, with the error ioredis builds.

/** A `ReplyError` as ioredis's DataHandler rejects a command with: the command and its arguments attached. */
function ioredisReplyError(message: string, name: string, args: unknown[]): Error {
  const err = new ReplyError(message) as Error & { command?: unknown };
  err.command = { name, args };
  return err;
}

/**
 * `inner` (ioredis-mock) with `set` of the token (not the lock) refused with OOM, and/or `eval`
 * on the token key (compare-and-delete, not unlock) refused with READONLY.
 */
function refusingRedis(inner: Redis, refuse: { set?: boolean; deleteIf?: boolean }): Redis {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'set' && refuse.set) {
        return (...args: unknown[]) =>
          args.includes('NX')
            ? (target.set as (...a: unknown[]) => Promise<unknown>)(...args)
            : Promise.reject(ioredisReplyError("OOM command not allowed when used memory > 'maxmemory'.", 'set', args));
      }
      if (prop === 'eval' && refuse.deleteIf) {
        return (...args: unknown[]) =>
          String(args[2]).endsWith('.lock')
            ? (target.eval as (...a: unknown[]) => Promise<unknown>)(...args)
            : Promise.reject(ioredisReplyError("READONLY You can't write against a read only replica.", 'eval', args));
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const mockRedis = (): Redis => new RedisMock({ host: `mock-${hex(6)}`, port: 6379 }) as unknown as Redis;

// ---------------------------------------------------------------------------------------------

describe('the redact paths of the project logger', () => {
  it('censor the arguments ioredis attaches to an error, and fields named like secrets', () => {
    const lines: string[] = [];
    const logger = createLogger('info', collector(lines));
    logger.error({ err: { args: ['x', 'SECRET-ARG'] } }, 'a plain object as err');
    logger.error({ err: { message: 'm', command: { name: 'set', args: ['k', 'SECRET-CMD'] }, cause: { args: ['SECRET-CAUSE'] } } }, 'x');
    logger.warn({ accessToken: 'SECRET-AT1', access_token: 'SECRET-AT2', appSecret: 'SECRET-AS', secret: 'SECRET-S', password: 'SECRET-PW' }, 'top');
    logger.warn({ config: { encodingAESKey: 'SECRET-AES', previousEncodingAESKey: 'SECRET-PAES', redisUrl: 'redis://:SECRET-URL@h' } }, 'nested');
    logger.info({ req: { headers: { authorization: 'Bearer SECRET-AUTH', cookie: 'sid=SECRET-COOKIE' } } }, 'request');
    const err = Object.assign(new Error('refused'), { command: { name: 'set', args: ['k', 'SECRET-REAL'] } });
    logger.error({ err }, 'a real error');
    expect(lines).toHaveLength(6);
    expect(lines.join('')).not.toMatch(/SECRET/);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ err: { args: LOG_REDACT_CENSOR } });
    expect(JSON.parse(lines[5] as string)).toMatchObject({ err: { message: 'refused', command: LOG_REDACT_CENSOR } });
  });
});

describe('a Redis URL in a log line', () => {
  it.each([
    ['redis://:pw@127.0.0.1:6379/0', 'redis://:***@127.0.0.1:6379/0'],
    ['redis://user:pw@10.0.0.1:6379', 'redis://user:***@10.0.0.1:6379'],
    ['rediss://user:pw@redis.example.com:6380/2', 'rediss://user:***@redis.example.com:6380/2'],
    ['redis://p@ss@host:6379/0', 'redis://***@host:6379/0'], // a password without its colon is hidden too
    ['redis://:p@ss/w@host:6379/0', 'redis://[redacted]'], // not a URL: nothing of it shown
    ['redis://127.0.0.1:6379/0', 'redis://127.0.0.1:6379/0'],
  ])('%s is logged as %s', (url, logged) => {
    expect(redactUrl(url)).toBe(logged);
  });
});

describe.each(LOGGERS)('Redis refusing the access_token cache, logged by $name', (loggerKind) => {
  let api: FakeApi;
  beforeAll(async () => {
    api = await startFakeApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it('SET of the fresh token refused (OOM): the late reply fails, no line holds the token', async () => {
    const { logger, lines } = loggerKind.create();
    const cache = new RedisAccessTokenCache(refusingRedis(mockRedis(), { set: true }), { keyPrefix: uniqueKeyPrefix(), appId: APP_ID });
    const rig = await lateRig({ logger, api, accessTokenCache: cache });
    try {
      const issuedBefore = api.issued.length;
      const outcome = await pushAndWait(rig, lines);
      expect(api.issued.length).toBe(issuedBefore + 1); // the token was fetched, then refused by Redis
      expect(outcome).toMatch(/delivery failed/);
      expect(outcome).toMatch(/OOM command not allowed/);
      expectNoSecrets(lines, secretsOf(api));
    } finally {
      await rig.close();
    }
  });

  it('compare-and-delete of a refused token refused (READONLY): no line holds the token', async () => {
    const { logger, lines } = loggerKind.create();
    const cache = new RedisAccessTokenCache(refusingRedis(mockRedis(), { deleteIf: true }), { keyPrefix: uniqueKeyPrefix(), appId: APP_ID });
    const rig = await lateRig({ logger, api, accessTokenCache: cache });
    try {
      expect(await pushAndWait(rig, lines)).toMatch(/delivery sent/); // the token is now cached
      api.sendAnswers.push({ errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest rid: 6777f5a0-1' });
      const outcome = await pushAndWait(rig, lines);
      expect(outcome).toMatch(/delivery failed/);
      expect(outcome).toMatch(/READONLY/);
      expectNoSecrets(lines, secretsOf(api));
    } finally {
      await rig.close();
    }
  });
});

describe('the errors of the Redis access_token cache', () => {
  it.each([
    ['set', (cache: AccessTokenCache, token: string) => cache.set(token, 60)],
    ['deleteIf', (cache: AccessTokenCache, token: string) => cache.deleteIf(token)],
  ] as const)('%s refused: the error names the operation and Redis’s answer, never the token', async (_name, run) => {
    const token = `${ACCESS_TOKEN_PREFIX}${hex(16)}`;
    const cache = new RedisAccessTokenCache(refusingRedis(mockRedis(), { set: true, deleteIf: true }), { keyPrefix: uniqueKeyPrefix(), appId: APP_ID });
    const err = await run(cache, token).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/access_token cache/);
    expect((err as Error).message).toMatch(/OOM command not allowed|READONLY/);
    expectCleanError(err, [token]);
  });
});

describe.runIf(ownRedisSuitesRun('secrets in logs (own redis-server)'))('a real Redis (this file’s own redis-server, with a password) refusing writes', () => {
  let server: RedisServer;
  let admin: Redis;
  let api: FakeApi;
  beforeAll(async () => {
    server = await startRedisServer();
    admin = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    await admin.config('SET', 'requirepass', REDIS_PASSWORD); // this connection stays authenticated
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    api = await startFakeApi();
  });
  afterAll(async () => {
    await api?.close();
    admin?.disconnect();
    await server?.stop();
  });
  afterEach(async () => {
    await admin.replicaof('NO', 'ONE');
    await admin.config('SET', 'maxmemory', '0');
  });
  const url = () => `redis://:${REDIS_PASSWORD}@127.0.0.1:${server.port}/0`;

  it.each(LOGGERS)('OOM on the token SET, then READONLY on its compare-and-delete; logged by $name', async (loggerKind) => {
    const { logger, lines } = loggerKind.create();
    const store = new RedisStore({ redis: createRedisClient(url()), keyPrefix: uniqueKeyPrefix() });
    // The deliveries stay in the process: this Redis refuses every write on purpose, the queue's too.
    const rig = await lateRig({ logger, api, store, inProcessQueue: true });
    try {
      // Redis runs out of memory between the lock and the SET of the token just fetched.
      api.beforeToken = async () => void (await admin.config('SET', 'maxmemory', '1'));
      const oom = await pushAndWait(rig, lines);
      expect(oom).toMatch(/delivery failed/);
      expect(oom).toMatch(/OOM command not allowed/);
      await admin.config('SET', 'maxmemory', '0');

      expect(await pushAndWait(rig, lines)).toMatch(/delivery sent/); // a token is cached now
      // A failover turns this Redis into a replica while WeChat refuses the token: DEL-if-equal fails.
      const closedPort = await findFreePort();
      api.beforeSend = async () => void (await admin.replicaof('127.0.0.1', closedPort));
      api.sendAnswers.push({ errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest rid: 6777f5a0-2' });
      const readonly = await pushAndWait(rig, lines);
      expect(readonly).toMatch(/delivery failed/);
      expect(readonly).toMatch(/READONLY/);
      expectNoSecrets(lines, secretsOf(api));
    } finally {
      await admin.replicaof('NO', 'ONE');
      await rig.close();
    }
  });

  it.each(LOGGERS)('a wrong password: the connection errors and the failed turn, logged by $name', async (loggerKind) => {
    const { logger, lines } = loggerKind.create();
    const port = await findFreePort();
    const config = loadConfig({
      WECHAT_TOKEN: WX_TOKEN,
      HOST: '127.0.0.1',
      PORT: String(port),
      REDIS_URL: `redis://:${WRONG_REDIS_PASSWORD}@127.0.0.1:${server.port}/0`,
    });
    const running = await startServer(config, logger, { router });
    try {
      await waitFor(() => lines.some((line) => line.includes('Redis connection error')), 'a connection error line');
      const openid = `oSecrets${hex(6)}`;
      await fetch(`http://127.0.0.1:${port}/wechat${signedQuery(openid, WX_TOKEN)}`, { method: 'POST', body: textXml(openid, 'slow') });
      expect(lines.join('')).toMatch(/WRONGPASS|NOAUTH|invalid username-password/);
      expectNoSecrets(lines, STATIC_SECRETS);
    } finally {
      await running.close();
    }
  });
});

describe.each(LOGGERS)('WeChat API failures, logged by $name', (loggerKind) => {
  let api: FakeApi;
  beforeAll(async () => {
    api = await startFakeApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it.each([
    ['40164 (IP not whitelisted)', { errcode: 40164, errmsg: 'invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 6777f5a0-3' }],
    ['40125 (wrong AppSecret), answered by a proxy that echoes the secret', { errcode: 40125, errmsg: 'invalid appsecret rid: 6777f5a0-4', echo: true }],
    ['-1 (system busy)', { errcode: -1, errmsg: 'system error rid: 6777f5a0-5' }],
    ['an HTML page quoting the request', 'html-echo'],
  ] as const)('the token fetch failing with %s', async (_name, answer) => {
    const { logger, lines } = loggerKind.create();
    const rig = await lateRig({ logger, api });
    try {
      api.tokenAnswers.push(answer);
      expect(await pushAndWait(rig, lines)).toMatch(/delivery failed/);
      expectNoSecrets(lines, secretsOf(api));
    } finally {
      await rig.close();
    }
  });

  it.each([
    [
      '40001 twice (the token refused, and the fresh one too)',
      [
        { errcode: 40001, errmsg: 'invalid credential rid: 1' },
        { errcode: 40001, errmsg: 'invalid credential rid: 2' },
      ],
    ],
    [
      '-1 twice (system busy, then again after the retry)',
      [
        { errcode: -1, errmsg: 'system error rid: 3' },
        { errcode: -1, errmsg: 'system error rid: 4' },
      ],
    ],
    ['45015 (outside the 48-hour window)', [{ errcode: 45015, errmsg: 'response out of time limit or subscription is canceled rid: 5' }]],
    ['48001 answered by a proxy that echoes the access_token', [{ errcode: 48001, errmsg: 'api unauthorized rid: 6', echo: true }]],
    [
      '40001 answered by a proxy that echoes the access_token, twice',
      [
        { errcode: 40001, errmsg: 'invalid credential', echo: true },
        { errcode: 40001, errmsg: 'invalid credential', echo: true },
      ],
    ],
    ['an HTML page quoting the request URL, twice', ['html-echo', 'html-echo']],
  ] as const)('the send failing with %s', async (_name, answers) => {
    const { logger, lines } = loggerKind.create();
    // One attempt per answer: a transient failure (-1, an HTML page) is retried once, as WeChat's answers here expect.
    const rig = await lateRig({ logger, api, attempts: answers.length });
    try {
      api.sendAnswers.push(...answers);
      const outcome = await pushAndWait(rig, lines);
      expect(outcome).toMatch(/delivery failed/);
      expectNoSecrets(lines, secretsOf(api));
    } finally {
      await rig.close();
    }
  });

  it('timeouts and unusable API addresses (the fetch itself failing)', async () => {
    const { logger, lines } = loggerKind.create();
    const log = (err: unknown) => logger.warn({ err }, 'a late reply could not be sent as a customer-service message');
    const message = { touser: 'oUser', msgtype: 'text', text: { content: 'hi' } } as const;
    const token = `${ACCESS_TOKEN_PREFIX}${hex(16)}`;
    const failures: unknown[] = [];
    const attempt = async (run: () => Promise<unknown>) => failures.push(await run().then(() => new Error('did not fail'), (e: unknown) => e));

    api.tokenAnswers.push('hang');
    await attempt(() => fetchStableAccessToken(APP_ID, APP_SECRET, { baseUrl: api.url, timeoutMs: 200 }));
    const cache = new MemoryAccessTokenCache();
    await cache.set(token, 60);
    api.sendAnswers.push('hang', 'hang');
    const sender = new WeChatMessageSender({
      token: new SharedAccessToken({ cache, fetchToken: async () => ({ accessToken: token, expiresIn: 7200 }) }),
      api: { baseUrl: api.url, timeoutMs: 200 },
    });
    await attempt(() => sender.send('oUser', { kind: 'reply', reply: text('hi') }));
    await attempt(() => sender.send('oUser', { kind: 'reply', reply: text('hi') })); // the queue's next attempt
    const closedPort = await findFreePort();
    for (const baseUrl of [`http://127.0.0.1:${closedPort}`, 'http://127.0.0.1:99999', `http://proxyuser:${APP_SECRET}@127.0.0.1:${closedPort}`]) {
      await attempt(() => sendCustomMessage(token, message, { baseUrl, timeoutMs: 1000 }));
      await attempt(() => fetchStableAccessToken(APP_ID, APP_SECRET, { baseUrl, timeoutMs: 1000 }));
    }
    expect(failures.map((e) => (e as Error).name)).toEqual(Array(9).fill('WeChatApiError'));
    for (const err of failures) {
      log(err);
      expectCleanError(err, [token, APP_SECRET]);
    }
    expectNoSecrets(lines, [token, APP_SECRET]);
    expect(lines.join('')).toMatch(/timeout/i);
  });
});

describe('bad configuration values', () => {
  const base = { WECHAT_TOKEN: WX_TOKEN };
  it.each([
    ['WECHAT_APPSECRET', { WECHAT_APPID: APP_ID, WECHAT_APPSECRET: `${APP_SECRET}-x` }, APP_SECRET],
    ['WECHAT_APPSECRET', { WECHAT_APPID: APP_ID, WECHAT_APPSECRET: `${APP_SECRET} ` }, APP_SECRET],
    ['WECHAT_APPSECRET', { WECHAT_APPSECRET: APP_SECRET }, APP_SECRET], // valid, but without WECHAT_APPID
    ['WECHAT_ENCODING_AES_KEY', { WECHAT_APPID: APP_ID, WECHAT_ENCODING_AES_KEY: AES_KEY.slice(0, 42) }, AES_KEY.slice(0, 42)],
    ['WECHAT_APPID', { WECHAT_ENCODING_AES_KEY: AES_KEY }, AES_KEY],
    [
      'WECHAT_ENCODING_AES_KEY_PREVIOUS',
      { WECHAT_APPID: APP_ID, WECHAT_ENCODING_AES_KEY: AES_KEY, WECHAT_ENCODING_AES_KEY_PREVIOUS: `${PREVIOUS_AES_KEY}!` },
      PREVIOUS_AES_KEY,
    ],
    ['WECHAT_TOKEN', { WECHAT_TOKEN: `${WX_TOKEN}-` }, WX_TOKEN],
    ['REDIS_URL', { REDIS_URL: `redis://:${REDIS_PASSWORD}@ host:6379` }, REDIS_PASSWORD],
    ['REDIS_URL', { REDIS_URL: `redis://:${REDIS_PASSWORD}/x@host:6379/0` }, REDIS_PASSWORD],
    ['REDIS_URL', { REDIS_URL: `redis://:ab@${REDIS_PASSWORD}/x@host:6379/0` }, REDIS_PASSWORD], // parses, with the password's end as host
    ['REDIS_URL', { REDIS_URL: `redis://:${REDIS_PASSWORD}@host:6379/3`, REDIS_CLUSTER: 'true' }, REDIS_PASSWORD],
  ])('%s: the ConfigError does not echo the value', (variable, env, secret) => {
    let err: unknown;
    try {
      loadConfig({ ...base, ...env });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expectCleanError(err, [secret]);
  });
});

/**
 * Runs `serve` (as `npm run dev` does, from the sources) with `env` and only `env`. Without
 * `until`, resolves with its output once it exits; with it, once `until` matches its output, then
 * runs `during`, stops it (SIGTERM) and resolves with all it wrote.
 */
async function runServe(
  env: Record<string, string>,
  until?: RegExp,
  during?: () => Promise<void>,
): Promise<{ output: string; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--router', 'dialogs/router.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DOTENV_CONFIG_PATH: 'test/no-such.env', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    if (until === undefined) {
      const code = await exited;
      return { output, code };
    }
    await Promise.race([waitFor(() => until.test(output), `${String(until)} in the output of serve`, 20_000), exited]);
    if (!until.test(output)) throw new Error(`serve exited before ${String(until)}; output:\n${output}`);
    await during?.();
    child.kill('SIGTERM');
    return { output, code: await exited };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

describe('the serve command', () => {
  let api: FakeApi;
  beforeAll(async () => {
    api = await startFakeApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it.each([
    ['a bad AppSecret', { WECHAT_APPID: APP_ID, WECHAT_APPSECRET: `${APP_SECRET}-x` }],
    ['a bad EncodingAESKey', { WECHAT_APPID: APP_ID, WECHAT_ENCODING_AES_KEY: `${AES_KEY}x` }],
    ['a REDIS_URL whose password is not URL-encoded', { REDIS_URL: `redis://:${REDIS_PASSWORD}/x@127.0.0.1:6379/0` }],
  ])('stops on %s without printing it', async (_name, env) => {
    const { output, code } = await runServe({ WECHAT_TOKEN: WX_TOKEN, PORT: String(await findFreePort()), ...env });
    expect(code).toBe(1);
    expect(output).toMatch(/^config error: /m);
    expectNoSecrets([output], STATIC_SECRETS);
  });

  it('runs with every secret set and Redis out of reach: no secret in its log', async () => {
    const port = await findFreePort();
    const closedPort = await findFreePort();
    const { output } = await runServe(
      {
        WECHAT_TOKEN: WX_TOKEN,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'trace',
        REDIS_URL: `rediss://default:${REDIS_PASSWORD}@127.0.0.1:${closedPort}/0`,
        WECHAT_APPID: APP_ID,
        WECHAT_APPSECRET: APP_SECRET,
        WECHAT_ENCODING_AES_KEY: AES_KEY,
        WECHAT_ENCODING_AES_KEY_PREVIOUS: PREVIOUS_AES_KEY,
        WECHAT_API_BASE: api.url,
      },
      /Redis connection error[\s\S]*listening on|listening on[\s\S]*Redis connection error/,
      async () => {
        const openid = `oSecrets${hex(6)}`;
        const response = await fetch(`http://127.0.0.1:${port}/wechat${signedQuery(openid, WX_TOKEN)}`, { method: 'POST', body: textXml(openid, '累加器') });
        expect(response.status).toBe(200); // the apology: the store is out of reach
      },
    );
    expect(output).toMatch(/dialog state is kept in Redis at rediss:\/\/default:\*\*\*@127\.0\.0\.1/);
    expectNoSecrets([output], secretsOf(api));
  });
});
