import { createCipheriv, createDecipheriv, randomBytes, randomInt } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import * as cryptoModule from '../../src/wechat/crypto.js';
import {
  DecryptError,
  computeMsgSignature,
  decryptMessage,
  encryptMessage,
  encryptReply,
  parseEncodingAESKey,
  verifyAndDecryptMessage,
  verifyMsgSignature,
  type DecryptErrorCode,
} from '../../src/wechat/crypto.js';
import { SAFE_XML_PARSER_OPTIONS } from '../../src/wechat/xml.js';
import { protocolVectors, type NegativeVector } from '../support/shared.js';

const vectors = protocolVectors();

/** `expect_error` names in vectors.json → what our API does for them. */
const EXPECTED: Record<string, DecryptErrorCode | 'any' | 'false'> = {
  msg_signature_mismatch: 'false',
  bad_key: 'BAD_KEY',
  bad_base64: 'BAD_BASE64',
  bad_ciphertext_length: 'BAD_LENGTH',
  bad_padding: 'BAD_PADDING',
  bad_msg_len: 'BAD_MSG_LEN',
  appid_mismatch: 'APPID_MISMATCH',
  any: 'any',
};

const negMsgSignature = vectors.negative.filter((v) => v.kind === 'msg_signature');
const negDecrypt = vectors.negative.filter((v) => v.kind === 'decrypt');
const negKey = vectors.negative.filter((v) => v.kind === 'key');
/** Plain 3-field signature negatives: covered by test/wechat/signature.test.ts, not here. */
const negSignature = vectors.negative.filter((v) => v.kind === 'signature');

/** Ids of the vectors whose test actually ran to its end, per group. */
const covered = { msg_signature: new Set<string>(), encryption: new Set<string>(), negative: new Set<string>() };


/** Runs `fn` and returns the DecryptError it throws (fails the test if it returns or throws anything else). */
function decryptErrorOf(fn: () => unknown): DecryptError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a DecryptError, but the input was accepted').toBeInstanceOf(DecryptError);
  return thrown as DecryptError;
}

/** Decrypts without any checks, to look at FullStr independently of decryptMessage. */
function rawDecrypt(key: Buffer, encrypt: string): Buffer {
  const d = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
  d.setAutoPadding(false);
  return Buffer.concat([d.update(Buffer.from(encrypt, 'base64')), d.final()]);
}

/** Encrypts a raw (already padded) buffer, to build malformed plaintexts. */
function rawEncrypt(key: Buffer, padded: Buffer): string {
  const c = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  c.setAutoPadding(false);
  return Buffer.concat([c.update(padded), c.final()]).toString('base64');
}

function randomEncodingAESKey(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from({ length: 43 }, () => alphabet[randomInt(alphabet.length)]).join('');
}

const xmlParser = new XMLParser(SAFE_XML_PARSER_OPTIONS);
function parseEnvelope(xml: string): { Encrypt: string; MsgSignature: string; TimeStamp: string; Nonce: string } {
  return (xmlParser.parse(xml) as { xml: { Encrypt: string; MsgSignature: string; TimeStamp: string; Nonce: string } }).xml;
}

describe('vectors.json coverage', () => {
  it('has the group sizes README §8 lists, and every negative kind is handled somewhere', () => {
    expect(vectors.msg_signature).toHaveLength(12);
    expect(vectors.encryption).toHaveLength(11);
    expect(vectors.negative).toHaveLength(19);
    expect(negSignature).toHaveLength(3);
    expect(negMsgSignature.length + negDecrypt.length + negKey.length).toBe(16);
    expect(negSignature.length + negMsgSignature.length + negDecrypt.length + negKey.length).toBe(vectors.negative.length);
    for (const v of [...negMsgSignature, ...negDecrypt, ...negKey]) {
      expect(EXPECTED, `unmapped expect_error of ${v.id}`).toHaveProperty([v.expect_error]);
    }
  });
});

describe('msg_signature vectors', () => {
  it.each(vectors.msg_signature.map((v) => [v.id, v] as const))('%s', (id, v) => {
    expect(computeMsgSignature(v.token, v.timestamp, v.nonce, v.encrypt)).toBe(v.msg_signature);
    expect(computeMsgSignature(v.encrypt, v.nonce, v.token, v.timestamp)).toBe(v.msg_signature); // order-free
    expect(verifyMsgSignature({ ...v, msgSignature: v.msg_signature })).toBe(true);
    covered.msg_signature.add(id);
  });
});

describe('encryption vectors', () => {
  it.each(vectors.encryption.map((v) => [v.id, v] as const))('%s', (id, v) => {
    const key = parseEncodingAESKey(v.encoding_aes_key);
    expect(key).toHaveLength(32);
    const random16 = Buffer.from(v.random16, 'hex');
    expect(random16).toHaveLength(16);
    if (v.random16_ascii !== undefined) expect(random16.toString('latin1')).toBe(v.random16_ascii);

    const ct = encryptMessage({ key, appId: v.app_id, plaintext: v.plaintext_xml, random16 });
    expect(ct.length % 4).toBe(0);
    if (v.ciphertext_base64 !== undefined) expect(ct).toBe(v.ciphertext_base64);
    const given = v.ciphertext_base64 ?? ct;

    // decrypt gives the plaintext; the AppID check is exact in both directions
    expect(decryptMessage({ key, appId: v.app_id, encrypt: given })).toBe(v.plaintext_xml);
    expect(decryptErrorOf(() => decryptMessage({ key, appId: `${v.app_id}x`, encrypt: given })).code).toBe('APPID_MISMATCH');
    expect(decryptErrorOf(() => decryptMessage({ key, appId: v.app_id.slice(0, -1), encrypt: given })).code).toBe('APPID_MISMATCH');

    // FullStr layout, read independently of decryptMessage
    const padded = rawDecrypt(key, given);
    const pad = padded[padded.length - 1]!;
    const full = padded.subarray(0, padded.length - pad);
    const msgLen = full.readUInt32BE(16);
    expect(full.subarray(0, 16).equals(random16)).toBe(true);
    expect(full.subarray(20, 20 + msgLen).toString('utf8')).toBe(v.plaintext_xml);
    expect(full.subarray(20 + msgLen).toString('utf8')).toBe(v.app_id);
    expect(padded.length % 32).toBe(0);
    if (v.msg_len_bytes !== undefined) {
      expect(msgLen).toBe(v.msg_len_bytes);
      expect(Buffer.byteLength(v.plaintext_xml, 'utf8')).toBe(v.msg_len_bytes);
    }
    if (v.fullstr_bytes !== undefined) expect(full.length).toBe(v.fullstr_bytes);
    if (v.pad !== undefined) expect(pad).toBe(v.pad);
    if (v.ciphertext_bytes !== undefined) expect(Buffer.from(given, 'base64')).toHaveLength(v.ciphertext_bytes);

    // Node's 16-byte auto padding only coincides with K = 32 when the pad is <= 16 (README §4.4 trap)
    const sixteen = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
    const wrong = Buffer.concat([sixteen.update(full), sixteen.final()]).toString('base64');
    expect(wrong === ct).toBe(pad <= 16);

    if (v.msg_signature !== undefined && v.timestamp !== undefined && v.nonce !== undefined) {
      expect(computeMsgSignature(v.token, v.timestamp, v.nonce, given)).toBe(v.msg_signature);
      const params = { key, appId: v.app_id, token: v.token, timestamp: v.timestamp, nonce: v.nonce, encrypt: given };
      expect(verifyAndDecryptMessage({ ...params, msgSignature: v.msg_signature })).toBe(v.plaintext_xml);
    }
    if (v.post_body !== undefined) expect(v.post_body).toContain(`<Encrypt><![CDATA[${given}]]></Encrypt>`);
    if (v.reply_envelope !== undefined) {
      const env = parseEnvelope(v.reply_envelope);
      const rebuilt = encryptReply({
        key,
        appId: v.app_id,
        token: v.token,
        plaintextXml: v.plaintext_xml,
        timestamp: env.TimeStamp,
        nonce: env.Nonce,
        random16,
      });
      expect(rebuilt).toBe(v.reply_envelope); // byte for byte, the official 回包 example
    }
    covered.encryption.add(id);
  });
});

describe('negative vectors (msg_signature, decrypt, key)', () => {
  const anyKey = parseEncodingAESKey('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');

  it.each(negMsgSignature.map((v) => [v.id, v] as const))('%s → false / BAD_SIGNATURE', (id, v: NegativeVector) => {
    expect(EXPECTED[v.expect_error]).toBe('false');
    const params = { token: v.token!, timestamp: v.timestamp, nonce: v.nonce, encrypt: v.encrypt, msgSignature: v.msg_signature };
    expect(verifyMsgSignature(params)).toBe(false);
    expect(decryptErrorOf(() => verifyAndDecryptMessage({ ...params, key: anyKey, appId: 'wx' })).code).toBe('BAD_SIGNATURE');
    covered.negative.add(id);
  });

  it.each(negDecrypt.map((v) => [v.id, v.expect_error, v] as const))('%s → %s', (id, _expected, v: NegativeVector) => {
    const want = EXPECTED[v.expect_error];
    expect(want).toBeDefined();
    const key = parseEncodingAESKey(v.encoding_aes_key!);
    const err = decryptErrorOf(() => decryptMessage({ key, appId: v.app_id!, encrypt: v.ciphertext_base64! }));
    if (want !== 'any') expect(err.code).toBe(want);
    expect(err.name).toBe('DecryptError');
    expect(err.message).not.toContain(v.app_id!);
    covered.negative.add(id);
  });

  it.each(negKey.map((v) => [v.id, v] as const))('%s → BAD_KEY', (id, v: NegativeVector) => {
    expect(EXPECTED[v.expect_error]).toBe('BAD_KEY');
    const err = decryptErrorOf(() => parseEncodingAESKey(v.encoding_aes_key!));
    expect(err.code).toBe('BAD_KEY');
    expect(err.message).not.toContain(v.encoding_aes_key!);
    covered.negative.add(id);
  });
});

describe('parseEncodingAESKey', () => {
  it('decodes the official sample key (non-canonical base64) to 32 bytes', () => {
    const key = parseEncodingAESKey('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG');
    expect(key).toHaveLength(32);
    expect(key.subarray(0, 3).toString('hex')).toBe('69b71d');
  });

  it.each([
    ['42 characters', 'A'.repeat(42)],
    ['44 characters', 'A'.repeat(44)],
    ['43 + "="', `${'A'.repeat(43)}=`],
    ['"+" (base64 but not allowed)', `${'A'.repeat(42)}+`],
    ['"/"', `/${'A'.repeat(42)}`],
    ['a space', `${'A'.repeat(21)} ${'A'.repeat(21)}`],
    ['non-ASCII', `${'A'.repeat(42)}é`],
    ['empty', ''],
  ])('rejects %s with BAD_KEY', (_what, key) => {
    expect(decryptErrorOf(() => parseEncodingAESKey(key)).code).toBe('BAD_KEY');
  });

  it('rejects a non-string with BAD_KEY', () => {
    expect(decryptErrorOf(() => parseEncodingAESKey(undefined as unknown as string)).code).toBe('BAD_KEY');
  });
});

describe('verifyMsgSignature', () => {
  const v = vectors.msg_signature[0]!;
  const good = { token: v.token, timestamp: v.timestamp, nonce: v.nonce, encrypt: v.encrypt, msgSignature: v.msg_signature };

  it.each(['token', 'timestamp', 'nonce', 'encrypt', 'msgSignature'] as const)('is false when %s is missing or empty', (field) => {
    expect(verifyMsgSignature({ ...good, [field]: undefined } as typeof good)).toBe(false);
    expect(verifyMsgSignature({ ...good, [field]: '' })).toBe(false);
    expect(verifyMsgSignature({ ...good, [field]: ['x'] } as unknown as typeof good)).toBe(false);
  });

  it('is false for upper-case hex, a truncated or a longer signature', () => {
    expect(verifyMsgSignature({ ...good, msgSignature: v.msg_signature.toUpperCase() })).toBe(false);
    expect(verifyMsgSignature({ ...good, msgSignature: v.msg_signature.slice(0, -1) })).toBe(false);
    expect(verifyMsgSignature({ ...good, msgSignature: `${v.msg_signature}0` })).toBe(false);
  });
});

describe('round trips', () => {
  const pool = ['a', 'Z', '9', ' ', '\n', '<', '>', '&', ']]>', '中', '文', '你好', '😀', '👨‍👩‍👧', '🇨🇳', 'é', '\u{10FFFF}'];
  const randomXml = (): string => {
    const n = randomInt(0, 200);
    const content = Array.from({ length: n }, () => pool[randomInt(pool.length)]).join('');
    return `<xml><ToUserName><![CDATA[oUser]]></ToUserName><Content><![CDATA[${content}]]></Content></xml>`;
  };

  it('random Chinese / emoji XML with random keys, AppIDs and random16 decrypts back', () => {
    const pads = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const key = parseEncodingAESKey(randomEncodingAESKey());
      const appId = `wx${randomBytes(8).toString('hex')}`;
      const plaintext = randomXml();
      const encrypt = encryptMessage({ key, appId, plaintext });
      const bytes = Buffer.from(encrypt, 'base64');
      expect(bytes.length % 32).toBe(0);
      pads.add(bytes.length - (20 + Buffer.byteLength(plaintext) + appId.length));
      expect(decryptMessage({ key, appId, encrypt })).toBe(plaintext);
    }
    expect(pads.size).toBeGreaterThan(16); // many pad values, including some > 16
  });

  it('hits every pad value 1..32 (message lengths 0..31 bytes)', () => {
    const key = parseEncodingAESKey(randomEncodingAESKey());
    const appId = 'wx0123456789abcdef';
    const seen: number[] = [];
    for (let n = 0; n < 32; n++) {
      const plaintext = 'x'.repeat(n);
      const encrypt = encryptMessage({ key, appId, plaintext });
      const padded = rawDecrypt(key, encrypt);
      seen.push(padded[padded.length - 1]!);
      expect(decryptMessage({ key, appId, encrypt })).toBe(plaintext);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
  });

  it('the default random16 differs per call (same input → different ciphertext)', () => {
    const key = parseEncodingAESKey(randomEncodingAESKey());
    const a = encryptMessage({ key, appId: 'wx1', plaintext: '<xml/>' });
    const b = encryptMessage({ key, appId: 'wx1', plaintext: '<xml/>' });
    expect(a).not.toBe(b);
  });

  it('the default random prefix is 16 ASCII letters and digits, as in the official samples', () => {
    const key = parseEncodingAESKey(randomEncodingAESKey());
    for (let i = 0; i < 50; i += 1) {
      const encrypt = encryptMessage({ key, appId: 'wx1', plaintext: '<xml/>' });
      const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
      decipher.setAutoPadding(false);
      const full = Buffer.concat([decipher.update(Buffer.from(encrypt, 'base64')), decipher.final()]);
      expect(full.subarray(0, 16).toString('latin1')).toMatch(/^[A-Za-z0-9]{16}$/);
    }
  });
});

describe('decryptMessage: tampered and malformed input', () => {
  const v = vectors.encryption.find((e) => e.id === 'own-2-pad-gt16')!;
  const key = parseEncodingAESKey(v.encoding_aes_key);
  const good = v.ciphertext_base64!;
  const bytes = Buffer.from(good, 'base64');
  const decrypt = (encrypt: string, appId = v.app_id): string => decryptMessage({ key, appId, encrypt });
  const rejectedWith = (encrypt: string): DecryptErrorCode => decryptErrorOf(() => decrypt(encrypt)).code;

  it('accepts the untouched ciphertext', () => {
    expect(decrypt(good)).toBe(v.plaintext_xml);
  });

  it('rejects a ciphertext truncated by whole blocks', () => {
    for (const drop of [16, 32, 48]) {
      expect(['BAD_PADDING', 'BAD_MSG_LEN', 'APPID_MISMATCH']).toContain(rejectedWith(bytes.subarray(0, bytes.length - drop).toString('base64')));
    }
  });

  it('rejects truncated base64 text (BAD_BASE64 / BAD_LENGTH)', () => {
    expect(rejectedWith(good.slice(0, -1))).toBe('BAD_BASE64');
    expect(rejectedWith(good.slice(0, -4))).toBe('BAD_LENGTH');
  });

  it.each(Array.from({ length: 16 }, (_, i) => [i] as const))('rejects a flipped byte at offset %i of the last block', (i) => {
    const t = Buffer.from(bytes);
    t[t.length - 16 + i]! ^= 0x01;
    expect(['BAD_PADDING', 'BAD_MSG_LEN', 'APPID_MISMATCH', 'BAD_UTF8']).toContain(rejectedWith(t.toString('base64')));
  });

  it('a flip in the second-to-last block lands on the same plaintext byte: pad → BAD_PADDING, AppID → APPID_MISMATCH', () => {
    // 448 bytes: msg 20..398, AppID 399..416, pad (31 × 0x1f) 417..447. In CBC, flipping ciphertext
    // byte i garbles plaintext block ⌊i/16⌋ and flips plaintext byte i + 16.
    expect(v.fullstr_bytes).toBe(417);
    // ciphertext 419 → plaintext 435 (pad); block 416..431 (AppID tail + pad) is garbled too
    const padFlip = Buffer.from(bytes);
    padFlip[419]! ^= 0x01;
    expect(rejectedWith(padFlip.toString('base64'))).toBe('BAD_PADDING');
    // ciphertext 400 → garbles 400..415 (all AppID) and flips 416 (the AppID's last byte); pad intact
    const appIdFlip = Buffer.from(bytes);
    appIdFlip[400]! ^= 0x01;
    expect(rejectedWith(appIdFlip.toString('base64'))).toBe('APPID_MISMATCH');
  });

  it('rejects a ciphertext that is not a multiple of 16 bytes (BAD_LENGTH)', () => {
    for (const n of [1, 15, 17, 33, 447]) expect(rejectedWith(bytes.subarray(0, n).toString('base64'))).toBe('BAD_LENGTH');
  });

  it('rejects an empty Encrypt, whitespace, URL-safe characters, stray "=" and non-canonical base64 (BAD_BASE64)', () => {
    expect(rejectedWith('')).toBe('BAD_BASE64');
    expect(rejectedWith(`${good.slice(0, 76)}\n${good.slice(76)}`)).toBe('BAD_BASE64');
    expect(rejectedWith(` ${good.slice(1)}`)).toBe('BAD_BASE64');
    expect(good).toMatch(/[+/]/);
    expect(rejectedWith(good.replaceAll('+', '-').replaceAll('/', '_'))).toBe('BAD_BASE64');
    expect(rejectedWith(`=${good.slice(1)}`)).toBe('BAD_BASE64');
    // official-java-sample-1 ends in "fg==": "fh==" decodes to the same bytes in Node but is not canonical
    const sample = vectors.encryption.find((e) => e.id === 'official-java-sample-1')!;
    const sampleKey = parseEncodingAESKey(sample.encoding_aes_key);
    const nonCanonical = sample.ciphertext_base64!.replace(/g==$/, 'h==');
    expect(Buffer.from(nonCanonical, 'base64').equals(Buffer.from(sample.ciphertext_base64!, 'base64'))).toBe(true);
    expect(decryptErrorOf(() => decryptMessage({ key: sampleKey, appId: sample.app_id, encrypt: nonCanonical })).code).toBe('BAD_BASE64');
  });

  it('strict PKCS#7: pad byte 0 or 33, and unequal pad bytes, are BAD_PADDING; a full 32-byte pad is fine', () => {
    const body = Buffer.concat([randomBytes(16), Buffer.from([0, 0, 0, 2]), Buffer.from('hi'), Buffer.from(v.app_id)]);
    const pad = 32 - (body.length % 32);
    const make = (tail: Buffer): string => rawEncrypt(key, Buffer.concat([body, tail]));
    expect(decrypt(make(Buffer.alloc(pad, pad)))).toBe('hi');
    expect(rejectedWith(make(Buffer.concat([Buffer.alloc(pad - 1, pad), Buffer.from([0])])))).toBe('BAD_PADDING');
    const inconsistent = Buffer.alloc(pad, pad);
    inconsistent[0] = pad + 1;
    expect(rejectedWith(make(inconsistent))).toBe('BAD_PADDING');
    const aligned = Buffer.concat([randomBytes(16), Buffer.from([0, 0, 0, 26]), Buffer.alloc(26, 0x61), Buffer.from(v.app_id)]); // 64 bytes
    expect(aligned.length % 32).toBe(0);
    expect(decryptMessage({ key, appId: v.app_id, encrypt: rawEncrypt(key, Buffer.concat([aligned, Buffer.alloc(32, 32)])) })).toBe('a'.repeat(26));
    expect(rejectedWith(rawEncrypt(key, Buffer.concat([aligned, Buffer.alloc(32, 33)])))).toBe('BAD_PADDING');
  });

  it('msg_len bounds: 2^32-1 and one byte too many are BAD_MSG_LEN; an empty AppID tail is APPID_MISMATCH', () => {
    const frame = (len: number, msg: string, appId: string): string => {
      const full = Buffer.concat([randomBytes(16), Buffer.alloc(4), Buffer.from(msg), Buffer.from(appId)]);
      full.writeUInt32BE(len, 16);
      const pad = 32 - (full.length % 32);
      return rawEncrypt(key, Buffer.concat([full, Buffer.alloc(pad, pad)]));
    };
    expect(decrypt(frame(3, 'abc', v.app_id))).toBe('abc');
    expect(rejectedWith(frame(0xffffffff, 'abc', v.app_id))).toBe('BAD_MSG_LEN');
    expect(rejectedWith(frame(3 + v.app_id.length + 1, 'abc', v.app_id))).toBe('BAD_MSG_LEN');
    expect(rejectedWith(frame(3 + v.app_id.length, 'abc', v.app_id))).toBe('APPID_MISMATCH'); // AppID swallowed into msg
    expect(rejectedWith(frame(4, 'abc', v.app_id))).toBe('APPID_MISMATCH');
  });

  it('invalid UTF-8 in the message is BAD_UTF8', () => {
    const full = Buffer.concat([randomBytes(16), Buffer.from([0, 0, 0, 2, 0xc3, 0x28]), Buffer.from(v.app_id)]);
    const pad = 32 - (full.length % 32);
    expect(rejectedWith(rawEncrypt(key, Buffer.concat([full, Buffer.alloc(pad, pad)])))).toBe('BAD_UTF8');
  });

  it('a key Buffer that is not 32 bytes is BAD_KEY', () => {
    expect(decryptErrorOf(() => decryptMessage({ key: key.subarray(0, 16), appId: v.app_id, encrypt: good })).code).toBe('BAD_KEY');
  });

  it('error messages name the failed check but no key, AppID or plaintext', () => {
    const err = decryptErrorOf(() => decrypt(good, 'wxsomethingelse'));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('DecryptError');
    expect(err.message).toMatch(/AppID/);
    for (const secret of [v.app_id, 'wxsomethingelse', v.encoding_aes_key, key.toString('hex'), key.toString('base64'), 'CDATA']) {
      expect(err.message).not.toContain(secret);
    }
  });
});

describe('encryptMessage / encryptReply', () => {
  const key = parseEncodingAESKey(randomEncodingAESKey());
  const appId = 'wx0123456789abcdef';

  it('rejects a random16 that is not 16 bytes and a key that is not 32 bytes (RangeError)', () => {
    expect(() => encryptMessage({ key, appId, plaintext: 'x', random16: Buffer.alloc(15) })).toThrow(RangeError);
    expect(() => encryptMessage({ key: Buffer.alloc(16), appId, plaintext: 'x' })).toThrow(RangeError);
  });

  it('builds a parseable envelope whose MsgSignature verifies and whose Encrypt decrypts to the reply', () => {
    const plaintextXml = '<xml><Content><![CDATA[你好 😀 ]]]]><![CDATA[>]]></Content></xml>';
    const body = encryptReply({ key, appId, token: 'tok', plaintextXml, timestamp: 1700000100, nonce: 'n]]>1' });
    expect(body).toMatch(/^<xml>\n<Encrypt><!\[CDATA\[[A-Za-z0-9+/=]+\]\]><\/Encrypt>\n<MsgSignature><!\[CDATA\[[0-9a-f]{40}\]\]><\/MsgSignature>\n<TimeStamp>1700000100<\/TimeStamp>\n<Nonce>/);
    const env = parseEnvelope(body);
    expect(env.TimeStamp).toBe('1700000100');
    expect(env.Nonce).toBe('n]]>1');
    expect(verifyMsgSignature({ token: 'tok', timestamp: env.TimeStamp, nonce: env.Nonce, encrypt: env.Encrypt, msgSignature: env.MsgSignature })).toBe(true);
    expect(decryptMessage({ key, appId, encrypt: env.Encrypt })).toBe(plaintextXml);
  });

  it.each([
    ['fractional seconds', 1700000100.5, '1'],
    ['negative', -1, '1'],
    ['non-digit string', '17e8', '1'],
    ['empty nonce', 1700000100, ''],
    ['nonce with a control character', 1700000100, 'a\u0001'],
  ])('rejects %s (RangeError)', (_what, timestamp, nonce) => {
    expect(() => encryptReply({ key, appId, token: 't', plaintextXml: '<xml/>', timestamp, nonce })).toThrow(RangeError);
  });
});

describe('Official Account GET echostr (README §4.6)', () => {
  it('is echoed verbatim in every mode; this module offers no echostr decryption (that is WeCom)', () => {
    const get = vectors.signature.find((s) => s.echostr !== undefined)!;
    expect(get.expected_response_body).toBe(get.echostr);
    expect(Object.keys(cryptoModule).filter((name) => /echo|verifyurl/i.test(name))).toEqual([]);
    expect(vectors.wecom_contrast).toHaveLength(2); // out of scope, deliberately not run
  });
});

// Last in the file (tests in a file run in order): a vector silently skipped (filtered out, early
// return, new kind) fails here. Under `vitest -t …` this test is filtered out too.
describe('coverage of vectors.json', () => {
  it('ran every msg_signature, encryption and non-plain-signature negative vector to its end', () => {
    expect([...covered.msg_signature].sort()).toEqual(vectors.msg_signature.map((v) => v.id).sort());
    expect([...covered.encryption].sort()).toEqual(vectors.encryption.map((v) => v.id).sort());
    expect(covered.negative.size + negSignature.length).toBe(vectors.negative.length);
  });
});
