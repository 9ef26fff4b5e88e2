/**
 * The standalone app: a bare Express app with the WeChat endpoint mounted at one path, a short 404
 * for every other path, and a last-resort error handler. Never a stack trace. The table of what
 * the endpoint answers is in `wechat-handler.ts`.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { EngineLogger } from '../dialog/engine.js';
import { expressHandler } from './express-adapter.js';
import { createWeChatHandler, type HandlerOptions } from './wechat-handler.js';

/** Options of {@link createApp}: the handler's, plus the path and the body limit. */
export interface AppOptions extends HandlerOptions {
  /** The URL path WeChat calls. @default '/wechat' */
  readonly path?: string;
  /** Largest accepted POST body, in **bytes**; larger gets 413. @default 65536 (64 KiB) */
  readonly bodyLimitBytes?: number;
}

/**
 * An operational GET route of the standalone app (health, readiness, ...): `handler` answers GET
 * and HEAD at exactly `path`, without a signature.
 */
export interface OperationalRoute {
  /** The URL path, e.g. `/healthz`. */
  readonly path: string;
  /** What answers it (`healthHandler()`, `readinessHandler({ store })`, ...). */
  readonly handler: RequestHandler;
}

/**
 * `endpoint` (the WeChat middleware) mounted at `path` on a bare app, with a 404 for every other
 * path and an error handler that logs and answers `500 internal error`. `routes` (health,
 * readiness, ...) are mounted with `app.get(route.path, route.handler)` after the WeChat endpoint
 * (so pushes skip their matching) and before the 404, in the order given; then `apis` (handlers
 * that match their own paths, such as the push API) with `app.use`.
 */
export function standaloneApp(
  path: string,
  endpoint: RequestHandler,
  logger: EngineLogger,
  routes: readonly OperationalRoute[] = [],
  apis: readonly ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void)[] = [],
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // WeChat's path first: every push then skips the operational routes' matching (their paths
  // differ from it; the endpoint passes anything under it but itself on, so they stay reachable).
  app.use(path, endpoint);
  for (const route of routes) app.get(route.path, route.handler);
  for (const api of apis) app.use(api);
  app.use((_req, res) => {
    res.status(404).type('text/plain; charset=utf-8').send('not found');
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err }, 'unexpected error while handling a request');
    if (!res.headersSent) res.status(500).type('text/plain; charset=utf-8').send('internal error');
  });
  return app;
}

/** The app for an engine you built yourself (tests, tools). `wechatDialog` is the usual way in. */
export function createApp(options: AppOptions): express.Express {
  const endpoint = expressHandler(createWeChatHandler(options), { bodyLimitBytes: options.bodyLimitBytes, logger: options.logger });
  return standaloneApp(options.path ?? '/wechat', endpoint, options.logger);
}
