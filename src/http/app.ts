/**
 * The Express app: the server URL (服务器地址) WeChat calls. Thin glue: signature check, raw body,
 * parse, one engine turn, reply XML. Every answer is short `text/plain` or the reply XML; never a
 * stack trace.
 *
 * | request | answer |
 * |---|---|
 * | `GET <path>` with a valid signature and `echostr` | 200, `echostr` verbatim, text/plain |
 * | `GET`/`POST` with a missing or wrong signature | 401, nothing parsed, no state touched |
 * | `GET` without `echostr` | 400 |
 * | `POST` body over the limit | 413, no state touched |
 * | `POST` body that is not a WeChat message | 400, no state touched |
 * | `POST` with `encrypt_type=aes` and a wrong `msg_signature` | 401, no state touched |
 * | `POST` encrypted push that cannot be decrypted (padding, length, AppID) | 400, no state touched |
 * | `POST` message | 200, reply XML, or `success` when there is nothing to say |
 * | other methods on `<path>` | 405 |
 *
 * @module
 */
import { randomInt } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import getRawBody from 'raw-body';
import type { Logger } from 'pino';
import type { DialogEngine } from '../dialog/engine.js';
import { replyLimitWarnings, type Reply } from '../wechat/replies.js';
import { DecryptError, encryptReply, parseEncodingAESKey, verifyAndDecryptMessage } from '../wechat/crypto.js';
import { MessageParseError, parseMessage, readEncrypt } from '../wechat/parser.js';
import { SUCCESS_BODY, replyToXml } from '../wechat/reply-xml.js';
import { verifySignature } from '../wechat/signature.js';

/** Options of {@link createApp}. */
export interface AppOptions {
  /** The Token (令牌) set in the Official Account console. */
  readonly token: string;
  /** The URL path WeChat calls. @default '/wechat' */
  readonly path?: string;
  /** Runs the dialogs. */
  readonly engine: DialogEngine;
  /** Where to log. */
  readonly logger: Logger;
  /** Largest accepted POST body, in **bytes**; larger gets 413. @default 65536 (64 KiB) */
  readonly bodyLimitBytes?: number;
  /** The clock for replies' `CreateTime`, in **milliseconds**. @default Date.now */
  readonly now?: () => number;
  /**
   * Security mode (安全模式): pushes with `encrypt_type=aes` are checked with `msg_signature`,
   * decrypted, and answered encrypted. `required`: plaintext pushes are refused (400).
   * `previousEncodingAESKey`: tried when `encodingAESKey` cannot decrypt a push, and then used for
   * its reply, so the key can be changed in the console without losing pushes (消息加解密 技术方案
   * advises keeping the previous key).
   * @default undefined: plaintext only; an encrypted push gets 400
   */
  /**
   * Late replies (design.md, "WeChat's clock"): a turn still running `deadlineMs` **milliseconds**
   * after the push arrived is answered `success` at once (WeChat waits 5 s, then retries), and its
   * reply, when the turn ends, is given to `send` (a customer-service message, 客服消息). Errors of
   * `send` are logged. `track`, if given, gets each late turn's whole work (turn and send; it never
   * rejects), so that a shutdown can wait for it before closing the store.
   * @default undefined: the response waits for the turn, however long it takes
   */
  readonly lateReplies?: {
    readonly deadlineMs: number;
    send(openid: string, reply: Reply): Promise<unknown>;
    track?(work: Promise<void>): void;
  };
  readonly security?: {
    readonly appId: string;
    readonly encodingAESKey: string;
    readonly previousEncodingAESKey?: string;
    readonly required: boolean;
  };
}

/** A query value, or undefined when absent or repeated. */
function queryValue(req: Request, name: string): string | undefined {
  const value: unknown = req.query[name];
  return typeof value === 'string' ? value : undefined;
}

function plain(res: Response, status: number, body: string): void {
  res.status(status).type('text/plain; charset=utf-8').send(body);
}

function hasValidSignature(req: Request, token: string): boolean {
  return verifySignature({
    token,
    signature: queryValue(req, 'signature'),
    timestamp: queryValue(req, 'timestamp'),
    nonce: queryValue(req, 'nonce'),
  });
}

function isHttpError(err: unknown): err is { status: number; type?: string } {
  return typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number';
}

/**
 * Builds the app. It only serves `path`; mount it at the root.
 */
export function createApp(options: AppOptions): express.Express {
  const { token, engine, logger, lateReplies } = options;
  const path = options.path ?? '/wechat';
  const limit = options.bodyLimitBytes ?? 64 * 1024;
  const now = options.now ?? Date.now;
  const security =
    options.security === undefined
      ? undefined
      : {
          appId: options.security.appId,
          required: options.security.required,
          keys: [options.security.encodingAESKey, options.security.previousEncodingAESKey]
            .filter((k): k is string => k !== undefined)
            .map(parseEncodingAESKey),
        };
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.get(path, (req, res) => {
    if (!hasValidSignature(req, token)) {
      logger.warn({ path }, 'GET with a missing or wrong signature: check WECHAT_TOKEN against the console');
      return plain(res, 401, 'invalid signature');
    }
    const echostr = queryValue(req, 'echostr');
    if (echostr === undefined) return plain(res, 400, 'echostr is missing');
    plain(res, 200, echostr);
  });

  app.post(path, async (req, res) => {
    const arrivedAt = performance.now();
    if (!hasValidSignature(req, token)) {
      logger.warn({ path }, 'POST with a missing or wrong signature: ignored');
      return plain(res, 401, 'invalid signature');
    }
    let body: string;
    try {
      body = await getRawBody(req, { limit, length: req.headers['content-length'], encoding: 'utf-8' });
    } catch (err) {
      const status = isHttpError(err) && err.status >= 400 && err.status < 500 ? err.status : 400;
      logger.warn({ status, type: isHttpError(err) ? err.type : undefined }, 'could not read the request body');
      // The rest of the body is still on the socket; rather than read it (it may be huge), close
      // the connection after the answer so the next request does not start inside this body.
      res.setHeader('Connection', 'close');
      return plain(res, status, status === 413 ? `body too large (limit ${limit} bytes)` : 'unreadable body');
    }
    const encrypted = queryValue(req, 'encrypt_type') === 'aes';
    let message;
    let replyKey: Buffer | undefined; // the key that decrypted the push encrypts the reply
    try {
      let xml = body;
      if (encrypted) {
        if (security === undefined) {
          return plain(res, 400, 'encrypted push, but security mode is off: set WECHAT_APPID and WECHAT_ENCODING_AES_KEY');
        }
        const encrypt = readEncrypt(body);
        const decrypt = (key: Buffer): string =>
          verifyAndDecryptMessage({
            key,
            appId: security.appId,
            token,
            timestamp: queryValue(req, 'timestamp'),
            nonce: queryValue(req, 'nonce'),
            msgSignature: queryValue(req, 'msg_signature'),
            encrypt,
          });
        ({ xml, key: replyKey } = withFirstKey(security.keys, decrypt));
      } else if (security?.required === true) {
        logger.warn('plaintext push refused: WECHAT_REQUIRE_ENCRYPTION is set');
        return plain(res, 400, 'plaintext push refused: this server requires security mode (encrypt_type=aes)');
      }
      message = parseMessage(xml);
    } catch (err) {
      if (err instanceof DecryptError) {
        const status = err.code === 'BAD_SIGNATURE' ? 401 : 400;
        logger.warn({ code: err.code, reason: err.message }, 'encrypted push rejected');
        return plain(res, status, status === 401 ? 'invalid msg_signature' : `cannot decrypt: ${err.message}`);
      }
      if (!(err instanceof MessageParseError)) throw err;
      logger.warn({ code: err.code, reason: err.message }, 'POST body is not a WeChat message');
      return plain(res, 400, `not a WeChat message: ${err.message}`);
    }
    const remainingMs = lateReplies === undefined ? undefined : lateReplies.deadlineMs - (performance.now() - arrivedAt);
    // With late replies, the engine also learns the deadline, so a retry of a late turn gets `success`, not a second copy.
    const turn = engine.handle(message, remainingMs === undefined ? {} : { lateAfter: Date.now() + remainingMs });
    const result = remainingMs === undefined ? await turn : await beforeDeadline(turn, remainingMs);
    if (result === undefined) {
      // Too late for a passive reply (only with lateReplies): answer now, send the reply when the turn ends.
      plain(res, 200, SUCCESS_BODY);
      if (lateReplies !== undefined) lateReplies.track?.(deliverLate(turn, message.FromUserName, lateReplies, logger));
      return;
    }
    if (result.reply === undefined) return plain(res, 200, SUCCESS_BODY);
    for (const warning of replyLimitWarnings(result.reply, message.MsgType === 'event')) logger.warn({ dialog: result.dialog }, warning);
    const createTime = Math.floor(now() / 1000);
    const xml = replyToXml(result.reply, {
      ToUserName: message.FromUserName,
      FromUserName: message.ToUserName,
      CreateTime: createTime,
    });
    const reply =
      replyKey !== undefined && security !== undefined
        ? encryptReply({
            key: replyKey,
            appId: security.appId,
            token,
            plaintextXml: xml,
            timestamp: createTime,
            nonce: replyNonce(queryValue(req, 'nonce')),
          })
        : xml;
    res.status(200).type('application/xml; charset=utf-8').send(reply);
  });

  app.all(path, (_req, res) => {
    res.setHeader('Allow', 'GET, POST');
    plain(res, 405, 'method not allowed: WeChat uses GET (verification) and POST (messages)');
  });

  app.use((_req, res) => plain(res, 404, 'not found'));

  // Last resort: log the error, answer a short text. Never a stack trace.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err }, 'unexpected error while handling a request');
    if (res.headersSent) return;
    plain(res, 500, 'internal error');
  });

  return app;
}

/**
 * Decrypts with the first key that works (the current EncodingAESKey, then the previous one).
 * A wrong `msg_signature` does not depend on the key, so it is not retried.
 * @throws {DecryptError} the current key's error when no key works.
 */
function withFirstKey(keys: readonly Buffer[], decrypt: (key: Buffer) => string): { xml: string; key: Buffer } {
  let first: unknown;
  for (const key of keys) {
    try {
      return { xml: decrypt(key), key };
    } catch (err) {
      if (!(err instanceof DecryptError) || err.code === 'BAD_SIGNATURE') throw err;
      first ??= err;
    }
  }
  throw first;
}

const SAFE_NONCE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The reply envelope's `Nonce`: the query `nonce` echoed, as the doc suggests, when it is a plain
 * token (WeChat sends digits); otherwise a fresh one, since any string works and a nonce with
 * characters XML cannot carry would make the reply impossible to write after the turn was taken.
 */
function replyNonce(queryNonce: string | undefined): string {
  return queryNonce !== undefined && SAFE_NONCE.test(queryNonce) ? queryNonce : String(randomInt(1, 2 ** 31));
}

/** Waits for a turn that missed the deadline and sends its reply with `late.send`; logs, never rejects. */
async function deliverLate(
  turn: Promise<{ readonly reply: Reply | undefined }>,
  openid: string,
  late: NonNullable<AppOptions['lateReplies']>,
  logger: Logger,
): Promise<void> {
  logger.info({ deadlineMs: late.deadlineMs }, 'turn still running at the deadline: answered success, the reply follows as a customer-service message');
  try {
    const { reply } = await turn;
    if (reply === undefined) return;
    const outcome = await late.send(openid, reply);
    logger.info({ outcome }, 'late reply delivered as a customer-service message');
  } catch (err) {
    logger.warn({ err }, 'a late reply could not be sent as a customer-service message');
  }
}

/** `promise`'s value if it settles within `ms` **milliseconds**, else `undefined` (it keeps running). */
async function beforeDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms), undefined);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
