/**
 * The Express adapter over the framework-neutral handler (`wechat-handler.ts`): an Express handler
 * that answers requests to its mount path itself (`/wechat` and
 * `/wechat/` when mounted at `/wechat`) and passes every other request on to the host app.
 *
 * It works whatever body parser the host mounted before it: a body already read as a string
 * (`express.text()`) or a Buffer (`express.raw()`) is used as it is; a body a parser turned into
 * something else (`express.json()`, `express.urlencoded()` with a type matching `text/xml`) cannot
 * be recovered, so that request is answered 500 and the log says to mount this handler first.
 *
 * @module
 */
import type { Request, RequestHandler, Response } from 'express';
import getRawBody from 'raw-body';
import type { EngineLogger } from '../dialog/engine.js';
import { BodyReadError, type WeChatHttpResponse, type WeChatRequestHandler } from './wechat-handler.js';

/** The largest POST body accepted unless configured, in **bytes** (64 KiB: a push is a few hundred). */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;

/** Options of {@link expressHandler}. */
export interface ExpressAdapterOptions {
  /** Largest accepted POST body, in **bytes** (UTF-8); larger gets 413. @default DEFAULT_BODY_LIMIT_BYTES (65536) */
  readonly bodyLimitBytes?: number | undefined;
  /** Where to log adapter failures (a body consumed by another parser, an unexpected error). */
  readonly logger: EngineLogger;
}

/** What the log says when another body parser consumed the push before this router saw it. */
export const BODY_CONSUMED_MESSAGE =
  'the request body was already read by another body parser (req.body is not a string or a Buffer): ' +
  'mount wechatDialog() before express.json()/express.urlencoded(), or let only express.text() or express.raw() read text/xml';

/** Thrown by the body reader when the host consumed the body; answered 500. */
class BodyConsumedError extends Error {
  override readonly name = 'BodyConsumedError';
  readonly code = 'BODY_CONSUMED';
  constructor() {
    super(BODY_CONSUMED_MESSAGE);
  }
}

function isHttpError(err: unknown): err is { status: number; type?: string } {
  return typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number';
}

/**
 * The request's query, parsed once: Express 5's `req.query` is a getter that parses the query
 * string again on every access. A value is `undefined` when absent, repeated, or parsed into an
 * object by an extended parser.
 */
function queryOf(req: Request): (name: string) => string | undefined {
  const query: Record<string, unknown> = req.query;
  return (name) => {
    const value = query[name];
    return typeof value === 'string' ? value : undefined;
  };
}

/**
 * The body as UTF-8: what a host parser already read (a string or a Buffer), else read from the
 * stream with `raw-body`, at most `limit` bytes.
 * @throws {BodyReadError} 413 over `limit`, 400 for a body that cannot be read (aborted, bad length).
 * @throws {BodyConsumedError} when another parser consumed the stream into something else.
 */
async function readBody(req: Request, limit: number): Promise<string> {
  const parsed: unknown = req.body;
  if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) {
    const bytes = typeof parsed === 'string' ? Buffer.byteLength(parsed, 'utf8') : parsed.length;
    if (bytes > limit) throw new BodyReadError(413, `body too large (limit ${limit} bytes)`);
    return typeof parsed === 'string' ? parsed : parsed.toString('utf8');
  }
  // body-parser marks a request it has read with `_body`; a stream that has ended was read by someone.
  if ((req as { _body?: unknown })._body === true || req.readableEnded) throw new BodyConsumedError();
  try {
    return await getRawBody(req, { limit, length: req.headers['content-length'], encoding: 'utf-8' });
  } catch (err) {
    const status = isHttpError(err) && err.status >= 400 && err.status < 500 ? err.status : 400;
    throw new BodyReadError(status, status === 413 ? `body too large (limit ${limit} bytes)` : 'unreadable body', { cause: err });
  }
}

/**
 * Writes the response with Node's own API: Express's `res.send` would also compute an ETag and
 * look up the content type, work a push answer does not need (WeChat never revalidates).
 */
function send(res: Response, response: WeChatHttpResponse): void {
  res.statusCode = response.status;
  res.setHeader('Content-Type', response.contentType);
  res.setHeader('Content-Length', Buffer.byteLength(response.body));
  if (response.headers !== undefined) for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
  res.end(response.body);
}

/**
 * An Express handler serving `handle` at its mount path (`app.use(path, handler)`). Errors of its own are logged and
 * answered `500 internal error` here: they never reach the host's error handler (which might print
 * a stack trace to WeChat), and the host's own errors never pass through this handler.
 */
export function expressHandler(handle: WeChatRequestHandler, options: ExpressAdapterOptions): RequestHandler {
  const { bodyLimitBytes = DEFAULT_BODY_LIMIT_BYTES, logger } = options;
  const serve = async (req: Request, res: Response): Promise<void> => {
    try {
      const response = await handle({
        method: req.method,
        query: queryOf(req),
        readBody: () => readBody(req, bodyLimitBytes),
      });
      send(res, response);
    } catch (err) {
      if (err instanceof BodyConsumedError) logger.error({ code: err.code }, err.message);
      else logger.error({ err }, 'unexpected error while handling a request');
      if (!res.headersSent) send(res, { status: 500, contentType: 'text/plain; charset=utf-8', body: 'internal error' });
    }
  };
  // Only the mount path itself (`/wechat` or `/wechat/`, where Express leaves `req.url` as `/…`);
  // a plain function rather than a Router with one route: no second layer of route matching per push.
  return (req, res, next) => {
    const url = req.url;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path !== '/' && path !== '') {
      next();
      return;
    }
    void serve(req, res);
  };
}
