/**
 * One server: store, engine, app, listening. Used by `main.ts` directly (one process) or in each
 * worker of `cluster.ts` (several processes sharing one port and one Redis).
 *
 * @module
 */
import type { Server } from 'node:http';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { router } from '../dialogs/router.js';
import type { Config } from './config.js';
import { DialogEngine } from './dialog/engine.js';
import type { Router } from './dialog/router.js';
import { MemoryStore } from './dialog/store/memory-store.js';
import { RedisStore } from './dialog/store/redis-store.js';
import { createRedisClient, createRedisClusterClient } from './dialog/store/redis-client.js';
import type { DialogStore } from './dialog/store/store.js';
import { MemoryAccessTokenCache, RedisAccessTokenCache, SharedAccessToken } from './delivery/access-token.js';
import { CustomerServiceSender } from './delivery/late-replies.js';
import { createApp, type AppOptions } from './http/app.js';
import { fetchStableAccessToken } from './wechat/customer-service.js';
import { text } from './wechat/replies.js';

/** A running server. */
export interface RunningServer {
  /** Stops accepting connections, lets requests and late turns in flight finish, then closes the store. */
  close(): Promise<void>;
}

/** While Redis is down the client reports every reconnection attempt; log at most one line per 30 s. */
const CONNECTION_ERROR_LOG_INTERVAL_MS = 30_000;

/**
 * A warning logger for repeated errors: the first at once, then at most one line per `intervalMs`
 * **milliseconds**, saying how many were left out since the last line.
 */
export function throttledWarning(logger: Pick<Logger, 'warn'>, message: string, intervalMs: number, now = Date.now): (err: Error) => void {
  let lastAt = -Infinity;
  let skipped = 0;
  return (err) => {
    if (now() - lastAt < intervalMs) {
      skipped += 1;
      return;
    }
    logger.warn({ err: err.message, ...(skipped > 0 ? { skipped } : {}) }, message);
    lastAt = now();
    skipped = 0;
  };
}

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

/** The URL without its password, for logs. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** The dialog store and, with Redis, its client (shared with the access_token cache). */
function createStore(config: Config, logger: Logger): { store: DialogStore; redis?: Redis | Cluster } {
  if (config.redisUrl === undefined) {
    logger.info('REDIS_URL is not set: dialog state is kept in this process only (development mode)');
    return { store: new MemoryStore() };
  }
  const onError = throttledWarning(logger, 'Redis connection error', CONNECTION_ERROR_LOG_INTERVAL_MS);
  if (config.redisCluster) {
    const cluster = createRedisClusterClient(config.redisUrl, { onError });
    logger.info({ keyPrefix: config.redisKeyPrefix }, `dialog state is kept in Redis Cluster (seed ${redactUrl(config.redisUrl)})`);
    return { store: new RedisStore({ redis: cluster, keyPrefix: config.redisKeyPrefix }), redis: cluster };
  }
  const redis = createRedisClient(config.redisUrl, { onError });
  logger.info({ keyPrefix: config.redisKeyPrefix }, `dialog state is kept in Redis at ${redactUrl(config.redisUrl)}`);
  return { store: new RedisStore({ redis, keyPrefix: config.redisKeyPrefix }), redis };
}

/** Late replies as customer-service messages, with the access_token shared through Redis when there is one. */
function createLateReplies(
  config: Config,
  logger: Logger,
  redis: Redis | Cluster | undefined,
  pending: PendingWork,
): AppOptions['lateReplies'] {
  const late = config.lateReplies;
  if (late === undefined) return undefined;
  const api = { baseUrl: late.apiBase };
  const cache =
    redis === undefined ? new MemoryAccessTokenCache() : new RedisAccessTokenCache(redis, { keyPrefix: config.redisKeyPrefix, appId: late.appId });
  const token = new SharedAccessToken({ cache, fetchToken: () => fetchStableAccessToken(late.appId, late.appSecret, api) });
  const sender = new CustomerServiceSender({ token, api });
  logger.info(
    { deadlineMs: late.deadlineMs, apiBase: late.apiBase },
    'late replies: a turn still running at the deadline is answered success and its reply sent as a customer-service message',
  );
  return { deadlineMs: late.deadlineMs, send: (openid, reply) => sender.send(openid, reply), track: (work) => pending.track(work) };
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** The router table. @default the demo's, `dialogs/router.ts` */
  readonly router?: Router;
}

/**
 * Starts listening on `config.host:config.port`.
 * @throws when the port cannot be bound (the error of `server.listen`).
 */
export async function startServer(config: Config, logger: Logger, options: StartServerOptions = {}): Promise<RunningServer> {
  const { store, redis } = createStore(config, logger);
  const pending = new PendingWork();
  const lateReplies = createLateReplies(config, logger, redis, pending);
  const engine = new DialogEngine({
    router: options.router ?? router,
    store,
    ttlSeconds: config.dialogTtlSeconds,
    maxMessages: config.dialogMaxMessages,
    apology: text(config.apologyText),
    logger,
  });
  const app = createApp({
    token: config.token,
    path: config.path,
    engine,
    logger,
    ...(config.security === undefined ? {} : { security: config.security }),
    ...(lateReplies === undefined ? {} : { lateReplies }),
  });
  if (config.security !== undefined) {
    logger.info(
      { appId: config.security.appId, required: config.security.required, previousKey: config.security.previousEncodingAESKey !== undefined },
      config.security.required ? 'security mode (安全模式): plaintext pushes are refused' : 'security mode (安全模式) or compatible mode (兼容模式): encrypted and plaintext pushes accepted',
    );
  }
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.port, config.host, () => resolve(s));
    s.once('error', reject);
  });
  logger.info(
    { host: config.host, port: config.port, path: config.path, dialogTtlSeconds: config.dialogTtlSeconds },
    `listening on http://${config.host}:${config.port}${config.path}`,
  );
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          // Late turns outlive their requests: let them commit and send before the store closes.
          void pending
            .settled()
            .then(() => store.close())
            .finally(resolve);
        });
        server.closeIdleConnections();
      }),
  };
}
