/**
 * A {@link DialogStore} on Redis (ioredis), shared by every process of the server.
 *
 * One string key per (account, openid) — see {@link stateKeyString} — holding the JSON of
 * {@link encodeState}, with the state's time to live as the key's expiry.
 *
 * @module
 */
import { Redis } from 'ioredis';
import { stateKeyString } from './keys.js';
import { decodeState, encodeState, snapshotOf } from './state-codec.js';
import { type CommitResult, type DialogState, type DialogStore, type Snapshot, type StateKey, StoreUnavailableError } from './store.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * The client to use, e.g. from {@link createRedisClient} (or an `ioredis-mock` instance in tests).
   * The store owns it from now on: `close()` quits it.
   */
  readonly redis: Redis;
  /**
   * Prepended to every key (see {@link stateKeyString}), e.g. `wechat-dialog:state:`; it keeps
   * applications and environments that share one Redis apart. Required: there is no default.
   */
  readonly keyPrefix: string;
}

/** How long `close()` waits for `QUIT` to be answered before it drops the connection, in ms. */
const QUIT_TIMEOUT_MS = 2_000;

/**
 * ioredis statuses in which the client has no usable connection but is (re)connecting: a write waits
 * for `ready` instead of entering the offline queue (see {@link RedisStore.save}). `wait` (a lazy
 * client never used) is not one of them: only a command makes it connect.
 */
const CONNECTING: ReadonlySet<string> = new Set(['connecting', 'connect', 'reconnecting', 'close']);

/**
 * Compare-and-set of one state key (see {@link RedisStore.commit}):
 * KEYS[1] the state key; ARGV[1] the value the caller read ('' = absent); ARGV[2] the new value
 * ('' = delete); ARGV[3] the TTL in seconds. Returns 1 when written; when the value had changed,
 * the value stored instead ('' when none), so the caller can plan again without another GET.
 */
const COMMIT_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return {current} end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
`;

/** The client with the commit script defined on it (ioredis `defineCommand`: EVALSHA, falling back to EVAL). */
type ScriptedRedis = Redis & {
  dialogCommit(key: string, expected: string, next: string, ttlSeconds: number): Promise<number | [string]>;
};

/** How long a write waits for the connection when the client has no `commandTimeout`, in ms. */
const DEFAULT_WRITE_WAIT_MS = 1_000;

/**
 * A {@link DialogStore} on Redis: `load` is `GET`, `save` is one `SET key value EX ttlSeconds`
 * (a state is written whole or not at all, with its expiry), `delete` is `DEL`.
 *
 * Every Redis failure (refused connection, timeout, error reply) surfaces as
 * {@link StoreUnavailableError} with the ioredis error as `cause`. How long a call may take is the
 * client's business: build it with {@link createRedisClient} so that calls fail within about a second
 * while Redis is down.
 */
export class RedisStore implements DialogStore {
  readonly #redis: ScriptedRedis;
  readonly #keyPrefix: string;

  /** @param options - the client (the store owns it from now on) and the key prefix; nothing is sent yet. */
  constructor(options: RedisStoreOptions) {
    options.redis.defineCommand('dialogCommit', { numberOfKeys: 1, lua: COMMIT_SCRIPT });
    this.#redis = options.redis as ScriptedRedis;
    this.#keyPrefix = options.keyPrefix;
  }

  /** @inheritDoc `GET`: the token is the stored value itself. */
  async read(key: StateKey): Promise<Snapshot> {
    const raw = await this.#run('GET', () => this.#redis.get(this.#key(key)));
    return snapshotOf(raw ?? '');
  }

  /**
   * @inheritDoc
   * One Lua script (one round trip): compares the stored value with the one `read` returned and, if
   * equal, `SET … EX ttlSeconds` (or `DEL`). Redis runs a script atomically, so two processes can
   * never both commit over the same value. Sent only on a ready connection, like `save`.
   * @throws {RangeError} when `ttlSeconds` is not a positive integer.
   */
  async commit(key: StateKey, expected: Snapshot, next: DialogState | undefined, ttlSeconds: number): Promise<CommitResult> {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new RangeError(`ttlSeconds must be a positive integer number of seconds, got ${ttlSeconds}`);
    }
    const value = next === undefined ? '' : encodeState(next);
    await this.#whenReadyForWrite('EVALSHA');
    const reply = await this.#run('EVALSHA', () => this.#redis.dialogCommit(this.#key(key), expected.token, value, ttlSeconds));
    if (reply === 1) return { committed: true, snapshot: snapshotOf(value) };
    return { committed: false, snapshot: snapshotOf(Array.isArray(reply) ? String(reply[0] ?? '') : '') };
  }

  /**
   * @inheritDoc
   * A stored value that {@link decodeState} rejects (corrupt, or written in another format) is
   * treated as absent; the next `save` overwrites it.
   */
  async load(key: StateKey): Promise<DialogState | undefined> {
    const raw = await this.#run('GET', () => this.#redis.get(this.#key(key)));
    return raw === null ? undefined : decodeState(raw);
  }

  /**
   * @inheritDoc
   * The `SET` is only ever sent on a ready connection: while the client is (re)connecting, `save`
   * waits for it for at most the client's `commandTimeout` (1000 ms if unset) and then fails with
   * {@link StoreUnavailableError}. It never enters ioredis's offline queue, where a `SET` that had
   * already failed for its caller would still be sent when Redis returns, overwriting newer state.
   * @throws {RangeError} when `ttlSeconds` is not a positive integer.
   */
  async save(key: StateKey, state: DialogState, ttlSeconds: number): Promise<void> {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new RangeError(`ttlSeconds must be a positive integer number of seconds, got ${ttlSeconds}`);
    }
    const value = encodeState(state);
    await this.#whenReadyForWrite('SET');
    await this.#run('SET', () => this.#redis.set(this.#key(key), value, 'EX', ttlSeconds));
  }

  /**
   * @inheritDoc
   * Like `save`, the `DEL` is only sent on a ready connection.
   */
  async delete(key: StateKey): Promise<void> {
    await this.#whenReadyForWrite('DEL');
    await this.#run('DEL', () => this.#redis.del(this.#key(key)));
  }

  /**
   * Sends `QUIT`; if that fails or is not answered within 2 s, drops the connection. Never throws.
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS, 'timeout');
    });
    const quit = this.#redis.quit().then(
      () => 'quit' as const,
      () => 'failed' as const,
    );
    const outcome = await Promise.race([quit, timedOut]);
    clearTimeout(timer);
    if (outcome !== 'quit') this.#redis.disconnect();
  }

  #key(key: StateKey): string {
    return stateKeyString(this.#keyPrefix, key);
  }

  /** Resolves once the client is ready for a write; rejects if it is not within the wait. */
  async #whenReadyForWrite(command: string): Promise<void> {
    const redis = this.#redis;
    const notSent = (why: string) =>
      new StoreUnavailableError(
        `Redis is not connected (${why}), so ${command} was not sent: check REDIS_URL and that Redis is running`,
      );
    if (redis.status === 'end') throw notSent('the client was closed');
    if (!CONNECTING.has(redis.status)) return;
    const waitMs = redis.options.commandTimeout ?? DEFAULT_WRITE_WAIT_MS;
    await new Promise<void>((resolve, reject) => {
      const finish = (err?: Error) => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => finish();
      const onEnd = () => finish(notSent('the client was closed'));
      const timer = setTimeout(() => finish(notSent(`still "${redis.status}" after ${waitMs} ms`)), waitMs);
      redis.on('ready', onReady);
      redis.on('end', onEnd);
    });
  }

  async #run<T>(command: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      throw new StoreUnavailableError(this.#describeFailure(command, err), { cause: err });
    }
  }

  #describeFailure(command: string, err: unknown): string {
    const detail = err instanceof Error ? err.message : String(err);
    if (err instanceof Error && err.name === 'ReplyError') {
      return `Redis answered ${command} with an error (${detail}): check that REDIS_URL points at a writable primary with memory to spare`;
    }
    const timeoutMs = this.#redis.options?.commandTimeout;
    const within = typeof timeoutMs === 'number' ? ` within ${timeoutMs} ms` : '';
    return `Redis did not answer ${command}${within} (${detail}): check REDIS_URL and that Redis is running`;
  }
}

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions {
  /**
   * How long one command may wait for its reply, in **milliseconds**, including time spent queued
   * while the client (re)connects; then it fails with "Command timed out". Keep it well under
   * WeChat's 5 s reply deadline: a turn makes one or two commands.
   * @default 1000
   */
  readonly commandTimeoutMs?: number;
  /**
   * How long one attempt to open the TCP connection may take, in **milliseconds**, before it is
   * abandoned and retried.
   * @default 2000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Upper bound of the delay between reconnection attempts, in **milliseconds**. The delay doubles
   * from 100 ms up to this. The client never stops trying.
   * @default 2000
   */
  readonly maxReconnectDelayMs?: number;
  /**
   * Called with every `'error'` event of the client (a refused connection, a reset socket, ...), for
   * logging. While Redis is down this fires on every reconnection attempt. Errors are swallowed
   * when absent; either way they never crash the process.
   * @default undefined
   */
  readonly onError?: (err: Error) => void;
}

/**
 * Builds an ioredis client for a webhook that must answer within WeChat's 5 s:
 *
 * - every command fails after `commandTimeoutMs` (default 1000 ms) rather than hanging, also while
 *   Redis is unreachable (the offline queue is kept, so commands sent during startup or a short
 *   blip wait for the connection, but never longer than that);
 * - a command is retried over at most one reconnection (`maxRetriesPerRequest: 1`), and commands
 *   that were in flight when a connection dropped are not resent later (they have already failed
 *   for their caller);
 * - the client reconnects by itself, forever, with a delay doubling from 100 ms up to
 *   `maxReconnectDelayMs`;
 * - an `'error'` listener is always attached (forwarding to `onError`), so an unreachable Redis
 *   never becomes an unhandled `'error'` event.
 *
 * The client connects at once; a database number in the URL (`redis://host:6379/15`) is selected.
 *
 * @param url - `redis://[[user]:password@]host[:port][/db]` or `rediss://…` for TLS.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): Redis {
  const { commandTimeoutMs = 1000, connectTimeoutMs = 2000, maxReconnectDelayMs = 2000, onError } = options;
  const redis = new Redis(url, {
    commandTimeout: commandTimeoutMs,
    connectTimeout: connectTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 16), maxReconnectDelayMs),
  });
  redis.on('error', (err: Error) => onError?.(err));
  return redis;
}
