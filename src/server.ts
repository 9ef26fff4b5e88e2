/**
 * One server: store, engine, app, listening. Used by `main.ts` directly (one process) or in each
 * worker of `cluster.ts` (several processes sharing one port and one Redis).
 *
 * @module
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Router } from './dialog/router.js';
import { MemoryStore } from './dialog/store/memory-store.js';
import { RedisStore } from './dialog/store/redis-store.js';
import { createRedisClient, createRedisClusterClient } from './dialog/store/redis-client.js';
import type { DialogStore } from './dialog/store/store.js';
import { standaloneApp } from './http/app.js';
import { IN_PROCESS_STORE_WARNING, wechatDialog } from './http/wechat-dialog.js';

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

/**
 * A Redis URL as it may appear in a log line: the password replaced by `***`
 * (`rediss://user:***@host:6380/0`, `redis://:***@host`), and a user name without a password too
 * (`redis://***@host`: it is likely a password without its colon). A URL that does not parse, or
 * has an `@` after its host (a password with an unencoded `/`, `?` or `#`), is shown as its scheme
 * only (`redis://[redacted]`): where the password ends is unknown.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0] ?? '';
    return `${scheme}[redacted]`;
  }
  // An '@' after the host means a password with an unencoded '/', '?' or '#': the host is part of it.
  if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) return `${parsed.protocol}//[redacted]`;
  if (parsed.password !== '') parsed.password = '***';
  else if (parsed.username !== '') parsed.username = '***';
  return parsed.href;
}

/** The dialog store: Redis (or Redis Cluster) with `REDIS_URL`, else this process's memory. */
function createStore(config: Config, logger: Logger): DialogStore {
  if (config.redisUrl === undefined) {
    logger.info(`REDIS_URL is not set: ${IN_PROCESS_STORE_WARNING}`);
    return new MemoryStore({ maxEntries: config.memoryStoreMaxEntries, logger });
  }
  const onError = throttledWarning(logger, 'Redis connection error', CONNECTION_ERROR_LOG_INTERVAL_MS);
  if (config.redisCluster) {
    const cluster = createRedisClusterClient(config.redisUrl, { onError });
    logger.info({ keyPrefix: config.redisKeyPrefix }, `dialog state is kept in Redis Cluster (seed ${redactUrl(config.redisUrl)})`);
    return new RedisStore({ redis: cluster, keyPrefix: config.redisKeyPrefix });
  }
  const redis = createRedisClient(config.redisUrl, { onError });
  logger.info({ keyPrefix: config.redisKeyPrefix }, `dialog state is kept in Redis at ${redactUrl(config.redisUrl)}`);
  return new RedisStore({ redis, keyPrefix: config.redisKeyPrefix });
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** The router table (the `serve` command loads it from the module given with `--router`). */
  readonly router: Router;
}

/** Thrown by {@link startServer} when the port cannot be bound; `code` is Node's (`EADDRINUSE`, `EACCES`, ...). */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Listens on `port` and `host`; rejects with a {@link ListenError} saying why it cannot. */
function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? 'ERROR';
      const why =
        code === 'EADDRINUSE'
          ? 'the port is already in use (another server is running there): stop it or set PORT'
          : code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges): use a port above 1024 behind a reverse proxy, or set PORT'
            : code === 'EADDRNOTAVAIL'
              ? 'the address is not one of this machine\'s: set HOST'
              : err.message;
      reject(new ListenError(code, `cannot listen on ${host}:${port}: ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Starts the standalone server: the {@link wechatDialog} middleware for the config, at
 * `config.path` on a bare app, listening on `config.host:config.port`.
 * @throws {ListenError} when the port cannot be bound (in use, no permission, address not local);
 *   the store is closed again.
 */
export async function startServer(config: Config, logger: Logger, options: StartServerOptions): Promise<RunningServer> {
  const store = createStore(config, logger);
  const middleware = wechatDialog({
    token: config.token,
    router: options.router,
    store,
    logger,
    ttlSeconds: config.dialogTtlSeconds,
    maxMessages: config.dialogMaxMessages,
    apology: config.apologyText,
    maxAgeSeconds: config.requestMaxAgeSeconds,
    effectTimeoutMs: config.effectTimeoutMs,
    cacheBytes: config.stateCacheBytes,
    ...(config.security === undefined
      ? {}
      : {
          appId: config.security.appId,
          encodingAESKey: config.security.encodingAESKey,
          requireEncryption: config.security.required,
          ...(config.security.previousEncodingAESKey === undefined ? {} : { previousEncodingAESKey: config.security.previousEncodingAESKey }),
        }),
    ...(config.lateReplies === undefined
      ? {}
      : {
          appId: config.lateReplies.appId,
          appSecret: config.lateReplies.appSecret,
          replyDeadlineMs: config.lateReplies.deadlineMs,
          apiBase: config.lateReplies.apiBase,
        }),
  });
  if (config.security !== undefined) {
    logger.info(
      { appId: config.security.appId, required: config.security.required, previousKey: config.security.previousEncodingAESKey !== undefined },
      config.security.required ? 'security mode (安全模式): plaintext pushes are refused' : 'security mode (安全模式) or compatible mode (兼容模式): encrypted and plaintext pushes accepted',
    );
  }
  const server = createServer(standaloneApp(config.path, middleware, logger));
  try {
    await listen(server, config.port, config.host);
  } catch (err) {
    await middleware.close();
    throw err;
  }
  logger.info(
    { host: config.host, port: config.port, path: config.path, dialogTtlSeconds: config.dialogTtlSeconds },
    `listening on http://${config.host}:${config.port}${config.path}`,
  );
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          void middleware.close().finally(resolve);
        });
        server.closeIdleConnections();
      }),
  };
}
