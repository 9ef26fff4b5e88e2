/**
 * The terminal chat's remote mode (`wechat-dialog chat --url …`): a smoke test of a running
 * server. Each message is POSTed to the server URL exactly as WeChat pushes it, and the answer is
 * read back as WeChat would read it.
 *
 * | what is sent | how |
 * |---|---|
 * | query | `signature`, `timestamp` (Unix seconds), `nonce`, `openid`; in security mode also `encrypt_type=aes` and `msg_signature` |
 * | body, plaintext mode | the push XML (`push-xml.ts`): strings in CDATA, `CreateTime` in seconds, a fresh 64-bit `MsgId` for ordinary messages, none for events |
 * | body, security mode | `<xml><ToUserName/><Encrypt/></xml>`, the push XML encrypted with the EncodingAESKey |
 * | `/retry` | the same push again (same `MsgId` and `CreateTime`), with a new timestamp, nonce and signatures |
 *
 * | what comes back | what the chat shows |
 * |---|---|
 * | 200 `success` or empty | no reply |
 * | 200 reply XML (security mode: the signed envelope, checked and decrypted) | the reply |
 * | 200 anything else, a wrong `MsgSignature`, a plaintext reply in security mode | `error: …` naming the problem |
 * | any other status | `error: HTTP <status> <first line of the body>` |
 * | no connection | `error: cannot reach <url>: <reason>` |
 *
 * Sources: 接入概述 / 消息与事件推送 (README §1.2), 接收普通消息 (§2), 被动回复用户消息 (§3),
 * 消息加解密说明 (§4) in `../shared/protocol/README.md`.
 *
 * @module
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { OutgoingMessage } from '../testing/conversation.js';
import { DecryptError, computeMsgSignature, encryptMessage, parseEncodingAESKey, verifyAndDecryptMessage } from '../wechat/crypto.js';
import type { InboundMessage } from '../wechat/messages.js';
import { replyLimitWarnings, type Reply } from '../wechat/replies.js';
import { computeSignature } from '../wechat/signature.js';
import { cdata } from '../wechat/xml.js';
import type { ChatTarget } from './chat.js';
import { pushToXml } from './push-xml.js';
import { ReplyParseError, isNoReplyBody, parseReplyXml, readEncryptedReply } from './reply-parser.js';

/** Options of {@link createRemoteChat}. */
export interface RemoteChatOptions {
  /** The server URL (服务器地址), `http:` or `https:`, e.g. `http://127.0.0.1:3000/wechat`. */
  readonly url: string;
  /** The Token (令牌) the server is configured with: signs every push. */
  readonly token: string;
  /**
   * Security mode (安全模式): pushes are encrypted with `encodingAESKey` (43 letters or digits) and
   * carry `appId` (the account's AppID, `wx…`); replies must come back encrypted and signed.
   * @default undefined: plaintext mode
   */
  readonly security?: { readonly appId: string; readonly encodingAESKey: string };
  /** The user's openid (`FromUserName`). @default 'oTestUser0000000000000000001' */
  readonly openid?: string;
  /** The account's original id (`ToUserName`). @default 'gh_test0000000' */
  readonly account?: string;
  /** How long to wait for an answer, **milliseconds**. @default 15000 */
  readonly timeoutMs?: number;
  /** The clock for `CreateTime` and `timestamp`, in **milliseconds**. @default Date.now */
  readonly now?: () => number;
}

/** Why a push got no usable answer. `message` is the line the chat shows after `error: `. */
export type RemoteChatErrorCode =
  /** The server answered with a status other than 200 (`status` holds it). */
  | 'HTTP_STATUS'
  /** No connection (refused, DNS, TLS, reset). */
  | 'UNREACHABLE'
  /** No answer within `timeoutMs`. */
  | 'TIMEOUT'
  /** A 200 answer WeChat would not accept: not `success` nor reply XML, a bad envelope or signature. */
  | 'BAD_REPLY'
  /** `/retry` before anything was sent. */
  | 'NOTHING_SENT';

/** Thrown by the remote {@link ChatTarget}'s methods; the chat prints `error: <message>`. */
export class RemoteChatError extends Error {
  override readonly name = 'RemoteChatError';
  readonly code: RemoteChatErrorCode;
  /** The HTTP status, for `HTTP_STATUS`. */
  readonly status: number | undefined;

  constructor(code: RemoteChatErrorCode, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options?.status;
  }
}

/** WeChat waits this long, **milliseconds**, for a passive reply, then retries (README §3.1). */
const WECHAT_WAIT_MS = 5000;

/**
 * What is wrong with `options`, as one line for a usage error, or `undefined` when they are
 * usable: the URL must be `http:` or `https:`, the Token non-empty, the EncodingAESKey 43 letters
 * or digits and the AppID non-empty.
 */
export function remoteChatOptionsProblem(options: RemoteChatOptions): string | undefined {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return `--url ${JSON.stringify(options.url)} is not a URL: give the server URL, e.g. http://127.0.0.1:3000/wechat`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `--url must be http: or https:, got ${url.protocol}`;
  if (options.token === '') return 'chat --url needs the Token the server uses: --token <token> or WECHAT_TOKEN';
  if (options.security !== undefined) {
    if (options.security.appId === '') return '--aes-key needs --appid <AppID>: the AppID is encrypted into every push';
    try {
      parseEncodingAESKey(options.security.encodingAESKey);
    } catch (err) {
      return `--aes-key: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  if (options.openid === '' || options.account === '') return '--openid and --account must not be empty';
  return undefined;
}

/** Where the last push went: its message and XML, re-sent as they are by `/retry`. */
interface SentPush {
  readonly message: InboundMessage;
  readonly xml: string;
}

/**
 * A {@link ChatTarget} that POSTs each message to a running server as WeChat would, and reads the
 * answer as WeChat would (see the module's tables). Its `warnings` collect what WeChat would do
 * differently from what the chat shows: an answer after 5 s (WeChat has retried by then), reply
 * ids not swapped, and the reply limits of `replyLimitWarnings`.
 *
 * @param options - see {@link RemoteChatOptions}; check them first with
 *   {@link remoteChatOptionsProblem}.
 * @throws {TypeError} for a URL that does not parse; {@link DecryptError} `BAD_KEY` for a bad
 *   EncodingAESKey.
 */
export function createRemoteChat(options: RemoteChatOptions): ChatTarget {
  const url = new URL(options.url);
  const shownUrl = `${url.origin}${url.pathname}`;
  const openid = options.openid ?? 'oTestUser0000000000000000001';
  const account = options.account ?? 'gh_test0000000';
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const security =
    options.security === undefined ? undefined : { appId: options.security.appId, key: parseEncodingAESKey(options.security.encodingAESKey) };
  // A random start, so pushes of two chat sessions never share a MsgId (the server takes a repeated one for a retry).
  let lastMsgId = (1n << 62n) + randomBytes(8).readBigUInt64BE() % (1n << 61n);
  let lastTime = 0;
  let last: SentPush | undefined;
  const warnings: string[] = [];

  /** The URL and body of one delivery of `xml`: fresh timestamp, nonce and signatures. */
  const delivery = (xml: string): { target: URL; body: string } => {
    const timestamp = String(Math.floor(now() / 1000));
    const nonce = String(randomInt(100_000_000, 2_000_000_000));
    const target = new URL(url);
    target.searchParams.set('signature', computeSignature(options.token, timestamp, nonce));
    target.searchParams.set('timestamp', timestamp);
    target.searchParams.set('nonce', nonce);
    target.searchParams.set('openid', openid);
    if (security === undefined) return { target, body: xml };
    const encrypt = encryptMessage({ key: security.key, appId: security.appId, plaintext: xml });
    target.searchParams.set('encrypt_type', 'aes');
    target.searchParams.set('msg_signature', computeMsgSignature(options.token, timestamp, nonce, encrypt));
    return { target, body: `<xml><ToUserName>${cdata(account)}</ToUserName><Encrypt>${cdata(encrypt)}</Encrypt></xml>` };
  };

  /** POSTs one delivery of `push` and returns the reply it got. */
  const post = async (push: SentPush): Promise<Reply | undefined> => {
    last = push;
    const { target, body } = delivery(push.xml);
    const started = performance.now();
    let response: Response;
    let answer: string;
    try {
      response = await fetch(target, {
        method: 'POST',
        headers: { 'Content-Type': 'text/xml; charset=utf-8' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      answer = await response.text();
    } catch (err) {
      if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
        throw new RemoteChatError('TIMEOUT', `no answer from ${shownUrl} within ${timeoutMs / 1000} s`, { cause: err });
      }
      throw new RemoteChatError('UNREACHABLE', `cannot reach ${shownUrl}: ${networkReason(err)}`, { cause: err });
    }
    const elapsedMs = performance.now() - started;
    if (response.status !== 200) {
      const line = firstLine(answer) || response.statusText;
      throw new RemoteChatError('HTTP_STATUS', `HTTP ${response.status}${line === '' ? '' : ` ${line}`}`, { status: response.status });
    }
    if (elapsedMs > WECHAT_WAIT_MS) {
      warnings.push(`the server answered after ${(elapsedMs / 1000).toFixed(1)} s: WeChat waits ${WECHAT_WAIT_MS / 1000} s, then retries the push and drops this answer`);
    }
    if (isNoReplyBody(answer)) return undefined;
    const parsed = parseReplyXml(security === undefined ? answer : decryptReply(answer, options.token, security));
    if (parsed.ToUserName !== openid || parsed.FromUserName !== account) {
      warnings.push(
        `the reply is addressed from ${JSON.stringify(parsed.FromUserName)} to ${JSON.stringify(parsed.ToUserName)}: ` +
          `expected from the account ${JSON.stringify(account)} to the user ${JSON.stringify(openid)} (the push's ids swapped)`,
      );
    }
    warnings.push(...replyLimitWarnings(parsed.reply, push.message.MsgType === 'event'));
    return parsed.reply;
  };

  const send = (outgoing: OutgoingMessage): Promise<Reply | undefined> => {
    // Distinct seconds per event, so two events are never taken for a retry of one push.
    lastTime = Math.max(lastTime + (outgoing.MsgType === 'event' ? 1 : 0), Math.floor(now() / 1000));
    const head = { ToUserName: account, FromUserName: openid, CreateTime: lastTime };
    let message: InboundMessage;
    if (outgoing.MsgType === 'event') message = { ...head, ...outgoing } as InboundMessage;
    else {
      lastMsgId += 1n;
      message = { ...head, MsgId: String(lastMsgId), ...outgoing } as InboundMessage;
    }
    return withReplyErrors(post({ message, xml: pushToXml(message) }));
  };

  return {
    openid,
    warnings,
    say: (content) => send({ MsgType: 'text', Content: content }),
    send,
    retryLast: () => {
      if (last === undefined) return Promise.reject(new RemoteChatError('NOTHING_SENT', 'nothing was sent yet: /retry sends the last push again'));
      return withReplyErrors(post(last));
    },
    close: () => Promise.resolve(),
  };
}

/** Reply parse errors as {@link RemoteChatError} `BAD_REPLY`, so every failure of a push has one type. */
async function withReplyErrors(reply: Promise<Reply | undefined>): Promise<Reply | undefined> {
  try {
    return await reply;
  } catch (err) {
    if (err instanceof ReplyParseError) throw new RemoteChatError('BAD_REPLY', `bad reply: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * The reply XML inside a security-mode answer: the envelope's `MsgSignature` checked over its
 * `TimeStamp`, `Nonce` and `Encrypt`, then decrypted (README §4.5).
 * @throws {RemoteChatError} `BAD_REPLY` for a plaintext reply, a wrong signature or a ciphertext that does not decrypt.
 */
function decryptReply(answer: string, token: string, security: { readonly appId: string; readonly key: Buffer }): string {
  const envelope = readEncryptedReply(answer);
  if (envelope === undefined) {
    throw new RemoteChatError('BAD_REPLY', 'bad reply: the server answered an encrypted push in plaintext; WeChat in security mode needs the encrypted envelope');
  }
  try {
    return verifyAndDecryptMessage({
      key: security.key,
      appId: security.appId,
      token,
      timestamp: envelope.TimeStamp,
      nonce: envelope.Nonce,
      encrypt: envelope.Encrypt,
      msgSignature: envelope.MsgSignature,
    });
  } catch (err) {
    if (!(err instanceof DecryptError)) throw err;
    const why = err.code === 'BAD_SIGNATURE' ? 'its MsgSignature does not match (is the Token the same?)' : err.message;
    throw new RemoteChatError('BAD_REPLY', `bad reply: cannot open the encrypted reply: ${why}`, { cause: err });
  }
}

/** The first line of a body, trimmed, at most 200 characters. */
function firstLine(body: string): string {
  const line = body.trim().split(/\r?\n/, 1)[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/**
 * What went wrong with a connection, from fetch's error and its cause: `connect ECONNREFUSED
 * 127.0.0.1:1`, `getaddrinfo ENOTFOUND host`; for a name with several addresses that all failed
 * (an `AggregateError` without a message), each address's reason.
 */
function networkReason(err: unknown): string {
  const cause: unknown = err instanceof Error ? err.cause : undefined;
  if (cause instanceof AggregateError && cause.message === '') {
    const reasons = [...new Set(cause.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))))];
    if (reasons.length > 0) return reasons.join('; ');
  }
  if (cause instanceof Error) {
    // fetch refuses the ports browsers block (1, 6000, 6665-6669, 10080, …) before connecting.
    if (cause.message === 'bad port') return 'bad port: fetch refuses to connect to this port number (one browsers block); run the server on another port';
    const code: unknown = (cause as { code?: unknown }).code;
    return cause.message || (typeof code === 'string' ? code : cause.name);
  }
  return err instanceof Error ? err.message : String(err);
}
