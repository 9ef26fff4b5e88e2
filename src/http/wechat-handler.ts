/**
 * The WeChat request handling, framework-neutral (style.md §12): one function from a request
 * (method, query, a way to read the body) to a response (status, content type, body). Thin
 * adapters (`express-adapter.ts`) map a web framework onto it. Every answer is a short
 * `text/plain` line or the reply XML; never a stack trace.
 *
 * | request | answer |
 * |---|---|
 * | `GET` with a valid signature and `echostr` | 200, `echostr` verbatim, text/plain |
 * | `GET`/`POST` with a missing or wrong signature | 401, the body is not read, no state touched |
 * | `POST` whose `timestamp` is outside the freshness window (or, encrypted, whose `CreateTime` is) | 401, no state touched |
 * | `GET` without `echostr` | 400 |
 * | `POST` body over the limit | 413 and `Connection: close`, no state touched |
 * | `POST` body that is not a WeChat message | 400, no state touched |
 * | `POST` with `encrypt_type=aes` and a wrong `msg_signature` | 401, no state touched |
 * | `POST` encrypted push that cannot be decrypted (padding, length, AppID) | 400, no state touched |
 * | `POST` message | 200, reply XML, or `success` when there is nothing to say |
 * | other methods | 405 with `Allow: GET, POST` |
 *
 * Sources: 接入概述 (the GET handshake and `signature`), 接收普通消息 / 被动回复用户消息, 消息加解密说明
 * (`../shared/protocol/README.md` §1 to §4).
 *
 * @module
 */
import { randomInt } from 'node:crypto';
import type { DialogEngine, EngineLogger } from '../dialog/engine.js';
import { notify } from '../dialog/observer.js';
import { replyLimitWarnings, type Reply } from '../wechat/replies.js';
import { DecryptError, encryptReply, parseEncodingAESKey, verifyAndDecryptMessage } from '../wechat/crypto.js';
import { MessageParseError, parseMessage, readEncrypt } from '../wechat/parser.js';
import { SUCCESS_BODY, replyToXml } from '../wechat/reply-xml.js';
import { verifySignature } from '../wechat/signature.js';

/** One HTTP request, as a framework adapter sees it. */
export interface WeChatHttpRequest {
  /** The HTTP method, upper case (`GET`, `POST`, ...). */
  readonly method: string;
  /** The value of a query parameter; `undefined` when it is absent or repeated. */
  query(name: string): string | undefined;
  /**
   * Reads the whole body as UTF-8. Called at most once, and only after the signature was checked.
   * @throws {BodyReadError} when the body is too large (413) or cannot be read (400); any other
   *   error is the adapter's own failure (the adapter answers 500).
   */
  readBody(): Promise<string>;
}

/** The answer to one request. */
export interface WeChatHttpResponse {
  readonly status: number;
  /** `text/plain; charset=utf-8` or `application/xml; charset=utf-8`. */
  readonly contentType: string;
  readonly body: string;
  /** Extra headers (`Allow` on 405, `Connection: close` after an unread body). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The framework-neutral handler: never rejects for anything a client sends. */
export type WeChatRequestHandler = (request: WeChatHttpRequest) => Promise<WeChatHttpResponse>;

/** Thrown by {@link WeChatHttpRequest.readBody}: the body was too large (413) or unreadable (400). */
export class BodyReadError extends Error {
  override readonly name = 'BodyReadError';
  readonly code: 'BODY_TOO_LARGE' | 'BODY_UNREADABLE';
  constructor(
    /** 413 or another 4xx status to answer. */
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = status === 413 ? 'BODY_TOO_LARGE' : 'BODY_UNREADABLE';
  }
}

/** Late replies (design.md, "WeChat's clock"), as {@link HandlerOptions.lateReplies} takes them. */
export interface LateReplyOptions {
  /** **Milliseconds** after the push arrived at which a running turn is answered `success`. */
  readonly deadlineMs: number;
  /**
   * Sends a late reply (a customer-service message, 客服消息), or hands it to a queue that will
   * (`'queued'`); its errors are logged. Not called for a turn whose reply the engine handed to its
   * outbox already (`TurnResult.delivery`).
   */
  send(openid: string, reply: Reply): Promise<unknown>;
  /** Gets each late turn's whole work (turn and send; it never rejects), so a shutdown can wait for it. */
  track?(work: Promise<void>): void;
}

/** Security mode (安全模式) settings, as {@link HandlerOptions.security} takes them. */
export interface SecurityOptions {
  /** The account's AppID (开发者ID): decrypted pushes must carry it. */
  readonly appId: string;
  /** The EncodingAESKey (消息加解密密钥), 43 letters or digits. */
  readonly encodingAESKey: string;
  /** The previous EncodingAESKey, tried when `encodingAESKey` cannot decrypt a push (while changing keys). */
  readonly previousEncodingAESKey?: string;
  /** Refuse plaintext pushes (400). */
  readonly required: boolean;
}

/** Why a request was refused, as {@link HttpObserver.refused} reports it. */
export type RefusalReason =
  /** a missing or wrong `signature` (GET or POST) */
  | 'signature'
  /** a `timestamp` (or, encrypted, a `CreateTime`) outside the freshness window */
  | 'age'
  /** a body that could not be read */
  | 'body'
  /** a body over the limit */
  | 'size'
  /** an encrypted push with a wrong `msg_signature`, or that could not be decrypted */
  | 'decryption'
  /** a plaintext push while encryption is required, or an encrypted one without security mode */
  | 'mode'
  /** a body that is not a WeChat message (XML, declarations, fields, ids) */
  | 'message';

/** What the handler reports, for metrics. Hooks are optional, synchronous, and must not throw (a throw is ignored). */
export interface HttpObserver {
  /** A request was refused (4xx). */
  refused?(reason: RefusalReason): void;
  /**
   * A late reply was handed to the delivery queue (`queued`), or its customer-service message was
   * sent, could not be, or the reply cannot be one.
   */
  lateReply?(result: 'queued' | 'sent' | 'failed' | 'not-sendable'): void;
}

/** Options of {@link createWeChatHandler}. */
export interface HandlerOptions {
  /** The Token (令牌) set in the Official Account console. */
  readonly token: string;
  /** Runs the dialogs. */
  readonly engine: DialogEngine;
  /** Where to log. */
  readonly logger: EngineLogger;
  /** The clock, in **milliseconds**: replies' `CreateTime` and the freshness check. @default Date.now */
  readonly now?: () => number;
  /**
   * Freshness window, in **seconds**: a POST whose `timestamp` query value is further than this
   * from the server's clock is refused (401) before its body is read, and in security mode so is
   * a push whose decrypted `CreateTime` is (a signed `timestamp/nonce/signature` triple does not
   * cover the body in plaintext mode, so without this check one captured query string signs any
   * body forever: protocol README §1.2). `0` turns the check off, which is unsafe.
   * @default 300
   */
  readonly maxAgeSeconds?: number;
  /** Told about refused requests and late replies (metrics). @default none */
  readonly observer?: HttpObserver;
  /**
   * Late replies (design.md, "WeChat's clock"): a turn still running `deadlineMs` **milliseconds**
   * after the push arrived is answered `success` at once (WeChat waits 5 s, then retries), and its
   * reply, when the turn ends, is given to `send` (a customer-service message, 客服消息). Errors of
   * `send` are logged. `track`, if given, gets each late turn's whole work (turn and send; it never
   * rejects), so that a shutdown can wait for it before closing the store.
   * @default undefined: the response waits for the turn, however long it takes
   */
  readonly lateReplies?: LateReplyOptions;
  /**
   * Security mode (安全模式): pushes with `encrypt_type=aes` are checked with `msg_signature`,
   * decrypted, and answered encrypted. `required`: plaintext pushes are refused (400).
   * `previousEncodingAESKey`: tried when `encodingAESKey` cannot decrypt a push, and then used for
   * its reply, so the key can be changed in the console without losing pushes (消息加解密 技术方案
   * advises keeping the previous key).
   * @default undefined: plaintext only; an encrypted push gets 400
   */
  readonly security?: SecurityOptions;
}

/** The default freshness window, in **seconds** (protocol README §1.2). */
export const DEFAULT_MAX_AGE_SECONDS = 300;

const TEXT = 'text/plain; charset=utf-8';
const XML = 'application/xml; charset=utf-8';

function plain(status: number, body: string, headers?: Record<string, string>): WeChatHttpResponse {
  return headers === undefined ? { status, contentType: TEXT, body } : { status, contentType: TEXT, body, headers };
}

function hasValidSignature(request: WeChatHttpRequest, token: string): boolean {
  return verifySignature({
    token,
    signature: request.query('signature'),
    timestamp: request.query('timestamp'),
    nonce: request.query('nonce'),
  });
}

/**
 * Builds the handler for one server URL.
 * @throws {DecryptError} `BAD_KEY` when an EncodingAESKey in `security` is not 43 letters or digits.
 */
export function createWeChatHandler(options: HandlerOptions): WeChatRequestHandler {
  const { token, engine, logger, lateReplies, observer } = options;
  const refused = (reason: RefusalReason, response: WeChatHttpResponse): WeChatHttpResponse => {
    notify(observer?.refused, reason);
    return response;
  };
  const now = options.now ?? Date.now;
  const maxAgeSeconds = options.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  if (!Number.isSafeInteger(maxAgeSeconds) || maxAgeSeconds < 0) {
    throw new RangeError(`maxAgeSeconds must be a whole number of seconds (0 turns the check off), got ${maxAgeSeconds}`);
  }
  /** How far `seconds` (Unix time) is from the server's clock, or `undefined` within the window (or with the check off). */
  const skewOf = (seconds: number): number | undefined => {
    if (maxAgeSeconds === 0) return undefined;
    const skew = Math.floor(now() / 1000) - seconds;
    return Math.abs(skew) > maxAgeSeconds ? skew : undefined;
  };
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

  const verify = (request: WeChatHttpRequest): WeChatHttpResponse => {
    if (!hasValidSignature(request, token)) {
      logger.warn({}, 'GET with a missing or wrong signature: check WECHAT_TOKEN against the console');
      return refused('signature', plain(401, 'invalid signature'));
    }
    const echostr = request.query('echostr');
    if (echostr === undefined) return plain(400, 'echostr is missing');
    return plain(200, echostr);
  };

  const push = async (request: WeChatHttpRequest): Promise<WeChatHttpResponse> => {
    const arrivedAt = performance.now();
    if (!hasValidSignature(request, token)) {
      logger.warn({}, 'POST with a missing or wrong signature: ignored');
      return refused('signature', plain(401, 'invalid signature'));
    }
    const timestamp = request.query('timestamp') ?? '';
    const skew = /^\d{1,12}$/.test(timestamp) ? skewOf(Number(timestamp)) : maxAgeSeconds === 0 ? undefined : Number.NaN;
    if (skew !== undefined) {
      logger.warn(
        { skewSeconds: Number.isNaN(skew) ? undefined : skew, maxAgeSeconds },
        'push refused: its timestamp is outside the freshness window (a replayed request, or this server\'s clock is off)',
      );
      return refused('age', plain(401, 'stale timestamp'));
    }
    let body: string;
    try {
      body = await request.readBody();
    } catch (err) {
      if (!(err instanceof BodyReadError)) throw err;
      logger.warn({ status: err.status, reason: err.message }, 'could not read the request body');
      // The rest of the body may still be on the socket; rather than read it (it may be huge), close
      // the connection after the answer so the next request does not start inside this body.
      return refused(err.status === 413 ? 'size' : 'body', plain(err.status, err.status === 413 ? err.message : 'unreadable body', { Connection: 'close' }));
    }
    const encrypted = request.query('encrypt_type') === 'aes';
    let message;
    let replyKey: Buffer | undefined; // the key that decrypted the push encrypts the reply
    try {
      let xml = body;
      if (encrypted) {
        if (security === undefined) {
          return refused('mode', plain(400, 'encrypted push, but security mode is off: set WECHAT_APPID and WECHAT_ENCODING_AES_KEY'));
        }
        const encrypt = readEncrypt(body);
        const decrypt = (key: Buffer): string =>
          verifyAndDecryptMessage({
            key,
            appId: security.appId,
            token,
            timestamp: request.query('timestamp'),
            nonce: request.query('nonce'),
            msgSignature: request.query('msg_signature'),
            encrypt,
          });
        ({ xml, key: replyKey } = withFirstKey(security.keys, decrypt));
      } else if (security?.required === true) {
        logger.warn({}, 'plaintext push refused: WECHAT_REQUIRE_ENCRYPTION is set');
        return refused('mode', plain(400, 'plaintext push refused: this server requires security mode (encrypt_type=aes)'));
      }
      message = parseMessage(xml);
      // Encrypted, CreateTime is covered by the signature too: an old push in a fresh envelope is still old.
      const messageSkew = encrypted ? skewOf(message.CreateTime) : undefined;
      if (messageSkew !== undefined) {
        logger.warn({ skewSeconds: messageSkew, maxAgeSeconds }, 'encrypted push refused: its CreateTime is outside the freshness window');
        return refused('age', plain(401, 'stale message'));
      }
    } catch (err) {
      if (err instanceof DecryptError) {
        const status = err.code === 'BAD_SIGNATURE' ? 401 : 400;
        logger.warn({ code: err.code, reason: err.message }, 'encrypted push rejected');
        return refused('decryption', plain(status, status === 401 ? 'invalid msg_signature' : `cannot decrypt: ${err.message}`));
      }
      if (!(err instanceof MessageParseError)) throw err;
      logger.warn({ code: err.code, reason: err.message }, 'POST body is not a WeChat message');
      return refused('message', plain(400, `not a WeChat message: ${err.message}`));
    }
    const remainingMs = lateReplies === undefined ? undefined : lateReplies.deadlineMs - (performance.now() - arrivedAt);
    // With late replies, the engine also learns the deadline, so a retry of a late turn gets `success`, not a second copy.
    const turn = engine.handle(message, remainingMs === undefined ? {} : { lateAfter: Date.now() + remainingMs });
    const result = remainingMs === undefined ? await turn : await beforeDeadline(turn, remainingMs);
    if (result === undefined) {
      // Too late for a passive reply (only with lateReplies): answer now, send the reply when the turn ends.
      if (lateReplies !== undefined) {
        const work = deliverLate(turn, message.FromUserName, lateReplies, logger, observer);
        lateReplies.track?.(work);
      }
      return plain(200, SUCCESS_BODY);
    }
    if (result.reply === undefined) return plain(200, SUCCESS_BODY);
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
            nonce: replyNonce(request.query('nonce')),
          })
        : xml;
    return { status: 200, contentType: XML, body: reply };
  };

  return async (request) => {
    switch (request.method) {
      case 'GET':
      case 'HEAD':
        return verify(request);
      case 'POST':
        return push(request);
      default:
        return plain(405, 'method not allowed: WeChat uses GET (verification) and POST (messages)', { Allow: 'GET, POST' });
    }
  };
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
  turn: Promise<{ readonly reply: Reply | undefined; readonly delivery?: string }>,
  openid: string,
  late: LateReplyOptions,
  logger: EngineLogger,
  observer: HttpObserver | undefined,
): Promise<void> {
  logger.info({ deadlineMs: late.deadlineMs }, 'turn still running at the deadline: answered success, the reply follows as a customer-service message');
  try {
    const { reply, delivery } = await turn;
    if (delivery !== undefined) {
      // Made durable before the turn's commit: the delivery queue sends it, from any process.
      notify(observer?.lateReply, 'queued');
      logger.info({ delivery }, 'late reply queued as a customer-service message');
      return;
    }
    if (reply === undefined) return;
    const outcome = await late.send(openid, reply);
    notify(observer?.lateReply, outcome === 'not-sendable' ? 'not-sendable' : outcome === 'queued' ? 'queued' : 'sent');
    logger.info({ outcome }, outcome === 'queued' ? 'late reply queued as a customer-service message' : 'late reply delivered as a customer-service message');
  } catch (err) {
    notify(observer?.lateReply, 'failed');
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
