/**
 * Liveness and readiness, for a load balancer or an orchestrator (Kubernetes probes, a cloud load
 * balancer's health check):
 *
 * - {@link healthHandler} (`GET /healthz`): `200 ok` as long as the process serves HTTP;
 * - {@link readinessHandler} (`GET /readyz`): `200 ready` only when the dialog store answers (for
 *   Redis: connected, and a `PING` answered within 1 s), else `503 not ready: <reason>`; and
 *   `503 not ready: shutting down` from the moment a shutdown begins.
 *
 * Neither needs a signature, and neither says anything a caller could use against the server: the
 * reason is the store's short description of what failed, without its advice.
 *
 * Both are plain `(req, res) => void` functions typed with Node's own request and response, so a
 * host app mounts them where it wants: `app.get('/readyz', readinessHandler({ store }))`. The
 * standalone server mounts them at `HEALTH_PATH` and `READY_PATH`.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isValidTimeoutMs } from '../dialog/dialog.js';
import type { DialogStore } from '../dialog/store/store.js';

/**
 * A handler for a GET route, typed with Node's request and response: mount it with Express
 * (`app.get(path, handler)`) or call it from a bare `http.createServer` callback.
 */
export type HealthRequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Default {@link ReadinessHandlerOptions.timeoutMs}: 1000 ms. */
export const DEFAULT_READINESS_TIMEOUT_MS = 1_000;

/** Options of {@link readinessHandler}. */
export interface ReadinessHandlerOptions {
  /**
   * The store whose `ping()` decides readiness: the one given to `wechatDialog` (the middleware
   * does not expose it: keep a reference). A store without `ping` is taken as ready.
   */
  readonly store: DialogStore;
  /**
   * Answers `true` once the server is shutting down: readiness is then `503 not ready: shutting
   * down` whatever the store says, so a load balancer stops sending new requests while those in
   * flight finish.
   * @default () => false
   */
  readonly isShuttingDown?: () => boolean;
  /**
   * How long to wait for the store's answer, in **milliseconds**, before answering 503 (a positive
   * integer). Keep it below the prober's own timeout (Kubernetes: 1 s by default).
   * @default 1000
   */
  readonly timeoutMs?: number;
}


/** Answers `status` with a short text body, never cached. Only GET and HEAD are answered; others get 405. */
function answer(req: IncomingMessage, res: ServerResponse, status: number, body: string): void {
  if (res.headersSent || res.writableEnded) return;
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  // Node sends no body in answer to HEAD.
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Whether `req` is a GET or HEAD; answers `405` (with `Allow`) otherwise. */
function acceptMethod(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.setHeader('Allow', 'GET, HEAD');
  answer(req, res, 405, 'method not allowed');
  return false;
}

/**
 * Liveness: `200 ok` (`text/plain`) to every GET or HEAD, as long as the process serves HTTP. It
 * checks nothing else: a process that answers it needs no restart, even while Redis is away (use
 * {@link readinessHandler} to take it out of rotation then).
 */
export function healthHandler(): HealthRequestHandler {
  return (req, res) => {
    if (acceptMethod(req, res)) answer(req, res, 200, 'ok');
  };
}

/**
 * What failed, in one short line: the first line of the error's message, without the advice the
 * store adds after `: check …` (that is for the log), at most 200 characters.
 */
function shortReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const line = (message.split('\n')[0] ?? '').replace(/:\s*check\b.*$/, '').trim();
  return (line === '' ? 'the store did not answer' : line).slice(0, 200);
}

/**
 * Readiness: `200 ready` (`text/plain`) when `store.ping()` resolves within `timeoutMs`
 * milliseconds; `503 not ready: <reason>` when it rejects (e.g. `not ready: Redis did not answer
 * PING within 1000 ms`) or does not settle in time (`not ready: the store did not answer within
 * 1000 ms`); `503 not ready: shutting down` while `isShuttingDown()` says so (checked before and
 * after the ping). Each request sends one ping; nothing is cached between requests.
 *
 * @throws {RangeError} when `timeoutMs` is not a positive integer of milliseconds (at most 2^31 - 1).
 */
export function readinessHandler(options: ReadinessHandlerOptions): HealthRequestHandler {
  const { store, isShuttingDown = () => false, timeoutMs = DEFAULT_READINESS_TIMEOUT_MS } = options;
  if (!isValidTimeoutMs(timeoutMs)) {
    throw new RangeError(`readinessHandler: timeoutMs must be a positive integer of milliseconds, got ${timeoutMs}`);
  }
  const check = async (): Promise<string | undefined> => {
    if (store.ping === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, `the store did not answer within ${timeoutMs} ms`);
    });
    const pinged = Promise.resolve()
      .then(() => store.ping?.())
      .then(
        () => undefined,
        (err: unknown) => shortReason(err),
      );
    try {
      return await Promise.race([pinged, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };
  return (req, res) => {
    if (!acceptMethod(req, res)) return;
    if (isShuttingDown()) {
      answer(req, res, 503, 'not ready: shutting down');
      return;
    }
    void check().then((reason) => {
      if (isShuttingDown()) answer(req, res, 503, 'not ready: shutting down');
      else if (reason === undefined) answer(req, res, 200, 'ready');
      else answer(req, res, 503, `not ready: ${reason}`);
    });
  };
}
