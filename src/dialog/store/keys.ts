/**
 * Storage key names for dialog states.
 *
 * @module
 */
import type { StateKey } from './store.js';

/**
 * The storage key of one user's dialog state: `${prefix}{${account}:${openid}}`,
 * e.g. `wechat-dialog:state:{gh_123456789abc:oABCD1234}`.
 *
 * The braces are a Redis Cluster **hash tag**: Cluster hashes only the part between the first `{`
 * and the next `}`, so every key built for the same (account, openid) — this one and any other key
 * a store adds for the same user's dialog, whatever its prefix — lands in the same slot, and a Lua
 * script or MULTI may touch them together. On a single Redis the braces are ordinary characters.
 *
 * Account ids (`gh_…`) and openids are made of letters, digits, `_` and `-`, so the key is
 * unambiguous and the tag is exactly `account:openid`.
 *
 * @param prefix - prepended verbatim, e.g. `wechat-dialog:state:`; it separates applications or
 *   environments sharing one Redis. Should not contain `{`.
 * @param key - whose state.
 */
export function stateKeyString(prefix: string, key: StateKey): string {
  return `${prefix}{${key.account}:${key.openid}}`;
}
