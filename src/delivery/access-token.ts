/**
 * One `access_token` for every process: kept in a shared cache (Redis, or memory for one process)
 * and fetched by one process at a time, under a lock (design.md, "WeChat's clock"; protocol
 * README §5.2: 中控服务器).
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { scrubbedError, withoutSecrets } from '../logging.js';
import { WeChatApiError, type AccessToken } from '../wechat/customer-service.js';

/** Where processes share the token, and the lock that lets one of them fetch it. */
export interface AccessTokenCache {
  /** The shared token, `undefined` when there is none (or it expired). */
  get(): Promise<string | undefined>;
  /** Stores `token` for `ttlSeconds` **seconds**. */
  set(token: string, ttlSeconds: number): Promise<void>;
  /** Forgets the token if it is still `token` (a newer one another process stored is kept). */
  deleteIf(token: string): Promise<void>;
  /** Takes the refresh lock for `ttlMs` **milliseconds**; `false` when another holder has it. `owner` identifies the holder. */
  lock(owner: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock if `owner` still holds it. */
  unlock(owner: string): Promise<void>;
}

/** An {@link AccessTokenCache} in this process only: right for a single process (no `REDIS_URL`). */
export class MemoryAccessTokenCache implements AccessTokenCache {
  private token: { value: string; expiresAt: number } | undefined;
  private holder: { owner: string; until: number } | undefined;
  constructor(private readonly now: () => number = Date.now) {}

  async get(): Promise<string | undefined> {
    return this.token !== undefined && this.token.expiresAt > this.now() ? this.token.value : undefined;
  }
  async set(token: string, ttlSeconds: number): Promise<void> {
    this.token = { value: token, expiresAt: this.now() + ttlSeconds * 1000 };
  }
  async deleteIf(token: string): Promise<void> {
    if (this.token?.value === token) this.token = undefined;
  }
  async lock(owner: string, ttlMs: number): Promise<boolean> {
    if (this.holder !== undefined && this.holder.until > this.now()) return false;
    this.holder = { owner, until: this.now() + ttlMs };
    return true;
  }
  async unlock(owner: string): Promise<void> {
    if (this.holder?.owner === owner) this.holder = undefined;
  }
}

/**
 * Redis failed a command of the {@link RedisAccessTokenCache} (refused it: OOM, READONLY after a
 * failover, MISCONF, NOAUTH; or did not answer in time). `message` names the operation and Redis's
 * answer. Unlike the ioredis error it replaces, it never carries the command's arguments (the
 * access_token): `cause` is a copy of that error with only its name, message and stack.
 */
export class AccessTokenCacheError extends Error {
  override readonly name = 'AccessTokenCacheError';
  readonly code = 'ACCESS_TOKEN_CACHE_UNAVAILABLE';
  constructor(
    /** What was being done, e.g. `SET` (store the token). */
    readonly operation: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `DEL key` only when it still holds `ARGV[1]`. */
const DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/**
 * An {@link AccessTokenCache} in Redis, shared by every process: the token under
 * `<prefix>access_token:<appId>` with an expiry (`SET … EX`), the lock under `….lock`
 * (`SET … NX PX`), both deleted only by compare-and-delete.
 */
export class RedisAccessTokenCache implements AccessTokenCache {
  private readonly key: string;
  private readonly lockKey: string;
  constructor(
    private readonly redis: Redis | Cluster,
    options: { readonly keyPrefix: string; readonly appId: string },
  ) {
    this.key = `${options.keyPrefix}access_token:${options.appId}`;
    this.lockKey = `${this.key}.lock`;
  }

  /** @throws {AccessTokenCacheError} when Redis fails the command. */
  async get(): Promise<string | undefined> {
    return (await this.run('GET (read the token)', [], () => this.redis.get(this.key))) ?? undefined;
  }
  /** @throws {AccessTokenCacheError} when Redis fails the command; it never holds `token`. */
  async set(token: string, ttlSeconds: number): Promise<void> {
    await this.run('SET (store the token)', [token], () => this.redis.set(this.key, token, 'EX', ttlSeconds));
  }
  /** @throws {AccessTokenCacheError} when Redis fails the command; it never holds `token`. */
  async deleteIf(token: string): Promise<void> {
    await this.run('EVAL (forget the token)', [token], () => this.redis.eval(DELETE_IF_EQUAL, 1, this.key, token));
  }
  /** @throws {AccessTokenCacheError} when Redis fails the command. */
  async lock(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.run('SET NX (take the refresh lock)', [], () => this.redis.set(this.lockKey, owner, 'PX', ttlMs, 'NX'))) === 'OK';
  }
  /** @throws {AccessTokenCacheError} when Redis fails the command. */
  async unlock(owner: string): Promise<void> {
    await this.run('EVAL (release the refresh lock)', [], () => this.redis.eval(DELETE_IF_EQUAL, 1, this.lockKey, owner));
  }

  /**
   * Runs one ioredis command; a failure becomes an {@link AccessTokenCacheError}. ioredis attaches
   * the command and its arguments (`SET <key> <token> EX …`) to reply errors, so its error is
   * never passed on: only its message (with `secrets` taken out, should Redis quote one).
   */
  private async run<T>(operation: string, secrets: readonly string[], command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      const why = withoutSecrets(err instanceof Error ? err.message : String(err), secrets);
      throw new AccessTokenCacheError(operation, `access_token cache: Redis failed ${operation} on ${this.key}: ${why}`, {
        cause: scrubbedError(err, secrets),
      });
    }
  }
}

/** Options of {@link SharedAccessToken}. */
export interface SharedAccessTokenOptions {
  readonly cache: AccessTokenCache;
  /** Fetches a new token from WeChat (e.g. `fetchStableAccessToken`). */
  readonly fetchToken: () => Promise<AccessToken>;
  /** Stop using a token this many **seconds** before WeChat says it expires. @default 300 */
  readonly marginSeconds?: number;
  /** How long one process may hold the refresh lock, **milliseconds**. @default 10000 */
  readonly lockMs?: number;
  /** How long to wait for another process's refresh before giving up, **milliseconds**. @default 10000 */
  readonly waitMs?: number;
  /** Pause between looks at the cache while another process refreshes, **milliseconds**. @default 100 */
  readonly pollMs?: number;
}

/**
 * The access_token every process shares. `get()` returns the cached token, or fetches one: at most
 * one fetch at a time in this process (single-flight) and, through the cache's lock, across
 * processes; the others wait for the token it stores.
 */
export class SharedAccessToken {
  private inflight: Promise<string> | undefined;
  private readonly owner = randomUUID();
  private readonly marginSeconds: number;
  private readonly lockMs: number;
  private readonly waitMs: number;
  private readonly pollMs: number;

  constructor(private readonly options: SharedAccessTokenOptions) {
    this.marginSeconds = options.marginSeconds ?? 300;
    this.lockMs = options.lockMs ?? 10_000;
    this.waitMs = options.waitMs ?? 10_000;
    this.pollMs = options.pollMs ?? 100;
  }

  /**
   * A valid token.
   * @throws {WeChatApiError} when fetching fails, or (`transient`) when another process holds the
   *   lock for longer than `waitMs` without storing a token.
   * @throws {AccessTokenCacheError} (from a {@link RedisAccessTokenCache}) when Redis fails.
   */
  async get(): Promise<string> {
    const cached = await this.options.cache.get();
    if (cached !== undefined) return cached;
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /**
   * Forgets `token` after WeChat refused it (errcode 40001, 40014, 42001); the next `get()` fetches anew.
   * @throws {AccessTokenCacheError} (from a {@link RedisAccessTokenCache}) when Redis fails.
   */
  async invalidate(token: string): Promise<void> {
    await this.options.cache.deleteIf(token);
  }

  private async refresh(): Promise<string> {
    const { cache } = this.options;
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      if (await cache.lock(this.owner, this.lockMs)) {
        try {
          const stored = await cache.get(); // another process may have just stored one
          if (stored !== undefined) return stored;
          const { accessToken, expiresIn } = await this.options.fetchToken();
          await cache.set(accessToken, Math.max(1, expiresIn - this.marginSeconds));
          return accessToken;
        } finally {
          await cache.unlock(this.owner);
        }
      }
      if (Date.now() >= deadline) {
        throw new WeChatApiError('another process is fetching the access_token and has not stored it in time', 'transient');
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
      const stored = await cache.get();
      if (stored !== undefined) return stored;
    }
  }
}
