/**
 * The plain 3-field request signature WeChat puts on the server-URL GET handshake and on every POST.
 * (The 4-field `msg_signature` of security mode is not handled here.)
 *
 * Source: WeChat doc 接入概述 / 消息与事件推送介绍 (`offiaccount/Basic_Information/Access_Overview.html`),
 * protocol README §1.1–§1.3.
 *
 * @module
 */
import { hash, timingSafeEqual } from 'node:crypto';

/** A Token (令牌): 3 to 32 letters or digits, as the Official Account console requires (接入概述). */
export const TOKEN_FORMAT = /^[A-Za-z0-9]{3,32}$/;

/**
 * `sha1(token, timestamp, nonce sorted as plain strings and joined with no separator)`.
 *
 * Sorting is by the UTF-8 bytes (= code point order, what WeChat and wechatpy do): for the ASCII
 * values WeChat uses that is JavaScript's own string order, used as is; other values are encoded
 * and sorted with `Buffer.compare`.
 *
 * @param token - the Token configured for the server URL (in the WeChat console).
 * @param timestamp - the `timestamp` query value, as received (Unix seconds, not parsed).
 * @param nonce - the `nonce` query value, as received.
 * @returns 40 lowercase hex characters, e.g. token `AAAAA`, timestamp `1714036504`, nonce
 *   `1514711492` → `f464b24fc39322e44b38aa78f5edd27bd1441696` (official worked example).
 */
export function computeSignature(token: string, timestamp: string, nonce: string): string {
  return hash('sha1', sortedConcatenation(token, timestamp, nonce), 'hex');
}

/** Any character outside ASCII (where UTF-16 order and UTF-8 byte order may differ). */
const NON_ASCII = /[^\u0000-\u007f]/;

/**
 * `a`, `b` and `c` sorted by their UTF-8 bytes and joined. For ASCII strings (WeChat's Token,
 * timestamp and nonce always are) JavaScript's own string order is that order, so the strings are
 * compared and joined as they are; otherwise they are encoded and sorted with `Buffer.compare`.
 */
function sortedConcatenation(a: string, b: string, c: string): string | Buffer {
  if (NON_ASCII.test(a) || NON_ASCII.test(b) || NON_ASCII.test(c)) {
    return Buffer.concat([a, b, c].map((s) => Buffer.from(s, 'utf8')).sort(Buffer.compare));
  }
  if (a > b) [a, b] = [b, a];
  if (b > c) [b, c] = [c, b];
  if (a > b) [a, b] = [b, a];
  return a + b + c;
}

/**
 * Checks the `signature` query parameter of a GET handshake or a POST push.
 *
 * Returns `false` (never throws) when `signature`, `timestamp` or `nonce` is missing, empty or not a
 * string (Express gives an array for a repeated query key), when `token` is empty (an empty Token
 * would make every signature forgeable), and when the signature does not match. The match is
 * exact: WeChat sends 40 lowercase hex digits, and anything else (upper case, another length) is
 * `false` at once; the digest's 20 bytes are then compared in constant time (`crypto.timingSafeEqual`).
 *
 * Note the signature covers only token, timestamp and nonce, not the body (protocol README §1.2).
 *
 * @param params.token - the configured Token.
 * @param params.signature - the `signature` query value (40 lowercase hex characters).
 * @param params.timestamp - the `timestamp` query value.
 * @param params.nonce - the `nonce` query value.
 * @returns `true` only for a present, matching signature.
 */
export function verifySignature(params: {
  token: string;
  signature?: string;
  timestamp?: string;
  nonce?: string;
}): boolean {
  const { token, signature, timestamp, nonce } = params;
  if (!isFilled(token) || !isFilled(signature) || !isFilled(timestamp) || !isFilled(nonce)) return false;
  // WeChat sends 40 lowercase hex digits; anything else cannot match (the check is exact). The
  // digest is then compared as its 20 bytes, in constant time.
  if (!LOWER_HEX_SHA1.test(signature)) return false;
  const expected = hash('sha1', sortedConcatenation(token, timestamp, nonce), 'buffer');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/** What `computeSignature` returns: a SHA-1 as 40 lowercase hex digits. */
const LOWER_HEX_SHA1 = /^[0-9a-f]{40}$/;

function isFilled(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}
