/**
 * Storage key names for dialog states.
 *
 * @module
 */
import type { StateKey } from './store.js';

/** Characters that would make two (account, openid) pairs share a key, or move a key's hash tag. */
const KEY_BREAKING = /[{}:]/;

/**
 * The storage key of one user's dialog state: `${prefix}{${account}:${openid}}`,
 * e.g. `wechat-dialog:state:{gh_123456789abc:oABCD1234}`.
 *
 * The braces are a Redis Cluster **hash tag**: Cluster hashes only the part between the first `{`
 * and the next `}`, so every key built for the same (account, openid) — this one and any other key
 * a store adds for the same user's dialog, whatever its prefix — lands in the same slot, and a Lua
 * script or MULTI may touch them together. On a single Redis the braces are ordinary characters.
 *
 * Account ids (`gh_…`) and openids are made of letters, digits, `_` and `-` (protocol README §2.2;
 * `parseMessage` refuses any other `ToUserName`/`FromUserName` with `INVALID_ID`), so the key is
 * unambiguous and the tag is exactly `account:openid`. As a second guard, an account or openid
 * holding `{`, `}` or `:` is refused here: `gh_a` + `oX:oY` and `gh_a:oX` + `oY` would share one
 * key, and a brace would change which part Redis Cluster hashes (another slot than the user's other
 * keys).
 *
 * @param prefix - prepended verbatim, e.g. `wechat-dialog:state:`; it separates applications or
 *   environments sharing one Redis. Should not contain `{`.
 * @param key - whose state.
 * @throws {RangeError} if `key.account` or `key.openid` contains `{`, `}` or `:`.
 */
export function stateKeyString(prefix: string, key: StateKey): string {
  for (const part of ['account', 'openid'] as const) {
    const value = key[part];
    if (KEY_BREAKING.test(value)) {
      throw new RangeError(`the ${part} ${JSON.stringify(value.slice(0, 40))} contains "{", "}" or ":": it cannot be part of a state key`);
    }
  }
  return `${prefix}{${key.account}:${key.openid}}`;
}


/** Redis Cluster has 16384 hash slots. */
const CLUSTER_SLOTS = 16_384;

/**
 * The Redis Cluster hash slot of `key` (0 to 16383), as `CLUSTER KEYSLOT` computes it: CRC16
 * (XMODEM) of the key's UTF-8 bytes modulo 16384, or of its hash tag alone — the part between the
 * first `{` and the next `}`, when that part is not empty. For a key of {@link stateKeyString} that
 * is `account:openid`, whatever the prefix.
 *
 * @param key - a storage key, e.g. `wechat-dialog:{gh_123456789abc:oABCD1234}`.
 */
export function clusterKeySlot(key: string): number {
  let hashed = key;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(hashed, 'utf8')) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc % CLUSTER_SLOTS;
}
