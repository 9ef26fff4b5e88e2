/**
 * Security mode (安全模式) and compatible mode (兼容模式): the 4-field `msg_signature` over the
 * `<Encrypt>` text, and the AES-256-CBC envelope around inbound pushes and passive replies.
 *
 * Scheme (protocol README §4.3–§4.5):
 * - `AESKey = base64decode(EncodingAESKey + "=")` (32 bytes), `IV = AESKey[0..16)`;
 * - `FullStr = random(16) ‖ msg_len (uint32 big-endian, UTF-8 bytes of msg) ‖ msg ‖ AppID`;
 * - PKCS#7 padding to **32-byte** blocks (K = 32, not AES's 16), then AES-256-CBC without the
 *   cipher's own padding; `Encrypt` = standard base64 of the ciphertext;
 * - `msg_signature = sha1(sort([token, timestamp, nonce, Encrypt]).join(''))`.
 *
 * Only Official Account (公众号) behaviour: the GET `echostr` handshake stays plain in every mode
 * and is never decrypted here (README §4.6; WeCom's encrypted echostr is out of scope).
 *
 * Sources: WeChat doc 消息加解密说明
 * (`offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html`), 消息加解密
 * 技术方案 (`oplatform/Third-party_Platforms/2.0/api/Before_Develop/Technical_Plan.html`), the official
 * `WXBizMsgCrypt` samples; protocol README §4, vectors `msg_signature`, `encryption`, `negative`.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { cdata, removeInvalidXmlChars } from './xml.js';

/** Why {@link parseEncodingAESKey}, {@link decryptMessage} or {@link verifyAndDecryptMessage} refused. */
export type DecryptErrorCode =
  /** EncodingAESKey is not 43 characters of `[A-Za-z0-9]`, or a key Buffer is not 32 bytes. */
  | 'BAD_KEY'
  /** `msg_signature` missing or wrong ({@link verifyAndDecryptMessage} only). */
  | 'BAD_SIGNATURE'
  /** `Encrypt` is empty or not strict, canonical standard base64. */
  | 'BAD_BASE64'
  /** The ciphertext is not a positive multiple of the AES block (16 bytes). */
  | 'BAD_LENGTH'
  /** The PKCS#7 (K = 32) padding after decryption is invalid: usually a wrong key or tampering. */
  | 'BAD_PADDING'
  /** `msg_len` does not fit in FullStr (or FullStr is shorter than the 20-byte header). */
  | 'BAD_MSG_LEN'
  /** The id after the message is not the expected AppID (official sample error -40005). */
  | 'APPID_MISMATCH'
  /** The message bytes are not valid UTF-8. */
  | 'BAD_UTF8';

/**
 * A rejected key, signature or ciphertext. `message` says which check failed and, where useful,
 * lengths or byte values of the structure; it never contains the key, the plaintext or the AppID.
 */
export class DecryptError extends Error {
  override name = 'DecryptError' as const;
  /** Which check failed. */
  readonly code: DecryptErrorCode;

  constructor(code: DecryptErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** WeChat's PKCS#7 block size K (技术方案: 「K 为秘钥字节数（采用 32）」). */
const PAD_BLOCK = 32;
/** AES block size: the ciphertext is always a multiple of this. */
const AES_BLOCK = 16;
/** Bytes of random prefix plus the 4-byte `msg_len`. */
const HEADER_BYTES = 20;
/** An EncodingAESKey (消息加解密密钥): 43 letters or digits, as the console generates it (消息加解密说明; protocol README §4). */
export const ENCODING_AES_KEY_FORMAT = /^[A-Za-z0-9]{43}$/;
/**
 * An AppID (开发者ID), as this server accepts one in its settings: 1 to 64 letters, digits or `_`
 * (`wx` and 16 hex digits for an Official Account). It is compared with the AppID inside every
 * decrypted push, and names the account to WeChat's API.
 */
export const APP_ID_FORMAT = /^[A-Za-z0-9_]{1,64}$/;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})+$|^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$/;
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Turns the EncodingAESKey from the WeChat console into the 32-byte AES key:
 * `base64decode(EncodingAESKey + "=")`.
 *
 * The key must be exactly 43 characters of `[A-Za-z0-9]` (技术方案; vector `neg-key-illegal-char`
 * rejects `+` and `/`). Many real keys, including the official sample keys, are non-canonical
 * base64 (the last character carries bits decoding drops); they are accepted, as WeChat does
 * (README §4.4).
 *
 * @param encodingAESKey - the 43-character EncodingAESKey (消息加解密密钥).
 * @returns the 32-byte AES-256 key (the IV is its first 16 bytes).
 * @throws {DecryptError} `BAD_KEY` for any other length or character.
 */
export function parseEncodingAESKey(encodingAESKey: string): Buffer {
  if (typeof encodingAESKey !== 'string' || !ENCODING_AES_KEY_FORMAT.test(encodingAESKey)) {
    const length = typeof encodingAESKey === 'string' ? encodingAESKey.length : typeof encodingAESKey;
    throw new DecryptError('BAD_KEY', `EncodingAESKey must be exactly 43 characters of [A-Za-z0-9] (got length ${length})`);
  }
  const key = Buffer.from(`${encodingAESKey}=`, 'base64');
  if (key.length !== 32) throw new DecryptError('BAD_KEY', `EncodingAESKey decoded to ${key.length} bytes, not 32`);
  return key;
}

/**
 * `msg_signature`: SHA-1 of token, timestamp, nonce and the `Encrypt` text, sorted as plain strings
 * (UTF-8 byte order, as WeChat and wechatpy do) and joined with no separator.
 *
 * Source: 消息加解密说明 (「校验msg_signature签名」), README §4.3.
 *
 * @param token - the Token configured for the server URL.
 * @param timestamp - the `timestamp` query value (or the reply's `TimeStamp`), as a string.
 * @param nonce - the `nonce` query value (or the reply's `Nonce`).
 * @param encrypt - the `<Encrypt>` text exactly as received (after CDATA unwrapping, never trimmed).
 * @returns 40 lowercase hex characters.
 */
export function computeMsgSignature(token: string, timestamp: string, nonce: string, encrypt: string): string {
  const sorted = [token, timestamp, nonce, encrypt].map((s) => Buffer.from(s, 'utf8')).sort(Buffer.compare);
  return hash('sha1', Buffer.concat(sorted), 'hex');
}

/**
 * Checks the `msg_signature` query parameter of an encrypted push. Call it **before**
 * {@link decryptMessage}; the plain 3-field `signature` does not authenticate the body (README §4.3).
 *
 * Returns `false` (never throws) when any value is missing, empty or not a string, and when the
 * signature does not match. Constant-time comparison (`crypto.timingSafeEqual`; a length mismatch is
 * `false`); exact match (WeChat sends lowercase hex).
 *
 * @param params.token - the configured Token.
 * @param params.timestamp - the `timestamp` query value.
 * @param params.nonce - the `nonce` query value.
 * @param params.encrypt - the `<Encrypt>` text of the body.
 * @param params.msgSignature - the `msg_signature` query value.
 * @returns `true` only for a present, matching signature.
 */
export function verifyMsgSignature(params: {
  token: string;
  timestamp?: string;
  nonce?: string;
  encrypt?: string;
  msgSignature?: string;
}): boolean {
  const { token, timestamp, nonce, encrypt, msgSignature } = params;
  if (!isFilled(token) || !isFilled(timestamp) || !isFilled(nonce) || !isFilled(encrypt) || !isFilled(msgSignature)) {
    return false;
  }
  const expected = Buffer.from(computeMsgSignature(token, timestamp, nonce, encrypt), 'utf8');
  const actual = Buffer.from(msgSignature, 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * Decrypts the `<Encrypt>` text of a push and returns the message inside (the inner XML).
 *
 * Checks, in order, each failure being a {@link DecryptError} with the code in brackets:
 * key is 32 bytes [`BAD_KEY`]; `encrypt` is non-empty strict canonical base64 (standard alphabet,
 * `=` padding, no whitespace) [`BAD_BASE64`]; ciphertext length is a positive multiple of 16
 * [`BAD_LENGTH`]; AES-256-CBC (IV = key[0..16), no cipher padding), then PKCS#7 with K = 32: last
 * byte 1..32 and all pad bytes equal to it [`BAD_PADDING`]; FullStr has the 20-byte header and
 * `20 + msg_len ≤ length` [`BAD_MSG_LEN`]; the bytes after the message equal `appId` exactly
 * [`APPID_MISMATCH`]; the message is valid UTF-8 [`BAD_UTF8`].
 *
 * A wrong key usually fails as `BAD_PADDING`, sometimes `BAD_MSG_LEN` or `APPID_MISMATCH`.
 *
 * Source: 消息加解密 技术方案, README §4.4 (vectors `encryption`, `neg-*`).
 *
 * @param params.key - the 32-byte key from {@link parseEncodingAESKey}.
 * @param params.appId - the account's AppID (`wx…`) that must trail the message.
 * @param params.encrypt - the `<Encrypt>` text (base64).
 * @returns the message as a string (UTF-8 decoded; for OA pushes, an `<xml>…</xml>` document).
 * @throws {DecryptError} as listed above.
 */
export function decryptMessage(params: { key: Buffer; appId: string; encrypt: string }): string {
  const { key, appId, encrypt } = params;
  const badKey = keyProblem(key);
  if (badKey !== undefined) throw new DecryptError('BAD_KEY', badKey);
  const ciphertext = decodeBase64Strict(encrypt);
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK !== 0) {
    throw new DecryptError('BAD_LENGTH', `ciphertext is ${ciphertext.length} bytes, not a positive multiple of ${AES_BLOCK}`);
  }
  const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
  decipher.setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(ciphertext), decipher.final()]);

  const pad = padded[padded.length - 1]!;
  if (pad < 1 || pad > PAD_BLOCK || pad > padded.length) {
    throw new DecryptError('BAD_PADDING', `PKCS#7 pad byte ${pad} is outside 1..${PAD_BLOCK}`);
  }
  for (let i = padded.length - pad; i < padded.length - 1; i++) {
    if (padded[i] !== pad) throw new DecryptError('BAD_PADDING', `PKCS#7 pad bytes are not all ${pad}`);
  }
  const full = padded.subarray(0, padded.length - pad);

  if (full.length < HEADER_BYTES) {
    throw new DecryptError('BAD_MSG_LEN', `decrypted FullStr is ${full.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  }
  const msgLen = full.readUInt32BE(16);
  const available = full.length - HEADER_BYTES;
  if (msgLen > available) {
    throw new DecryptError('BAD_MSG_LEN', `msg_len ${msgLen} exceeds the ${available} bytes after the header`);
  }
  const msgEnd = HEADER_BYTES + msgLen;
  if (!full.subarray(msgEnd).equals(Buffer.from(appId, 'utf8'))) {
    throw new DecryptError('APPID_MISMATCH', `the ${full.length - msgEnd}-byte id after the message is not the expected AppID`);
  }
  try {
    return utf8Strict.decode(full.subarray(HEADER_BYTES, msgEnd));
  } catch {
    throw new DecryptError('BAD_UTF8', 'the decrypted message is not valid UTF-8');
  }
}

/**
 * {@link verifyMsgSignature} then {@link decryptMessage}: the whole check of an encrypted push.
 *
 * @param params - the fields of both (`msgSignature` is the `msg_signature` query value).
 * @returns the decrypted message.
 * @throws {DecryptError} `BAD_SIGNATURE` when the signature is missing or wrong (nothing is
 *   decrypted then), otherwise the errors of {@link decryptMessage}.
 */
export function verifyAndDecryptMessage(params: {
  key: Buffer;
  appId: string;
  token: string;
  timestamp?: string;
  nonce?: string;
  encrypt?: string;
  msgSignature?: string;
}): string {
  if (!verifyMsgSignature(params)) throw new DecryptError('BAD_SIGNATURE', 'msg_signature is missing or does not match');
  return decryptMessage({ key: params.key, appId: params.appId, encrypt: params.encrypt! });
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** 16 random ASCII letters and digits (uniform: rejection sampling over random bytes). */
function randomAlphanumeric16(): Buffer {
  const out: number[] = [];
  while (out.length < 16) {
    for (const byte of randomBytes(32)) {
      if (byte < 248 && out.length < 16) out.push(ALPHANUMERIC.charCodeAt(byte % 62)); // 248 = 4 × 62
    }
  }
  return Buffer.from(out);
}

/**
 * Encrypts a message into the base64 text of an `<Encrypt>` element:
 * `base64(AES-256-CBC(PKCS7_32(random16 ‖ uint32be(byteLength(msg)) ‖ msg ‖ appId)))`.
 *
 * The pad is `32 − (n mod 32)` bytes (1..32; a whole block of `0x20` when FullStr is already a
 * multiple of 32), so the ciphertext is always a multiple of 32 bytes. With the vectors' fixed
 * `random16` the output is byte-identical to theirs.
 *
 * Source: 消息加解密 技术方案, README §4.4.
 *
 * @param params.key - the 32-byte key from {@link parseEncodingAESKey}.
 * @param params.appId - the account's AppID, appended after the message.
 * @param params.plaintext - the message (e.g. reply XML); encoded as UTF-8 (a lone surrogate becomes
 *   U+FFFD), `msg_len` counts those bytes.
 * @param params.random16 - the 16-byte random prefix; default 16 random letters and digits, as the
 *   official samples use (whether WeChat accepts other bytes in a reply is not documented).
 * @returns standard base64 with `=` padding.
 * @throws {RangeError} if `key` is not 32 bytes or `random16` is not 16 bytes.
 */
export function encryptMessage(params: { key: Buffer; appId: string; plaintext: string; random16?: Buffer }): string {
  const { key, appId, plaintext } = params;
  const badKey = keyProblem(key);
  if (badKey !== undefined) throw new RangeError(badKey);
  const random16 = params.random16 ?? randomAlphanumeric16();
  if (!Buffer.isBuffer(random16) || random16.length !== 16) {
    throw new RangeError(`random16 must be 16 bytes (got ${Buffer.isBuffer(random16) ? random16.length : typeof random16})`);
  }
  const msg = Buffer.from(plaintext, 'utf8');
  const msgLen = Buffer.alloc(4);
  msgLen.writeUInt32BE(msg.length, 0);
  const full = Buffer.concat([random16, msgLen, msg, Buffer.from(appId, 'utf8')]);
  const pad = PAD_BLOCK - (full.length % PAD_BLOCK);
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(full), cipher.update(Buffer.alloc(pad, pad)), cipher.final()]).toString('base64');
}

/**
 * Builds the encrypted passive-reply body (README §4.5, the official 回包 example's layout):
 *
 * ```xml
 * <xml>
 * <Encrypt><![CDATA[base64]]></Encrypt>
 * <MsgSignature><![CDATA[sha1 hex]]></MsgSignature>
 * <TimeStamp>1713424427</TimeStamp>
 * <Nonce><![CDATA[415670741]]></Nonce>
 * </xml>
 * ```
 *
 * `Encrypt` = {@link encryptMessage} of `plaintextXml`; `MsgSignature` =
 * {@link computeMsgSignature}`(token, timestamp, nonce, Encrypt)`. `TimeStamp` is not in CDATA.
 * Do not encrypt the `success` / empty "no reply" body (README §4.1); send that as is.
 *
 * @param params.key - the 32-byte key.
 * @param params.appId - the account's AppID.
 * @param params.token - the configured Token (signs the reply).
 * @param params.plaintextXml - the reply XML (e.g. from `replyToXml`).
 * @param params.timestamp - Unix time in **seconds**, as digits or a non-negative safe integer.
 * @param params.nonce - any non-empty string (the doc suggests echoing the query `nonce`); it must
 *   not contain characters XML forbids, since the signed value has to parse back unchanged.
 * @param params.random16 - optional fixed random prefix (tests); see {@link encryptMessage}.
 * @returns the response body (send as `application/xml; charset=utf-8`).
 * @throws {RangeError} for a bad timestamp or nonce, or a key / random16 of the wrong size.
 */
export function encryptReply(params: {
  key: Buffer;
  appId: string;
  token: string;
  plaintextXml: string;
  timestamp: string | number;
  nonce: string;
  random16?: Buffer;
}): string {
  const { key, appId, token, plaintextXml, nonce } = params;
  const timestamp = typeof params.timestamp === 'number' ? String(params.timestamp) : params.timestamp;
  if (!/^\d+$/.test(timestamp) || (typeof params.timestamp === 'number' && !Number.isSafeInteger(params.timestamp))) {
    throw new RangeError(`timestamp must be whole seconds as digits, got ${JSON.stringify(String(params.timestamp))}`);
  }
  if (typeof nonce !== 'string' || nonce === '' || removeInvalidXmlChars(nonce) !== nonce) {
    throw new RangeError('nonce must be a non-empty string without characters XML forbids');
  }
  const encrypt = encryptMessage({ key, appId, plaintext: plaintextXml, ...(params.random16 ? { random16: params.random16 } : {}) });
  const signature = computeMsgSignature(token, timestamp, nonce, encrypt);
  return (
    `<xml>\n<Encrypt>${cdata(encrypt)}</Encrypt>\n<MsgSignature>${cdata(signature)}</MsgSignature>\n` +
    `<TimeStamp>${timestamp}</TimeStamp>\n<Nonce>${cdata(nonce)}</Nonce>\n</xml>`
  );
}

/** Why `key` is not usable as the AES-256 key, or `undefined` when it is. */
function keyProblem(key: unknown): string | undefined {
  if (Buffer.isBuffer(key) && key.length === 32) return undefined;
  return `the AES key must be a 32-byte Buffer (got ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key})`;
}

function decodeBase64Strict(s: string): Buffer {
  if (typeof s !== 'string' || s === '') throw new DecryptError('BAD_BASE64', 'Encrypt is empty');
  if (s.length % 4 !== 0) throw new DecryptError('BAD_BASE64', `Encrypt has ${s.length} characters, not a multiple of 4`);
  if (!STRICT_BASE64.test(s)) throw new DecryptError('BAD_BASE64', 'Encrypt contains characters outside standard base64 or misplaced "="');
  const bytes = Buffer.from(s, 'base64');
  // Rejects non-zero bits in the last character before '=' (non-canonical encodings).
  if (bytes.toString('base64') !== s) throw new DecryptError('BAD_BASE64', 'Encrypt is not canonical base64');
  return bytes;
}

function isFilled(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}
