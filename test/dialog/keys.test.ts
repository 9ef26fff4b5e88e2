/**
 * Storage keys (src/dialog/store/keys.ts): one key per (account, openid), never shared, always in
 * the slot of its hash tag (issue 10, item 6).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterKeySlot, stateKeyString } from '../../src/dialog/store/keys.js';

describe('stateKeyString', () => {
  it('is prefix{account:openid}', () => {
    expect(stateKeyString('wechat-dialog:state:', { account: 'gh_123456789abc', openid: 'oABCD1234' })).toBe('wechat-dialog:state:{gh_123456789abc:oABCD1234}');
    expect(stateKeyString('', { account: 'gh_a', openid: 'o-_9' })).toBe('{gh_a:o-_9}');
  });

  it.each([
    ['an openid with a colon', { account: 'gh_a', openid: 'oX:oY' }, 'openid'],
    ['an account with a colon', { account: 'gh_a:oX', openid: 'oY' }, 'account'],
    ['an openid with an opening brace', { account: 'gh_a', openid: 'o{X' }, 'openid'],
    ['an openid with a closing brace', { account: 'gh_a', openid: 'oX}' }, 'openid'],
    ['an account with braces', { account: '{gh_a}', openid: 'oX' }, 'account'],
  ])('refuses %s with a RangeError naming it', (_name, key, part) => {
    expect(() => stateKeyString('p:', key)).toThrow(RangeError);
    expect(() => stateKeyString('p:', key)).toThrow(new RegExp(`^the ${part} `));
  });

  it('the pairs that used to share a key (gh_a + oX:oY, gh_a:oX + oY) cannot both have one', () => {
    const keys: string[] = [];
    for (const key of [
      { account: 'gh_a', openid: 'oX:oY' },
      { account: 'gh_a:oX', openid: 'oY' },
    ]) {
      try {
        keys.push(stateKeyString('p:', key));
      } catch (err) {
        expect(err).toBeInstanceOf(RangeError);
      }
    }
    expect(keys).toEqual([]);
  });

  it('distinct (account, openid) pairs of WeChat ids get distinct keys, hashed on the whole account:openid', () => {
    const id = fc.string({ unit: fc.constantFrom(...'ab_-0Z'), minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(id, id, id, id, (a1, o1, a2, o2) => {
        const k1 = stateKeyString('p:', { account: a1, openid: o1 });
        const k2 = stateKeyString('p:', { account: a2, openid: o2 });
        expect(k1 === k2).toBe(a1 === a2 && o1 === o2);
        expect(clusterKeySlot(k1)).toBe(clusterKeySlot(`{${a1}:${o1}}`));
      }),
      { seed: 20_250_605, numRuns: 2_000 },
    );
  });
});
