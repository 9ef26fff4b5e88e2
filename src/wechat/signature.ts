/**
 * The plain 3-field request signature WeChat puts on the server-URL GET handshake and on every POST.
 * (The 4-field `msg_signature` of security mode is not handled here.)
 *
 * Source: WeChat doc 接入概述 / 消息与事件推送介绍 (`offiaccount/Basic_Information/Access_Overview.html`),
 * protocol README §1.1–§1.3.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** A Token (令牌): 3 to 32 letters or digits, as the Official Account console requires (接入概述). */
export const TOKEN_FORMAT = /^[A-Za-z0-9]{3,32}$/;

/**
 * `sha1(token, timestamp, nonce sorted as plain strings and joined with no separator)`.
 *
 * Sorting uses `Buffer.compare` on the UTF-8 bytes (= code point order, what WeChat and wechatpy
 * do); for the ASCII values WeChat uses this equals `Array.prototype.sort()`.
 *
 * @param token - the Token configured for the server URL (in the WeChat console).
 * @param timestamp - the `timestamp` query value, as received (Unix seconds, not parsed).
 * @param nonce - the `nonce` query value, as received.
 * @returns 40 lowercase hex characters, e.g. token `AAAAA`, timestamp `1714036504`, nonce
 *   `1514711492` → `f464b24fc39322e44b38aa78f5edd27bd1441696` (official worked example).
 */
export function computeSignature(token: string, timestamp: string, nonce: string): string {
  const sorted = [token, timestamp, nonce]
    .map((s) => Buffer.from(s, 'utf8'))
    .sort(Buffer.compare);
  return createHash('sha1').update(Buffer.concat(sorted)).digest('hex');
}

/**
 * Checks the `signature` query parameter of a GET handshake or a POST push.
 *
 * Returns `false` (never throws) when `signature`, `timestamp` or `nonce` is missing, empty or not a
 * string (Express gives an array for a repeated query key), when `token` is empty (an empty Token
 * would make every signature forgeable), and when the signature does not match. The comparison is
 * constant-time (`crypto.timingSafeEqual` on equal-length buffers; a length mismatch is `false`).
 * The match is exact: WeChat sends lowercase hex.
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
  const expected = Buffer.from(computeSignature(token, timestamp, nonce), 'utf8');
  const actual = Buffer.from(signature, 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function isFilled(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}
