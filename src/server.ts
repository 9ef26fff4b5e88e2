/**
 * One server: store, engine, app, listening. Used by the `serve` command directly (one process) or
 * in each worker of `cluster.ts` (several processes sharing one port and one Redis).
 *
 * @module
 */
import type { EventEmitter } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { redactUrl } from './logging.js';
import type { Router } from './dialog/router.js';
import { MemoryStore } from './dialog/store/memory-store.js';
import { RedisStore } from './dialog/store/redis-store.js';
import { createRedisClient, createRedisClusterClient } from './dialog/store/redis-client.js';
import type { DialogStore } from './dialog/store/store.js';
import { standaloneApp, type OperationalRoute } from './http/app.js';
import { createMetrics } from './observability/metrics.js';
import { metricsHandler, shareWithPrimary } from './observability/metrics-endpoint.js';
import { healthHandler, readinessHandler } from './http/health.js';
import { IN_PROCESS_STORE_WARNING, wechatDialog } from './http/wechat-dialog.js';

/** A running server. */
export interface RunningServer {
  /**
   * Shuts down: readiness (`READY_PATH`) answers 503 at once; the requests in flight finish; then
   * the listener closes (idle connections with it), late turns finish, and the store closes.
   */
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

export { redactUrl } from './logging.js';

/**
 * Logs the ups and downs of a Redis connection (an ioredis `Redis` or `Cluster`), from its events:
 *
 * - `Redis connection lost` (warn, field `reason`): on the first `close` or `end` after `ready`,
 *   once per loss; the reason is the last error reported since the connection was ready (see the
 *   returned function), or `the connection was closed` when there was none;
 * - `Redis reconnected` (info, field `downMs`: how long it was down, in **milliseconds**): on the
 *   next `ready`. A client that never got ready before its first `close` (Redis unreachable at
 *   startup) counts as down since this function was called, and gets this line when it connects.
 *
 * Nothing is logged for a `close` or `end` while `isClosing()` is true: the server closes the
 * client itself on shutdown.
 *
 * @param now - the clock, in **milliseconds** (tests pass a fake one).
 * @returns the function to call with every `'error'` event of the client (the reason of the next loss).
 */
export function watchRedisConnection(
  client: Pick<EventEmitter, 'on'>,
  logger: Pick<Logger, 'info' | 'warn'>,
  isClosing: () => boolean,
  now: () => number = Date.now,
): (err: Error) => void {
  const startedAt = now();
  let ready = false;
  /** When the connection went down (`undefined`: it is up, or has not failed yet). */
  let downSince: number | undefined;
  let lastError: string | undefined;
  client.on('ready', () => {
    if (downSince !== undefined) logger.info({ downMs: Math.max(0, now() - downSince) }, 'Redis reconnected');
    ready = true;
    downSince = undefined;
    lastError = undefined;
  });
  const lost = (): void => {
    if (isClosing()) return;
    if (ready) {
      ready = false;
      downSince = now();
      logger.warn({ reason: lastError ?? 'the connection was closed' }, 'Redis connection lost');
    } else if (downSince === undefined) {
      downSince = startedAt; // never connected yet
    }
  };
  client.on('close', lost);
  client.on('end', lost);
  return (err) => {
    lastError = err.message;
  };
}

/**
 * The dialog store: Redis (or Redis Cluster) with `REDIS_URL`, else this process's memory. A Redis
 * client logs its errors (throttled) and its losses and reconnections ({@link watchRedisConnection}),
 * except once `isClosing()` is true.
 */
function createStore(config: Config, logger: Logger, isClosing: () => boolean): DialogStore {
  if (config.redisUrl === undefined) {
    logger.info(`REDIS_URL is not set: ${IN_PROCESS_STORE_WARNING}`);
    return new MemoryStore({ maxEntries: config.memoryStoreMaxEntries, logger });
  }
  const warnError = throttledWarning(logger, 'Redis connection error', CONNECTION_ERROR_LOG_INTERVAL_MS);
  let noteError: (err: Error) => void = () => {};
  const onError = (err: Error): void => {
    noteError(err);
    warnError(err);
  };
  if (config.redisCluster) {
    const cluster = createRedisClusterClient(config.redisUrl, { onError });
    noteError = watchRedisConnection(cluster, logger, isClosing);
    logger.info({ keyPrefix: config.redisKeyPrefix }, `dialog state is kept in Redis Cluster (seed ${redactUrl(config.redisUrl)})`);
    return new RedisStore({ redis: cluster, keyPrefix: config.redisKeyPrefix });
  }
  const redis = createRedisClient(config.redisUrl, { onError });
  noteError = watchRedisConnection(redis, logger, isClosing);
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
 * `config.path` on a bare app, with liveness at `config.healthPath` and readiness at
 * `config.readyPath` (see `http/health.ts`), listening on `config.host:config.port`. With Redis, a
 * first `PING` is sent once listening: if it fails, that is logged once (startup goes on, and
 * readiness answers 503 until Redis answers).
 * @throws {ListenError} when the port cannot be bound (in use, no permission, address not local);
 *   the store is closed again.
 */
export async function startServer(config: Config, logger: Logger, options: StartServerOptions): Promise<RunningServer> {
  /** True from the moment `close()` is called: readiness answers 503, Redis losses are not logged. */
  let shuttingDown = false;
  const isShuttingDown = (): boolean => shuttingDown;
  const store = createStore(config, logger, isShuttingDown);
  const metrics = createMetrics();
  shareWithPrimary(metrics); // with WEB_CONCURRENCY, the primary sums every worker's metrics
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
    logTurns: config.logTurns,
    metrics,
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
          delivery: { graceMs: config.lateReplies.deliveryGraceMs },
        }),
  });
  const pushApi =
    config.push === undefined
      ? undefined
      : middleware.pushApi({
          keys: config.push.keys,
          path: config.push.path,
          ratePerMinute: config.push.ratePerMinute,
          ...(config.account === undefined ? {} : { account: config.account }),
        });
  if (config.push !== undefined) {
    logger.info(
      { path: config.push.path, services: config.push.keys.map((k) => k.service), ratePerMinute: config.push.ratePerMinute, dialogs: config.account !== undefined },
      'push API on: other services send messages and start dialogs through it',
    );
  }
  if (config.security !== undefined) {
    logger.info(
      { appId: config.security.appId, required: config.security.required, previousKey: config.security.previousEncodingAESKey !== undefined },
      config.security.required ? 'security mode (安全模式): plaintext pushes are refused' : 'security mode (安全模式) or compatible mode (兼容模式): encrypted and plaintext pushes accepted',
    );
  }
  const routes: OperationalRoute[] = [
    { path: config.healthPath, handler: healthHandler() },
    { path: config.readyPath, handler: readinessHandler({ store, isShuttingDown }) },
    ...(config.metricsPath === undefined
      ? []
      : [{ path: config.metricsPath, handler: metricsHandler(metrics, config.metricsToken === undefined ? {} : { token: config.metricsToken }) }]),
  ];
  // The responses not yet finished, so that a shutdown can wait for them before closing the
  // listener; counted before the app sees the request.
  const inFlight = new Set<ServerResponse>();
  const server = createServer((_req, res) => {
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });
  server.on('request', standaloneApp(config.path, middleware, logger, routes, pushApi === undefined ? [] : [pushApi]));
  try {
    await listen(server, config.port, config.host);
  } catch (err) {
    shuttingDown = true;
    await middleware.close();
    throw err;
  }
  logger.info(
    { host: config.host, port: config.port, path: config.path, dialogTtlSeconds: config.dialogTtlSeconds },
    `listening on http://${config.host}:${config.port}${config.path}`,
  );
  if (config.redisUrl !== undefined && store.ping !== undefined) {
    // Not awaited: a Redis that is not there yet must not stop the server (it reconnects by itself).
    store.ping().catch((err: unknown) => {
      if (shuttingDown) return;
      const why = err instanceof Error ? err.message : String(err);
      logger.warn({}, `Redis is not reachable at startup: ${why}; ${config.readyPath} answers 503 until it is`);
    });
  }
  return {
    close: async () => {
      shuttingDown = true; // readiness answers 503 from now on
      // The listener stays open while the requests in flight finish, so a load balancer sees the 503.
      await Promise.all([...inFlight].map((res) => new Promise<void>((resolve) => res.once('close', () => resolve()))));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await middleware.close().catch((err: unknown) => logger.error({ err }, 'could not close the dialog store cleanly'));
    },
  };
}
