/**
 * `wechatDialog(options)`: the package's front door, an Express middleware to mount in the app a
 * team already runs, as node-webot users do with `wechat(config, handler)`:
 *
 * ```ts
 * app.use('/wechat', wechatDialog({ token: 'mytoken123', router }));
 * ```
 *
 * It answers GET (the `echostr` handshake) and POST (pushes) on its mount path and passes every
 * other request on to the host. The standalone server (`wechat-dialog serve`) is this middleware
 * on a bare app.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_HANDLED_TTL_SECONDS, DialogEngine, type EngineLogger } from '../dialog/engine.js';
import type { Router } from '../dialog/router.js';
import { MemoryStore } from '../dialog/store/memory-store.js';
import { RedisStore } from '../dialog/store/redis-store.js';
import type { DialogStore } from '../dialog/store/store.js';
import { MemoryAccessTokenCache, RedisAccessTokenCache, SharedAccessToken, type AccessTokenCache } from '../delivery/access-token.js';
import { BullmqDeliveryQueue } from '../delivery/bullmq-queue.js';
import type { DeliveryQueue } from '../delivery/delivery-queue.js';
import { InProcessDeliveryQueue } from '../delivery/in-process-queue.js';
import { newReplyDeliveryId, outboxOf } from '../delivery/outbox.js';
import { WeChatMessageSender } from '../delivery/sender.js';
import { Cluster, Redis } from 'ioredis';
import { createPushApi, type PushApiHandler, type PushApiOptions } from './push-api.js';
import { APP_ID_FORMAT, parseEncodingAESKey } from '../wechat/crypto.js';
import { TOKEN_FORMAT } from '../wechat/signature.js';
import { fetchStableAccessToken, WECHAT_API_BASE } from '../wechat/customer-service.js';
import { isReply, text, type Reply } from '../wechat/replies.js';
import { createLogger } from '../logging.js';
import type { Metrics } from '../observability/metrics.js';
import { combineObservers, turnLog } from '../observability/turn-log.js';
import { expressHandler } from './express-adapter.js';
import { createWeChatHandler, DEFAULT_MAX_AGE_SECONDS, type LateReplyOptions } from './wechat-handler.js';

/** Options of {@link wechatDialog}. Every field but `token` and `router` is optional. */
export interface WechatDialogOptions {
  /** The Token (令牌) set in the Official Account console: 3 to 32 letters or digits. */
  readonly token: string;
  /** The router table (`createRouter({ routes, fallback })`). */
  readonly router: Router;
  /**
   * Where dialog state lives: `new RedisStore({ redis: createRedisClient(url), keyPrefix })` to share
   * it between processes and keep it across restarts. `close()` of the middleware closes it.
   * @default a `MemoryStore` in this process, with a warning in the log (development only)
   */
  readonly store?: DialogStore;
  /** How long a dialog waits for the user's next message, in **seconds**; renewed on every turn. @default 60 */
  readonly ttlSeconds?: number;
  /** Most messages one dialog may receive; one more ends it. @default 100 */
  readonly maxMessages?: number;
  /** The reply when a dialog throws or the store fails: a text, or any reply. @default '抱歉，出了点问题，请稍后再试。' */
  readonly apology?: string | Reply;
  /** Where to log (pino, or anything with `info`/`warn`/`error(fields, message)`). @default pino() at `info`, JSON on stdout */
  readonly logger?: EngineLogger;
  /** Largest accepted POST body, in **bytes**; larger gets 413. @default 65536 (64 KiB) */
  readonly bodyLimitBytes?: number;
  /**
   * The freshness window, in **seconds**: a push whose `timestamp` (or, encrypted, whose
   * `CreateTime`) is further than this from the server's clock gets 401. Handled messages are
   * remembered for twice as long (at least 600 s), so a replay within the window gets the first
   * reply and runs nothing. `0` turns the check off: unsafe, since in plaintext mode one captured
   * signed query string then signs any body forever (protocol README §1.2).
   * @default 300
   */
  readonly maxAgeSeconds?: number;
  /** How long one `record()` effect may take, in **milliseconds**, unless its call sets `timeoutMs`. @default 30000 */
  readonly effectTimeoutMs?: number;
  /** The per-process budget of the cache of committed states, in **bytes** (`0`: no cache). @default 67108864 (64 MiB) */
  readonly cacheBytes?: number;
  /**
   * One `info` line per turn (`msg` `turn`: masked openid, `MsgId`, `MsgType`, dialog, outcome,
   * replay length, duration in ms; never the content).
   * @default true
   */
  readonly logTurns?: boolean;
  /**
   * Prometheus metrics to feed (`createMetrics()`); serve them with `metricsHandler(metrics)`.
   * @default none
   */
  readonly metrics?: Metrics;
  /** The account's AppID (开发者ID): needed by security mode (`encodingAESKey`) and late replies (`appSecret`). */
  readonly appId?: string;
  /**
   * The EncodingAESKey (消息加解密密钥, 43 letters or digits): turns on security mode (安全模式) and
   * compatible mode (兼容模式). Needs `appId`. Source: 消息加解密说明 (protocol README §4).
   * @default undefined: plaintext only; an encrypted push gets 400
   */
  readonly encodingAESKey?: string;
  /** The previous EncodingAESKey, tried when `encodingAESKey` cannot decrypt a push (while changing keys). */
  readonly previousEncodingAESKey?: string;
  /** Refuse plaintext pushes (400). Needs `encodingAESKey`. @default false */
  readonly requireEncryption?: boolean;
  /**
   * The AppSecret (开发者密码): turns on late replies. A turn still running `replyDeadlineMs` after
   * the push arrived is answered `success`, and its reply is sent as a customer-service message
   * (客服消息) with the stable access_token. Needs `appId`.
   * @default undefined: a slow turn is simply waited for
   */
  readonly appSecret?: string;
  /** With `appSecret`: **milliseconds** after which a running turn is answered `success` (100 to 4900). @default 4500 */
  readonly replyDeadlineMs?: number;
  /** With `appSecret`: where WeChat's API is (a proxy, or a fake in tests). @default 'https://api.weixin.qq.com' */
  readonly apiBase?: string;
  /**
   * With `appSecret`: where processes share the access_token.
   * @default in Redis beside the state when `store` is a `RedisStore` (`<keyPrefix>access_token:<appId>`), else in this process
   */
  readonly accessTokenCache?: AccessTokenCache;
  /**
   * Where messages the server sends on its own go (late replies, pushes, the first reply of a
   * dialog a push started): sent by whichever process is alive, retried on transient WeChat
   * errors, never twice. `close()` of the middleware closes it.
   * @default with `appSecret`: a `BullmqDeliveryQueue` on the store's Redis when `store` is a
   *   `RedisStore` (durable), else an `InProcessDeliveryQueue` (lost with the process; logged)
   */
  readonly deliveryQueue?: DeliveryQueue;
  /**
   * With the default queue, its timing: `graceMs`, how long a reply made durable before its commit
   * waits for its own process before another process checks the commit and sends it (the first
   * died in between), **milliseconds**, default 10 000; `attempts`, sends in all for transient
   * WeChat errors (-1 busy, 45009/45011 quotas, no answer), default 8; `backoffMs`, the first
   * retry's delay, doubling after each, **milliseconds**, default 1 000.
   */
  readonly delivery?: { readonly graceMs?: number; readonly attempts?: number; readonly backoffMs?: number };
}

/**
 * The middleware: call it as Express does (`app.use(path, middleware)`). Typed with Node's own
 * request and response, so using it needs no Express type package.
 */
export interface WechatDialogMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  /** The engine behind it (for tests and tools). */
  readonly engine: DialogEngine;
  /** The delivery queue (late replies, pushes), when there is one (`appSecret` or `deliveryQueue`). */
  readonly deliveryQueue: DeliveryQueue | undefined;
  /**
   * The push API (`POST /push`, `GET /push/<id>`) on this middleware's engine and delivery queue:
   * mount it beside the middleware (`app.use(wx.pushApi({ keys: parseApiKeys(process.env.PUSH_API_KEYS) }))`).
   * The Redis rate limit uses the store's client when the store is a `RedisStore`. See docs/push.md.
   * @throws {WechatDialogOptionsError} (`appSecret`) when there is no delivery queue to send pushes with.
   * @throws {PushApiOptionsError} for invalid push API options.
   */
  pushApi(options: Omit<PushApiOptions, 'queue' | 'engine' | 'router'>): PushApiHandler;
  /**
   * Waits for late turns still running (their commit and customer-service send), then closes the
   * store. Call it on shutdown, after the HTTP server stopped accepting requests.
   */
  close(): Promise<void>;
}

/** Thrown by {@link wechatDialog} for options that cannot work; the message names the option and what to do. */
export class WechatDialogOptionsError extends Error {
  override readonly name = 'WechatDialogOptionsError';
  readonly code = 'INVALID_OPTIONS';
  constructor(
    /** The option at fault, e.g. `token`. */
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the in-process store means, logged whenever it is used. */
export const IN_PROCESS_STORE_WARNING =
  'dialog state is kept in this process only (development mode): not shared between processes, lost on restart';

/** Work that outlives its request (late turns), so that a shutdown can wait for it. */
class PendingWork {
  private readonly works = new Set<Promise<void>>();
  track(work: Promise<void>): void {
    this.works.add(work);
    void work.finally(() => this.works.delete(work));
  }
  /** Resolves when every tracked work has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.works]);
  }
}

function validate(options: WechatDialogOptions): void {
  const fail = (option: string, message: string): never => {
    throw new WechatDialogOptionsError(option, `wechatDialog: ${option} ${message}`);
  };
  if (typeof options.token !== 'string' || !TOKEN_FORMAT.test(options.token)) {
    fail('token', 'must be the Token (令牌) from the Official Account console: 3 to 32 letters or digits');
  }
  if (typeof options.router?.decide !== 'function') fail('router', 'must be a router table: createRouter({ routes, fallback })');
  if (options.appId !== undefined && !APP_ID_FORMAT.test(options.appId)) {
    fail('appId', "must be the account's AppID (开发者ID), e.g. wx0123456789abcdef");
  }
  for (const option of ['encodingAESKey', 'previousEncodingAESKey'] as const) {
    const key = options[option];
    if (key === undefined) continue;
    try {
      parseEncodingAESKey(key);
    } catch {
      fail(option, 'must be the 43-letter-or-digit EncodingAESKey (消息加解密密钥) from the console');
    }
  }
  if (options.encodingAESKey !== undefined && options.appId === undefined) fail('encodingAESKey', 'needs appId: decrypted pushes are checked against it');
  if (options.previousEncodingAESKey !== undefined && options.encodingAESKey === undefined) fail('previousEncodingAESKey', 'needs encodingAESKey (the current key)');
  if (options.requireEncryption === true && options.encodingAESKey === undefined) {
    fail('requireEncryption', 'needs appId and encodingAESKey: without them nothing can be decrypted');
  }
  if (options.appSecret !== undefined && options.appId === undefined) fail('appSecret', 'needs appId: the access_token is fetched for that AppID');
  const maxAge = options.maxAgeSeconds;
  if (maxAge !== undefined && !(Number.isSafeInteger(maxAge) && maxAge >= 0 && maxAge <= 86_400)) {
    fail('maxAgeSeconds', 'must be a whole number of seconds from 0 (no check: unsafe) to 86400');
  }
  const deadline = options.replyDeadlineMs;
  if (deadline !== undefined && !(Number.isInteger(deadline) && deadline >= 100 && deadline <= 4_900)) {
    fail('replyDeadlineMs', 'must be a whole number of milliseconds from 100 to 4900 (WeChat waits 5 s)');
  }
  if (options.apology !== undefined && typeof options.apology !== 'string' && !isReply(options.apology)) {
    fail('apology', "must be a text or a reply built with text(), image(), …");
  }
}

/**
 * Builds the middleware. Mount it where WeChat calls (`app.use('/wechat', wechatDialog(…))`),
 * before any body parser that would turn a `text/xml` body into something other than a string or
 * a Buffer (`express.text()` and `express.raw()` before it are fine).
 *
 * @throws {WechatDialogOptionsError} for options that cannot work (a Token that is not 3 to 32
 *   letters or digits, an EncodingAESKey without `appId`, ...).
 * @throws {RangeError} for a `ttlSeconds` or `maxMessages` that is not a positive integer.
 */
export function wechatDialog(options: WechatDialogOptions): WechatDialogMiddleware {
  validate(options);
  const logger: EngineLogger = options.logger ?? createLogger('info');
  if (options.store === undefined) logger.warn({}, `no store given: ${IN_PROCESS_STORE_WARNING}; pass store: new RedisStore(…) in production`);
  const store = options.store ?? new MemoryStore({ logger });
  const apology = options.apology === undefined ? undefined : typeof options.apology === 'string' ? text(options.apology) : options.apology;
  const maxAgeSeconds = options.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  const delivery = createDelivery(options, store, logger);
  const engine = new DialogEngine({
    router: options.router,
    store,
    // A request is accepted up to maxAgeSeconds from its timestamp either way: remember for both sides.
    handledTtlSeconds: Math.max(DEFAULT_HANDLED_TTL_SECONDS, 2 * maxAgeSeconds),
    observer: combineObservers(options.logTurns === false ? undefined : turnLog(logger), options.metrics?.engine),
    ...(options.effectTimeoutMs === undefined ? {} : { effectTimeoutMs: options.effectTimeoutMs }),
    ...(options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes }),
    logger,
    ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }),
    ...(options.maxMessages === undefined ? {} : { maxMessages: options.maxMessages }),
    ...(apology === undefined ? {} : { apology }),
    ...(delivery === undefined ? {} : { outbox: outboxOf(delivery) }),
  });
  const pending = new PendingWork();
  const lateReplies = delivery === undefined ? undefined : createLateReplies(options, delivery, pending, logger);
  const { appId, encodingAESKey } = options;
  const handle = createWeChatHandler({
    token: options.token,
    engine,
    logger,
    maxAgeSeconds,
    ...(options.metrics === undefined ? {} : { observer: options.metrics.http }),
    ...(lateReplies === undefined ? {} : { lateReplies }),
    ...(appId === undefined || encodingAESKey === undefined
      ? {}
      : {
          security: {
            appId,
            encodingAESKey,
            ...(options.previousEncodingAESKey === undefined ? {} : { previousEncodingAESKey: options.previousEncodingAESKey }),
            required: options.requireEncryption === true,
          },
        }),
  });
  const handler = expressHandler(handle, { bodyLimitBytes: options.bodyLimitBytes, logger });
  const middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    handler(req as Parameters<typeof handler>[0], res as Parameters<typeof handler>[1], next);
  };
  return Object.assign(middleware, {
    engine,
    deliveryQueue: delivery,
    pushApi(pushOptions: Omit<PushApiOptions, 'queue' | 'engine' | 'router'>): PushApiHandler {
      if (delivery === undefined) {
        throw new WechatDialogOptionsError('appSecret', 'wechatDialog: pushApi needs appId and appSecret (or deliveryQueue): pushes are sent as customer-service or template messages');
      }
      return createPushApi({
        ...(store instanceof RedisStore ? { redis: store.client, rateLimitKeyPrefix: `${store.keyPrefix}push-rate` } : {}),
        logger,
        ...pushOptions,
        queue: delivery,
        engine,
        router: options.router,
      });
    },
    close: async () => {
      // Late turns outlive their requests: let them commit and hand their reply over before the queue and store close.
      await pending.settled();
      await delivery?.close();
      await store.close();
    },
  });
}

/**
 * The delivery queue: the one given, or with `appSecret` one made here (BullMQ on the store's Redis,
 * else in this process), sending with the stable access_token shared through Redis when the store
 * is Redis. `undefined` without either.
 */
function createDelivery(options: WechatDialogOptions, store: DialogStore, logger: EngineLogger): DeliveryQueue | undefined {
  if (options.deliveryQueue !== undefined) return options.deliveryQueue;
  const { appId, appSecret } = options;
  if (appId === undefined || appSecret === undefined) return undefined;
  const api = { baseUrl: options.apiBase ?? WECHAT_API_BASE };
  const cache =
    options.accessTokenCache ??
    (store instanceof RedisStore ? new RedisAccessTokenCache(store.client, { keyPrefix: store.keyPrefix, appId }) : new MemoryAccessTokenCache());
  const fetchToken = async () => {
    try {
      const fetched = await fetchStableAccessToken(appId, appSecret, api);
      options.metrics?.accessTokenFetched('ok');
      return fetched;
    } catch (err) {
      options.metrics?.accessTokenFetched('failed');
      throw err;
    }
  };
  const sender = new WeChatMessageSender({ token: new SharedAccessToken({ cache, fetchToken }), api });
  const common = {
    sender,
    store,
    logger,
    ...options.delivery,
    ...(options.metrics === undefined ? {} : { observer: options.metrics.delivery }),
  };
  if (!(store instanceof RedisStore)) return new InProcessDeliveryQueue(common);
  // A client made for the queue alone: it closes with the queue.
  const connection = blockingConnection(store.client);
  return new BullmqDeliveryQueue({ ...common, connection, closeConnection: true, keyPrefix: store.keyPrefix, ...bullPrefix(store) });
}

/**
 * A connection for BullMQ like the store's (same server, database, credentials, TLS) but one that
 * may block: the store's client fails fast, as a webhook needs, and BullMQ's worker waits on Redis.
 */
function blockingConnection(client: RedisStore['client']): Redis | Cluster {
  const overrides = { maxRetriesPerRequest: null, commandTimeout: undefined, keyPrefix: undefined };
  if (client instanceof Cluster) return client.duplicate(undefined, { redisOptions: { ...client.options.redisOptions, ...overrides } });
  return client.duplicate(overrides);
}

/** On a Redis Cluster, BullMQ's keys need one hash tag: `{<keyPrefix>bull}`. */
function bullPrefix(store: RedisStore): { readonly prefix?: string } {
  return store.client instanceof Cluster ? { prefix: `{${store.keyPrefix}bull}` } : {};
}

/** Late replies through the delivery queue: a turn's reply is prepared before its commit (the engine's outbox); anything else is enqueued. */
function createLateReplies(options: WechatDialogOptions, queue: DeliveryQueue, pending: PendingWork, logger: EngineLogger): LateReplyOptions {
  const deadlineMs = options.replyDeadlineMs ?? 4_500;
  logger.info({ deadlineMs }, 'late replies: a turn still running at the deadline is answered success and its reply sent as a customer-service message');
  return {
    deadlineMs,
    send: async (openid, reply) => {
      await queue.enqueue({ id: newReplyDeliveryId(), openid, message: { kind: 'reply', reply } });
      return 'queued';
    },
    track: (work) => pending.track(work),
  };
}
