/**
 * A {@link DialogStore} on Redis (ioredis), shared by every process of the server: one Redis
 * ({@link createRedisClient}) or a Redis Cluster ({@link createRedisClusterClient}).
 *
 * One string key per (account, openid) — see {@link stateKeyString} — holding the JSON of
 * {@link encodeState}, with the state's time to live as the key's expiry. Every command touches
 * that one key, and the key carries a hash tag, so on a cluster each command goes to one node.
 *
 * @module
 */
import { Cluster, Redis } from 'ioredis';
import { clusterKeySlot, stateKeyString } from './keys.js';
import { decodeState, encodeState, snapshotOf } from './state-codec.js';
import {
  assertTtlSeconds,
  type CommitResult,
  type DialogState,
  type DialogStore,
  type Snapshot,
  type StateKey,
  StoreUnavailableError,
} from './store.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * The client to use: a `Redis` from {@link createRedisClient} (or an `ioredis-mock` instance in
   * tests), or a `Cluster` from {@link createRedisClusterClient}. The store owns it from now on:
   * `close()` quits it.
   */
  readonly redis: Redis | Cluster;
  /**
   * Prepended to every key (see {@link stateKeyString}), e.g. `wechat-dialog:state:`; it keeps
   * applications and environments that share one Redis apart. Required: there is no default.
   */
  readonly keyPrefix: string;
}

/** How long `close()` waits for `QUIT` to be answered before it drops the connection, in ms. */
const QUIT_TIMEOUT_MS = 2_000;

/**
 * ioredis statuses (of a `Redis` or a `Cluster`) in which the client has no usable connection but is
 * (re)connecting: a write waits for `ready` instead of entering the offline queue (see
 * {@link RedisStore.save}). `wait` (a lazy client never used) is not one of them: only a command
 * makes it connect.
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

/** The commit script as ioredis `defineCommand` adds it to a client (EVALSHA, falling back to EVAL). */
interface CommitCommand {
  dialogCommit(key: string, expected: string, next: string, ttlSeconds: number): Promise<number | [string]>;
}

/** The client with the commit script defined on it. */
type ScriptedClient = (Redis & CommitCommand) | (Cluster & CommitCommand);

/**
 * The client's `commandTimeout` in ms, if it has one. A `Redis` has it in `options`; a `Cluster`
 * passes `options.redisOptions` to the connection of each node, so it is there.
 */
function commandTimeoutOf(client: Redis | Cluster): number | undefined {
  // `options` is optional here only for test doubles (ioredis-mock) that may lack it.
  const timeout = client instanceof Cluster ? client.options.redisOptions?.commandTimeout : client.options?.commandTimeout;
  return typeof timeout === 'number' ? timeout : undefined;
}

/** The connection to the master that holds `storageKey`, per the cluster's slot map; `undefined` when unknown. */
function masterFor(cluster: Cluster, storageKey: string): Redis | undefined {
  const owner = cluster.slots[clusterKeySlot(storageKey)]?.[0];
  if (owner === undefined) return undefined;
  return cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === owner);
}

/** The pending {@link readyOrEnd} of each client or node connection. */
const nextReadyOrEnd = new WeakMap<Redis | Cluster, Promise<'ready' | 'end'>>();

/**
 * Resolves with the next `ready` or `end` event of `emitter`. One pair of listeners is shared by
 * every call waiting at the time (however many requests arrive while Redis is away), not one per call.
 */
function readyOrEnd(emitter: Redis | Cluster): Promise<'ready' | 'end'> {
  let pending = nextReadyOrEnd.get(emitter);
  if (pending === undefined) {
    pending = new Promise((resolve) => {
      const finish = (outcome: 'ready' | 'end') => {
        emitter.off('ready', onReady);
        emitter.off('end', onEnd);
        nextReadyOrEnd.delete(emitter);
        resolve(outcome);
      };
      const onReady = () => finish('ready');
      const onEnd = () => finish('end');
      emitter.on('ready', onReady);
      emitter.on('end', onEnd);
    });
    nextReadyOrEnd.set(emitter, pending);
  }
  return pending;
}

/**
 * How long a commit whose outcome is unknown (a timeout, a dropped connection) keeps asking Redis
 * what happened, in **milliseconds**: with the 1 s command timeout of {@link createRedisClient}
 * the turn still answers well within WeChat's 5 s.
 */
const SETTLE_WAIT_MS = 2_000;

/** An error Redis answered (the command ran and failed): nothing ambiguous about it. */
function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/** How long a write waits for the connection when the client has no `commandTimeout`, in ms. */
const DEFAULT_WRITE_WAIT_MS = 1_000;

/**
 * A {@link DialogStore} on Redis: `load` is `GET`, `save` is one `SET key value EX ttlSeconds`
 * (a state is written whole or not at all, with its expiry), `delete` is `DEL`.
 *
 * Every Redis failure (refused connection, timeout, error reply) surfaces as
 * {@link StoreUnavailableError} with the ioredis error as `cause`. How long a call may take is the
 * client's business: build it with {@link createRedisClient} or {@link createRedisClusterClient} so
 * that calls fail within about a second while Redis is down.
 *
 * On a `Cluster`, reads too wait for the cluster to be `ready` (at most its `commandTimeout`) before
 * they are sent: ioredis applies `commandTimeout` only once a command reaches a node, and a command
 * queued while the cluster itself is (re)connecting would otherwise wait without a bound. A write
 * also waits, within the same bound, for the connection to the master that holds its key (ioredis
 * opens those lazily and queues commands on them meanwhile).
 */
export class RedisStore implements DialogStore {
  readonly #redis: ScriptedClient;
  readonly #keyPrefix: string;
  #closed = false;

  /** @param options - the client (the store owns it from now on) and the key prefix; nothing is sent yet. */
  constructor(options: RedisStoreOptions) {
    options.redis.defineCommand('dialogCommit', { numberOfKeys: 1, lua: COMMIT_SCRIPT });
    this.#redis = options.redis as ScriptedClient;
    this.#keyPrefix = options.keyPrefix;
  }

  /** The client this store owns (other records of the same application, such as the shared access_token, may use it). */
  get client(): Redis | Cluster {
    return this.#redis;
  }

  /** The prefix of every key this store writes. */
  get keyPrefix(): string {
    return this.#keyPrefix;
  }

  /** @inheritDoc `GET`: the token is the stored value itself. */
  async read(key: StateKey): Promise<Snapshot> {
    const storageKey = this.#key(key);
    await this.#whenSendable('GET', storageKey, 'read');
    const raw = await this.#run('GET', () => this.#redis.get(storageKey));
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
    assertTtlSeconds(ttlSeconds);
    const value = next === undefined ? '' : encodeState(next);
    const storageKey = this.#key(key);
    await this.#whenSendable('EVALSHA', storageKey, 'write');
    let reply: number | [string];
    try {
      reply = await this.#run('EVALSHA', () => this.#redis.dialogCommit(storageKey, expected.token, value, ttlSeconds));
    } catch (err) {
      // A timeout or a dropped connection leaves it open whether Redis ran the script (it may have
      // been queued, e.g. behind CLIENT PAUSE WRITE): find out before anyone answers the apology.
      if (!(err instanceof StoreUnavailableError) || isReplyError(err.cause)) throw err;
      const settled = await this.#settle(storageKey, value);
      if (settled === undefined) throw err;
      return settled;
    }
    if (reply === 1) return { committed: true, snapshot: snapshotOf(value) };
    return { committed: false, snapshot: snapshotOf(Array.isArray(reply) ? String(reply[0] ?? '') : '') };
  }

  /**
   * After a commit whose outcome is unknown (no answer in time, or the connection dropped), reads
   * the key until Redis answers, for at most {@link SETTLE_WAIT_MS} **milliseconds**. On the same
   * connection the `GET` runs after the script if the script is still queued (Redis runs one
   * client's commands in order); on a new connection the old one's commands have either run or
   * gone. So the value read is final: ours means committed, anything else means not committed
   * (the caller plans again from it). `undefined` when Redis did not answer in time.
   */
  async #settle(storageKey: string, value: string): Promise<CommitResult | undefined> {
    const deadline = performance.now() + SETTLE_WAIT_MS;
    while (!this.#closed && performance.now() < deadline) {
      try {
        await this.#whenSendable('GET', storageKey, 'read');
        const raw = (await this.#run('GET', () => this.#redis.get(storageKey))) ?? '';
        return raw === value ? { committed: true, snapshot: snapshotOf(value) } : { committed: false, snapshot: snapshotOf(raw) };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    return undefined;
  }

  /**
   * @inheritDoc
   * A stored value that {@link decodeState} rejects (corrupt, or written in another format) is
   * treated as absent; the next `save` overwrites it.
   */
  async load(key: StateKey): Promise<DialogState | undefined> {
    return (await this.read(key)).state;
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
    assertTtlSeconds(ttlSeconds);
    const value = encodeState(state);
    const storageKey = this.#key(key);
    await this.#whenSendable('SET', storageKey, 'write');
    await this.#run('SET', () => this.#redis.set(storageKey, value, 'EX', ttlSeconds));
  }

  /**
   * @inheritDoc
   * Like `save`, the `DEL` is only sent on a ready connection.
   */
  async delete(key: StateKey): Promise<void> {
    const storageKey = this.#key(key);
    await this.#whenSendable('DEL', storageKey, 'write');
    await this.#run('DEL', () => this.#redis.del(storageKey));
  }

  /**
   * Sends `QUIT` (to every node of a cluster); if that fails or is not answered within 2 s, drops the
   * connection. Never throws. Calls made afterwards fail with {@link StoreUnavailableError}.
   */
  async close(): Promise<void> {
    this.#closed = true;
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

  #notSent(command: string, why: string): StoreUnavailableError {
    return new StoreUnavailableError(
      `Redis is not connected (${why}), so ${command} was not sent: check REDIS_URL and that Redis is running`,
    );
  }

  /**
   * Resolves once `command` on `storageKey` can be sent without entering an offline queue that it
   * could leave after it has already failed for its caller. For a write: the client is `ready` and,
   * on a cluster, so is the connection to the master that holds the key (ioredis opens those
   * lazily, and queues on them too). For a read: only on a cluster, the cluster is `ready` (its own
   * offline queue has no timeout); on a single Redis a read is sent at once (it waits in the queue
   * at most `commandTimeout`, and is harmless if sent late). Waits at most the client's
   * `commandTimeout` (1000 ms if unset) in all; then, or once the store is closed, rejects with
   * {@link StoreUnavailableError}.
   */
  async #whenSendable(command: string, storageKey: string, kind: 'read' | 'write'): Promise<void> {
    if (this.#closed) throw this.#notSent(command, 'the store was closed');
    const client = this.#redis;
    const isCluster = client instanceof Cluster;
    if (kind === 'read' && !isCluster) return;
    const waitMs = commandTimeoutOf(client) ?? DEFAULT_WRITE_WAIT_MS;
    const deadline = performance.now() + waitMs;
    await this.#whenReady(client, isCluster ? 'the cluster' : 'the client', command, deadline, waitMs);
    if (kind === 'write' && isCluster) {
      const node = masterFor(client, storageKey);
      if (node === undefined || node.status === 'end') return; // ioredis routes it afresh, or fails it at once
      if (node.status === 'wait') node.connect().catch(() => {}); // failures arrive as 'end' / 'node error'
      const where = `the connection to cluster node ${node.options.host}:${node.options.port}`;
      await this.#whenReady(node, where, command, deadline, waitMs);
    }
  }

  /** Resolves at once if `emitter` is usable, or on its `ready` before `deadline`; rejects otherwise. */
  async #whenReady(emitter: Redis | Cluster, what: string, command: string, deadline: number, waitMs: number): Promise<void> {
    if (emitter.status === 'end') throw this.#notSent(command, `${what} was closed`);
    if (!CONNECTING.has(emitter.status)) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - performance.now()), 'timeout');
    });
    const outcome = await Promise.race([readyOrEnd(emitter), timedOut]);
    clearTimeout(timer);
    if (outcome === 'end') throw this.#notSent(command, `${what} was closed`);
    if (outcome === 'timeout') throw this.#notSent(command, `${what} is still "${emitter.status}" after ${waitMs} ms`);
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
    if (isReplyError(err)) {
      return `Redis answered ${command} with an error (${detail}): check that REDIS_URL points at a writable primary with memory to spare`;
    }
    const timeoutMs = commandTimeoutOf(this.#redis);
    if (/timed out/i.test(detail) && typeof timeoutMs === 'number') {
      return `Redis did not answer ${command} within ${timeoutMs} ms: check REDIS_URL and that Redis is running`;
    }
    return `Redis could not run ${command} (${detail}): check REDIS_URL and that Redis is running`;
  }
}
