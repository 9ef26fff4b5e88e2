import { describe, expect, it } from 'vitest';
import { computeSignature, verifySignature } from '../../src/wechat/signature.js';
import { protocolVectors, type NegativeVector, type SignatureVector } from '../support/shared.js';

const vectors = protocolVectors();

const positive = vectors.signature;
const negative = vectors.negative.filter(
  (v): v is NegativeVector & SignatureVector => v.kind === 'signature' && v.expect_error === 'signature_mismatch',
);

describe('vectors.json', () => {
  it('has the 6 positive and 3 negative plain-signature vectors the README lists', () => {
    expect(positive).toHaveLength(6);
    expect(negative.map((v) => v.id).sort()).toEqual([
      'neg-signature-one-char-off',
      'neg-signature-unsorted-concat',
      'neg-signature-wrong-token',
    ]);
  });
});

describe('computeSignature / verifySignature: positive vectors', () => {
  it.each(positive.map((v) => [v.id, v] as const))('%s', (_id, v) => {
    expect(computeSignature(v.token, v.timestamp, v.nonce)).toBe(v.signature);
    expect(verifySignature(v)).toBe(true);
  });

  it('official worked example: Token AAAAA (接入概述)', () => {
    expect(computeSignature('AAAAA', '1714036504', '1514711492')).toBe('f464b24fc39322e44b38aa78f5edd27bd1441696');
  });

  it('does not depend on argument order (the values are sorted)', () => {
    const v = positive[0]!;
    expect(computeSignature(v.nonce, v.token, v.timestamp)).toBe(v.signature);
  });
});

describe('verifySignature: negative vectors', () => {
  it.each(negative.map((v) => [v.id, v] as const))('%s → false', (_id, v) => {
    expect(verifySignature(v)).toBe(false);
  });
});

describe('verifySignature: missing or malformed parameters', () => {
  const good = { token: 'AAAAA', timestamp: '1714036504', nonce: '1514711492', signature: 'f464b24fc39322e44b38aa78f5edd27bd1441696' };

  it('accepts the complete set', () => {
    expect(verifySignature(good)).toBe(true);
  });

  it.each(['signature', 'timestamp', 'nonce'] as const)('missing %s → false', (key) => {
    const { [key]: _dropped, ...rest } = good;
    expect(verifySignature(rest)).toBe(false);
    expect(verifySignature({ ...good, [key]: undefined })).toBe(false);
  });

  it.each(['signature', 'timestamp', 'nonce', 'token'] as const)('empty %s → false', (key) => {
    expect(verifySignature({ ...good, [key]: '' })).toBe(false);
  });

  it('an empty token never verifies, even with the matching hash', () => {
    const signature = computeSignature('', good.timestamp, good.nonce);
    expect(verifySignature({ ...good, token: '', signature })).toBe(false);
  });

  it.each([
    ['shorter', good.signature.slice(0, 39)],
    ['longer', `${good.signature}0`],
    ['much longer', good.signature.repeat(10)],
    ['one character', 'f'],
    ['multi-byte characters', 'é'.repeat(40)],
  ])('a %s signature → false without throwing', (_label, signature) => {
    expect(() => verifySignature({ ...good, signature })).not.toThrow();
    expect(verifySignature({ ...good, signature })).toBe(false);
  });

  it('uppercase hex is not accepted (WeChat sends lowercase)', () => {
    expect(verifySignature({ ...good, signature: good.signature.toUpperCase() })).toBe(false);
  });

  it('non-string values (e.g. a repeated query key parsed as an array) → false without throwing', () => {
    const signature = [good.signature, good.signature] as unknown as string;
    expect(verifySignature({ ...good, signature })).toBe(false);
    expect(verifySignature({ ...good, nonce: 1514711492 as unknown as string })).toBe(false);
  });
});
