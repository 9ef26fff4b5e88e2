/**
 * The push API's keys: `PUSH_API_KEYS` (`orders:3f9a…,ci:8b1c…`) names each calling service and
 * its bearer key; a request is authenticated by `Authorization: Bearer <key>`, compared in
 * constant time against every key (RFC 6750 for the header; Hono's basic-auth and grammY's
 * `compareSecretToken` for the comparison).
 *
 * No error message, log line or return value ever holds a key: errors name the entry by its
 * position and service name.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** A calling service's name: 1 to 64 letters, digits, `_`, `.` or `-` (it appears in logs and push statuses). */
export const SERVICE_NAME_FORMAT = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * A key: 16 to 256 printable ASCII characters, without spaces or commas (the list's separator).
 * Generate one with `openssl rand -base64 32` (44 characters).
 */
export const API_KEY_FORMAT = /^[\x21-\x2b\x2d-\x7e]{16,256}$/;

/** One service and its key. */
export interface ApiKey {
  /** The calling service's name ({@link SERVICE_NAME_FORMAT}). */
  readonly service: string;
  /** Its bearer key ({@link API_KEY_FORMAT}). Never log it. */
  readonly key: string;
}

/** Thrown by {@link parseApiKeys}; the message names the entry (position and service), never a key. */
export class ApiKeysError extends Error {
  override readonly name = 'ApiKeysError';
  readonly code = 'INVALID_API_KEYS';
  constructor(
    message: string,
    /** The 1-based position of the entry at fault in the list, when one is. */
    readonly entry?: number,
  ) {
    super(message);
  }
}

/**
 * Parses `PUSH_API_KEYS`: comma-separated `name:key` pairs (`orders:Kq3…,ci:Zt9…`), split at the
 * first `:` of each (a key may hold `:`), spaces around entries ignored, empty entries (a trailing
 * comma) skipped.
 * @throws {ApiKeysError} for an empty list, an entry without `:`, a name not in
 *   {@link SERVICE_NAME_FORMAT}, a key not in {@link API_KEY_FORMAT}, or a name or key used twice.
 *   The message never holds a key.
 */
export function parseApiKeys(text: string): readonly ApiKey[] {
  const keys: ApiKey[] = [];
  const services = new Set<string>();
  const secrets = new Map<string, string>();
  text.split(',').forEach((raw, index) => {
    const entry = raw.trim();
    if (entry === '') return;
    const position = index + 1;
    const colon = entry.indexOf(':');
    if (colon === -1) throw new ApiKeysError(`entry ${position} is not name:key (the name of the calling service, a colon, its key)`, position);
    const service = entry.slice(0, colon);
    const key = entry.slice(colon + 1);
    if (!SERVICE_NAME_FORMAT.test(service)) {
      throw new ApiKeysError(`entry ${position}: the service name must be 1 to 64 letters, digits, _ . or -`, position);
    }
    if (!API_KEY_FORMAT.test(key)) {
      throw new ApiKeysError(
        `entry ${position} (${service}): the key must be 16 to 256 printable characters without spaces or commas, e.g. from openssl rand -base64 32`,
        position,
      );
    }
    if (services.has(service)) throw new ApiKeysError(`entry ${position}: the service name ${service} is used twice; give each service one key`, position);
    const other = secrets.get(key);
    if (other !== undefined) {
      throw new ApiKeysError(`entry ${position} (${service}) has the same key as ${other}: give each service its own key`, position);
    }
    services.add(service);
    secrets.set(key, service);
    keys.push({ service, key });
  });
  if (keys.length === 0) throw new ApiKeysError('has no name:key entry (e.g. orders:<key>,ci:<key>)');
  return keys;
}

/** Authenticates an `Authorization` header value: the service whose key it carries, or `undefined`. */
export type Authenticate = (authorization: string | undefined) => string | undefined;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * An {@link Authenticate} over `keys`. The presented key's SHA-256 is compared with every key's
 * SHA-256 by `crypto.timingSafeEqual`, all of them, without stopping at a match: the time taken
 * depends on neither which key matched nor how much of one did (comparing digests also hides the
 * keys' lengths). The scheme `Bearer` is matched case-insensitively (RFC 6750 §2.1, RFC 9110 §11.1).
 */
export function createAuthenticator(keys: readonly ApiKey[]): Authenticate {
  const digests = keys.map(({ service, key }) => ({ service, digest: sha256(key) }));
  return (authorization) => {
    const match = authorization === undefined ? null : /^Bearer +(\S+) *$/i.exec(authorization);
    if (match === null) return undefined;
    const presented = sha256(match[1] as string);
    let found: string | undefined;
    for (const { service, digest } of digests) {
      // No early exit: every key is compared whatever the outcome.
      if (timingSafeEqual(presented, digest) && found === undefined) found = service;
    }
    return found;
  };
}
