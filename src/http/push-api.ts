/**
 * `createPushApi(options)`: the push API, other services' way to reach the account's users (issue
 * 13). A plain Node `(req, res, next)` handler, Express-compatible like `wechatDialog`:
 * `app.use(createPushApi({ keys, queue, … }))`. The logic is `PushService`; this is its HTTP face.
 *
 * | request | answer |
 * |---|---|
 * | any method on `<path>` or `<path>/<id>` without `Authorization: Bearer <key>` of `PUSH_API_KEYS`, or with a wrong key | `401 {"error"}`, `WWW-Authenticate: Bearer realm="push"`; the body is not read |
 * | `POST <path>`, more than the rate limit of this key in the last minute | `429 {"error"}`, `Retry-After: <seconds>`; the body is not read |
 * | `POST <path>` with a `Content-Type` other than `application/json` (UTF-8) | `415 {"error"}` |
 * | `POST <path>` with a body over `bodyLimitBytes` (64 KiB) | `413 {"error"}`, the connection closed |
 * | `POST <path>` with a body that is not JSON | `400 {"error"}` |
 * | `POST <path>` with an invalid body, `Idempotency-Key`, dialog name or dialog `input` | `400 {"error":"invalid push","issues":[{"path","message"}]}` |
 * | `POST <path>`, accepted | `202 {"id","status"}` (`queued`; for a repeated `Idempotency-Key`, the first push's id and current status, and `Idempotent-Replayed: true`), `Location: <path>/<id>` |
 * | `POST <path>` starting a dialog while the user is in another (`ifActive` `refuse`, the default) | `409 {"error":"the user is in another dialog","dialog"}` |
 * | `POST <path>` starting a dialog on a server without `WECHAT_ACCOUNT` | `501 {"error"}` saying to set it |
 * | `POST <path>` while the delivery queue or the dialog store fails | `503 {"error"}`: retry later, with the same `Idempotency-Key` |
 * | `POST <path>` whose dialog throws on its first message | `500 {"error"}`; nothing sent |
 * | `GET <path>/<id>` of a push of this key's service (within 24 hours) | `200 {"id","status","errcode"?,"errmsg"?,"createdAt","updatedAt"}` (ISO 8601 times, UTC) |
 * | `GET <path>/<id>` unknown, expired, or another service's | `404 {"error"}` |
 * | another method on `<path>` or `<path>/<id>` | `405 {"error"}`, `Allow` |
 * | any other path | `next()`, or `404` without `next` |
 * | an unexpected error | `500 {"error":"internal error"}`, logged; never a stack |
 *
 * Every answer is JSON (`application/json; charset=utf-8`) with `Cache-Control: no-store`. The key
 * is never logged; each accepted push logs one `info` line (service, push id, kind, masked openid).
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cluster, Redis } from 'ioredis';
import getRawBody from 'raw-body';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { DeliveryQueue, PushStatus } from '../delivery/delivery-queue.js';
import type { DialogEngine, EngineLogger } from '../dialog/engine.js';
import type { Router } from '../dialog/router.js';
import { createLogger } from '../logging.js';
import { createAuthenticator, type ApiKey } from '../push/api-keys.js';
import { PushService, type AcceptResult } from '../push/push-service.js';
import { DEFAULT_BODY_LIMIT_BYTES } from './express-adapter.js';

/** The default path of the push API. */
export const DEFAULT_PUSH_PATH = '/push';

/** The default rate limit: pushes per minute per key. */
export const DEFAULT_PUSH_RATE_PER_MINUTE = 600;

/** The default prefix of the rate limiter's Redis keys (`<prefix>:<service>`). */
export const DEFAULT_PUSH_RATE_KEY_PREFIX = 'wechat-dialog:push-rate';

/** Options of {@link createPushApi}. */
export interface PushApiOptions {
  /** The calling services and their keys (`parseApiKeys(process.env.PUSH_API_KEYS)`). At least one. */
  readonly keys: readonly ApiKey[];
  /** Where pushes are queued and their statuses kept (`InProcessDeliveryQueue`, `BullmqDeliveryQueue`). */
  readonly queue: DeliveryQueue;
  /** The engine that starts push dialogs (built with this queue as its outbox). @default none: dialog pushes get 501 */
  readonly engine?: DialogEngine;
  /** The router whose `pushed` dialogs a push may start. @default none: dialog pushes get 501 */
  readonly router?: Router;
  /** The Official Account's original id (`gh_…`, `WECHAT_ACCOUNT`), needed by dialog pushes. @default none: dialog pushes get 501 */
  readonly account?: string;
  /**
   * The URL path of the API, as the request sees it before any mount (Express's `originalUrl`):
   * `POST <path>` and `GET <path>/<id>`. Mount the handler at the root (`app.use(api)`) or at
   * this same path (`app.use('/push', api)`).
   * @default '/push'
   */
  readonly path?: string;
  /** Most pushes (`POST`) one key may make per minute (a fixed 60-second window); more get 429. @default 600 */
  readonly ratePerMinute?: number;
  /**
   * Where the rate limit's counters live, shared by every process: the store's Redis client. The
   * handler uses it, never closes it. When Redis fails, each process falls back to counting in its
   * own memory (rate-limiter-flexible's `insuranceLimiter`).
   * @default none: counted in this process's memory (per process)
   */
  readonly redis?: Redis | Cluster;
  /** Prefix of the rate limiter's Redis keys (`<prefix>:<service>`). @default 'wechat-dialog:push-rate' */
  readonly rateLimitKeyPrefix?: string;
  /** Largest accepted body, in **bytes**; larger gets 413. @default 65536 (64 KiB) */
  readonly bodyLimitBytes?: number;
  /** Where to log (pino, or anything with `info`/`warn`/`error(fields, message)`). @default pino() at `info` */
  readonly logger?: EngineLogger;
}

/** The push API handler: `(req, res, next?)`, typed with Node's own request and response. */
export interface PushApiHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** The service behind it (for tests and tools). */
  readonly service: PushService;
}

/** Thrown by {@link createPushApi} for options that cannot work; the message names the option. */
export class PushApiOptionsError extends Error {
  override readonly name = 'PushApiOptionsError';
  readonly code = 'INVALID_OPTIONS';
  constructor(
    /** The option at fault, e.g. `keys`. */
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

type Route = { readonly kind: 'collection' } | { readonly kind: 'push'; readonly id: string };

interface JsonAnswer {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A failure to read the body, answered with `status`. */
class BodyError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

function validate(options: PushApiOptions): void {
  const fail = (option: string, message: string): never => {
    throw new PushApiOptionsError(option, `createPushApi: ${option} ${message}`);
  };
  if (!Array.isArray(options.keys) || options.keys.length === 0) fail('keys', 'must list at least one service and its key: parseApiKeys(PUSH_API_KEYS)');
  if (typeof options.queue?.enqueue !== 'function') fail('queue', 'must be a delivery queue (InProcessDeliveryQueue, BullmqDeliveryQueue)');
  const path = options.path;
  if (path !== undefined && !/^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~-]$/.test(path)) fail('path', 'must be a URL path starting with "/" and not ending with "/", e.g. /push');
  const rate = options.ratePerMinute;
  if (rate !== undefined && !(Number.isSafeInteger(rate) && rate >= 1)) fail('ratePerMinute', 'must be a whole number of pushes per minute, at least 1');
  const limit = options.bodyLimitBytes;
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1)) fail('bodyLimitBytes', 'must be a whole number of bytes, at least 1');
}

function createLimiter(options: PushApiOptions): RateLimiterAbstract {
  const points = options.ratePerMinute ?? DEFAULT_PUSH_RATE_PER_MINUTE;
  const keyPrefix = options.rateLimitKeyPrefix ?? DEFAULT_PUSH_RATE_KEY_PREFIX;
  const memory = new RateLimiterMemory({ points, duration: 60, keyPrefix });
  if (options.redis === undefined) return memory;
  return new RateLimiterRedis({ storeClient: options.redis, points, duration: 60, keyPrefix, insuranceLimiter: memory });
}

/** The part of the URL the handler matches: Express's `originalUrl` (before any mount) when there is one. */
function pathOf(req: IncomingMessage): string {
  const { originalUrl } = req as { originalUrl?: unknown };
  const url = typeof originalUrl === 'string' ? originalUrl : (req.url ?? '/');
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function routeOf(pathname: string, path: string): Route | undefined {
  if (pathname === path || pathname === `${path}/`) return { kind: 'collection' };
  if (!pathname.startsWith(`${path}/`)) return undefined;
  const id = pathname.slice(path.length + 1);
  return id.includes('/') ? undefined : { kind: 'push', id };
}

function send(res: ServerResponse, answer: JsonAnswer): void {
  const body = JSON.stringify(answer.body);
  res.statusCode = answer.status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  if (answer.headers !== undefined) for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  res.end(body);
}

const error = (status: number, message: string, headers?: Record<string, string>): JsonAnswer =>
  headers === undefined ? { status, body: { error: message } } : { status, body: { error: message }, headers };

/** Whether the request says its body is JSON in UTF-8 (`application/json`, `; charset=utf-8` optional). */
function isJson(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  if (type === undefined) return false;
  const [mediaType, ...parameters] = type.split(';').map((part) => part.trim().toLowerCase());
  if (mediaType !== 'application/json') return false;
  return parameters.every((p) => !p.startsWith('charset=') || /^charset="?utf-8"?$/.test(p));
}

function isHttpError(err: unknown): err is { status: number } {
  return typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number';
}

/**
 * The JSON body: what a host's `express.json()` already parsed, a string or Buffer a host parser
 * read, or the stream read with `raw-body` (at most `limit` bytes) and parsed.
 * @throws {BodyError} 413 over `limit`, 400 for an unreadable body or one that is not JSON.
 */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const { body: parsed, _body: parsedByHost } = req as { body?: unknown; _body?: unknown };
  let text: string;
  if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) {
    if (Buffer.byteLength(parsed) > limit) throw new BodyError(413, `the body is larger than ${limit} bytes`);
    text = typeof parsed === 'string' ? parsed : parsed.toString('utf8');
  } else if (parsed !== undefined && (parsedByHost === true || req.readableEnded)) {
    // Parsed by the host (`express.json()`: body-parser 1 marks `_body`, body-parser 2 ends the stream).
    return parsed;
  } else {
    try {
      text = await getRawBody(req, { limit, length: req.headers['content-length'], encoding: 'utf-8' });
    } catch (err) {
      if (isHttpError(err) && err.status === 413) throw new BodyError(413, `the body is larger than ${limit} bytes`);
      throw new BodyError(400, 'the body could not be read');
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // The parser's message quotes the body: not echoed.
    throw new BodyError(400, 'the body is not valid JSON');
  }
}

function statusBody(status: PushStatus): Record<string, unknown> {
  return {
    id: status.id,
    status: status.status,
    ...(status.errcode === undefined ? {} : { errcode: status.errcode }),
    ...(status.errmsg === undefined ? {} : { errmsg: status.errmsg }),
    createdAt: new Date(status.createdAt).toISOString(),
    updatedAt: new Date(status.updatedAt).toISOString(),
  };
}

function acceptedAnswer(result: AcceptResult, path: string): JsonAnswer {
  switch (result.outcome) {
    case 'accepted': {
      const headers: Record<string, string> = { Location: `${path}/${result.id}` };
      if (result.repeated) headers['Idempotent-Replayed'] = 'true';
      return { status: 202, body: { id: result.id, status: result.status }, headers };
    }
    case 'invalid':
      return { status: 400, body: { error: 'invalid push', issues: result.issues } };
    case 'active':
      return { status: 409, body: { error: 'the user is in another dialog', dialog: result.dialog } };
    case 'dialogs-off':
      return error(501, result.reason);
    case 'failed':
      if (result.reason === 'dialog') return error(500, 'the dialog failed on its first message; nothing was sent');
      return error(503, `the ${result.reason === 'store' ? 'dialog store' : 'delivery queue'} is unavailable; nothing was sent: retry later with the same Idempotency-Key`, {
        'Retry-After': '5',
      });
  }
}

/**
 * Builds the push API handler. See the module doc for what it answers.
 * @throws {PushApiOptionsError} for options that cannot work (no keys, no queue, a bad path, rate or limit).
 * @throws {RangeError} for an `account` that is not an original id (`gh_…`).
 */
export function createPushApi(options: PushApiOptions): PushApiHandler {
  validate(options);
  const path = options.path ?? DEFAULT_PUSH_PATH;
  const limit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const logger: EngineLogger = options.logger ?? createLogger('info');
  const authenticate = createAuthenticator(options.keys);
  const limiter = createLimiter(options);
  const service = new PushService({
    queue: options.queue,
    logger,
    ...(options.engine === undefined ? {} : { engine: options.engine }),
    ...(options.router === undefined ? {} : { router: options.router }),
    ...(options.account === undefined ? {} : { account: options.account }),
  });

  const submit = async (req: IncomingMessage, caller: string): Promise<JsonAnswer> => {
    try {
      await limiter.consume(caller);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      const seconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      return error(429, `too many pushes: at most ${options.ratePerMinute ?? DEFAULT_PUSH_RATE_PER_MINUTE} a minute for this key; retry in ${seconds} s`, {
        'Retry-After': String(seconds),
      });
    }
    if (!isJson(req)) return error(415, 'the body must be JSON: send Content-Type: application/json');
    let body: unknown;
    try {
      body = await readJson(req, limit);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      return error(err.status, err.message, err.status === 413 ? { Connection: 'close' } : undefined);
    }
    const idempotencyKey = req.headers['idempotency-key'];
    return acceptedAnswer(await service.accept(caller, body, typeof idempotencyKey === 'string' ? idempotencyKey : undefined), path);
  };

  const read = async (id: string, caller: string): Promise<JsonAnswer> => {
    let status: PushStatus | undefined;
    try {
      status = await service.status(caller, id);
    } catch (err) {
      logger.error({ service: caller, pushId: id, err }, 'a push status could not be read: the delivery queue failed');
      return error(503, 'push statuses are unavailable; retry later', { 'Retry-After': '5' });
    }
    return status === undefined ? error(404, 'no such push (unknown, older than 24 hours, or not this service’s)') : { status: 200, body: statusBody(status) };
  };

  const serve = async (req: IncomingMessage, route: Route): Promise<JsonAnswer> => {
    const allowed = route.kind === 'collection' ? 'POST' : 'GET';
    if (req.method !== allowed) return error(405, `only ${allowed} is allowed here`, { Allow: allowed });
    const authorization = req.headers.authorization;
    const caller = authenticate(authorization);
    if (caller === undefined) {
      return authorization === undefined
        ? error(401, 'an API key is required: Authorization: Bearer <key>', { 'WWW-Authenticate': 'Bearer realm="push"' })
        : error(401, 'invalid API key', { 'WWW-Authenticate': 'Bearer realm="push", error="invalid_token"' });
    }
    return route.kind === 'collection' ? submit(req, caller) : read(route.id, caller);
  };

  const handler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const route = routeOf(pathOf(req), path);
    if (route === undefined) {
      if (next !== undefined) next();
      else send(res, error(404, 'not found'));
      return;
    }
    serve(req, route).then(
      (answer) => send(res, answer),
      (err: unknown) => {
        logger.error({ err }, 'unexpected error while handling a push API request');
        if (!res.headersSent) send(res, error(500, 'internal error'));
      },
    );
  };
  return Object.assign(handler, { service });
}
