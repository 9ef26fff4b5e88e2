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
import { createHash, randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { scrubbedError } from '../../logging.js';
import { clusterKeySlot, stateKeyString } from './keys.js';
import { decodeHandled, decodeState, encodeHandled, encodeState, snapshotOf } from './state-codec.js';
import {
  assertTtlSeconds,
  type CommitResult,
  type DialogState,
  type DialogStore,
  type HandledMessage,
  type HandledReply,
  type Snapshot,
  type StateKey,
  StoreUnavailableError,
} from './store.js';

/**
 * The key remembering one handled message of the user whose state is at `stateKey`:
 * `<stateKey>:h:<SHA-1 of the identity, base64url>`. It shares the state key's hash tag, so one
 * script can touch both on Redis Cluster; the digest keeps it short whatever the identity holds.
 */
function handledKey(stateKey: string, identity: string): string {
  return `${stateKey}:h:${createHash('sha1').update(identity).digest('base64url')}`;
}

/**
 * The key holding the version of the state at `stateKey`: a unique token written with every
 * commit, compared by the next one (instead of the whole value). It expires and is deleted with
 * the state.
 */
export function versionKey(stateKey: string): string {
  return `${stateKey}:v`;
}

/** This process's prefix for versions: versions never repeat, across processes and restarts. */
const VERSION_PREFIX = randomBytes(9).toString('base64url');
let versionCounter = 0;

/** A version no other commit has written (so a state deleted and written again never looks unchanged). */
function nextVersion(): string {
  versionCounter += 1;
  return `${VERSION_PREFIX}.${versionCounter.toString(36)}`;
}

/** The key holding the newest remembered `CreateTime` of the user whose state is at `stateKey`. */
function upToKey(stateKey: string): string {
  return `${stateKey}:t`;
}

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
 * The compare-and-set token of a state, computed where it is stored: `<version>#<the value's length
 * as STRLEN gives it>`, `''` when neither is there. The length also catches a write by a server
 * from before versions (which writes the value alone) during a rolling deploy; `STRLEN` is O(1).
 */
const TOKEN_LUA = `
local function token(stateKey, versionKey)
  local version = redis.call('GET', versionKey) or ''
  local length = redis.call('STRLEN', stateKey)
  if version == '' and length == 0 then return '' end
  return version .. '#' .. string.format('%d', length)
end
`;

/**
 * Compare-and-set of one user's state, remembering the message handled (see
 * {@link RedisStore.commit}). KEYS[1] the state key, KEYS[2] the message's handled key, KEYS[3]
 * the user's `handledUpTo` key, KEYS[4] the state's version key (all in one hash slot); ARGV[1]
 * the version the caller read ('' = none); ARGV[2] the new value ('' = delete); ARGV[3] the state's
 * TTL in seconds; ARGV[4] what the message got ('' = remember nothing); ARGV[5] how long to
 * remember it, in seconds; ARGV[6] its CreateTime; ARGV[7] the new version (unique). The
 * comparison is of versions (with the value's length in bytes, `<version>#<STRLEN>`, which also
 * catches a write by a server from before versions during a rolling deploy), not values, so a
 * commit sends the new state once and Redis compares a few bytes, however long the dialog. Returns `{'h', got}` when the message is remembered
 * already (nothing written), `{'c', current, version, upTo}` when the state had changed (nothing
 * written), else `{'ok', upTo}`.
 */
const COMMIT_SCRIPT = `${TOKEN_LUA}
if ARGV[4] ~= '' then
  local got = redis.call('GET', KEYS[2])
  if got then return {'h', got} end
end
local current = token(KEYS[1], KEYS[4])
if current ~= ARGV[1] then
  return {'c', redis.call('GET', KEYS[1]) or '', current, redis.call('GET', KEYS[3]) or '0'}
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1], KEYS[4])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  redis.call('SET', KEYS[4], ARGV[7], 'EX', tonumber(ARGV[3]))
end
local upTo = tonumber(redis.call('GET', KEYS[3]) or '0')
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', tonumber(ARGV[5]))
  if tonumber(ARGV[6]) > upTo then upTo = tonumber(ARGV[6]) end
  redis.call('SET', KEYS[3], upTo, 'EX', tonumber(ARGV[5]))
end
return {'ok', tostring(upTo), token(KEYS[1], KEYS[4])}
`;

/**
 * Reads one user's state for {@link RedisStore.read}: KEYS[1] the state key, KEYS[2] its version
 * key, KEYS[3] the user's `handledUpTo` key, KEYS[4] a message's handled key, read only when
 * ARGV[1] is `1`. Returns `{value, token, upTo, got}` (`''` for what is absent).
 */
const READ_SCRIPT = `${TOKEN_LUA}
local got = ''
if ARGV[1] == '1' then got = redis.call('GET', KEYS[4]) or '' end
return {redis.call('GET', KEYS[1]) or '', token(KEYS[1], KEYS[2]), redis.call('GET', KEYS[3]) or '', got}
`;

/**
 * Remembers a message whose turn writes no state: KEYS[2] and KEYS[3] as in {@link COMMIT_SCRIPT},
 * ARGV[1] what it got, ARGV[2] how long to remember it, ARGV[3] its CreateTime. Returns `{'h',
 * got}` when it is remembered already (nothing written), else `{'ok', upTo}`.
 */
const REMEMBER_SCRIPT = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  return {'h', redis.call('GET', KEYS[1])}
end
local upTo = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) > upTo then upTo = tonumber(ARGV[3]) end
redis.call('SET', KEYS[2], upTo, 'EX', tonumber(ARGV[2]))
return {'ok', tostring(upTo)}
`;

/** The scripts as ioredis `defineCommand` adds them to a client (EVALSHA, falling back to EVAL). */
interface CommitCommand {
  dialogCommit(
    stateKey: string,
    handledKey: string,
    upToKey: string,
    versionKey: string,
    expected: string,
    next: string,
    ttlSeconds: number,
    got: string,
    handledTtlSeconds: number,
    createTime: number,
    version: string,
  ): Promise<string[]>;
  dialogRemember(handledKey: string, upToKey: string, got: string, ttlSeconds: number, createTime: number): Promise<string[]>;
  dialogRead(stateKey: string, versionKey: string, upToKey: string, handledKey: string, readHandled: '0' | '1'): Promise<string[]>;
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
    options.redis.defineCommand('dialogCommit', { numberOfKeys: 4, lua: COMMIT_SCRIPT });
    options.redis.defineCommand('dialogRemember', { numberOfKeys: 2, lua: REMEMBER_SCRIPT });
    options.redis.defineCommand('dialogRead', { numberOfKeys: 4, lua: READ_SCRIPT });
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

  /**
   * @inheritDoc
   * One script (one round trip) reading the state, its token (`<version>#<STRLEN>`, see
   * {@link TOKEN_LUA}), the user's `handledUpTo` and, with `identity`, the message's handled key.
   */
  async read(key: StateKey, identity?: string): Promise<Snapshot> {
    const storageKey = this.#key(key);
    await this.#whenSendable('EVALSHA', storageKey, 'read');
    const [raw = '', token = '', upTo = '', got = ''] = (
      await this.#run('EVALSHA', () =>
        this.#redis.dialogRead(storageKey, versionKey(storageKey), upToKey(storageKey), identity === undefined ? storageKey : handledKey(storageKey, identity), identity === undefined ? '0' : '1'),
      )
    ).map(String);
    const snapshot = snapshotOf(raw, Number(upTo || 0), token);
    return got === '' ? snapshot : { ...snapshot, handled: decodeHandled(got) };
  }

  /**
   * @inheritDoc
   * One Lua script (one round trip): checks that the message is not remembered yet, compares the
   * stored value with the one `read` returned and, if equal, `SET … EX ttlSeconds` (or `DEL`), and
   * remembers the message (its handled key and the user's `handledUpTo`, in the same hash slot).
   * Redis runs a script atomically, so two processes can never both commit over the same value,
   * nor both handle one message. Sent only on a ready connection, like `save`. When the answer does
   * not come (a timeout, a dropped connection), the key is read again until Redis answers (at most
   * 2 s) to learn whether the script ran, rather than reporting a failure for a write that happened.
   * @throws {RangeError} when `ttlSeconds` (or `handled.ttlSeconds`) is not a positive integer.
   */
  async commit(key: StateKey, expected: Snapshot, next: DialogState | undefined, ttlSeconds: number, handled?: HandledMessage): Promise<CommitResult> {
    assertTtlSeconds(ttlSeconds);
    if (handled !== undefined) assertTtlSeconds(handled.ttlSeconds);
    const value = next === undefined ? '' : encodeState(next);
    const storageKey = this.#key(key);
    const got = handled === undefined ? '' : encodeHandled(handled);
    const version = next === undefined ? '' : nextVersion();
    await this.#whenSendable('EVALSHA', storageKey, 'write');
    let reply: string[];
    try {
      reply = await this.#run('EVALSHA', () =>
        this.#redis.dialogCommit(
          storageKey,
          handled === undefined ? storageKey : handledKey(storageKey, handled.id), // a key of the slot, not touched without `handled`
          upToKey(storageKey),
          versionKey(storageKey),
          expected.token,
          value,
          ttlSeconds,
          got,
          handled?.ttlSeconds ?? 1,
          handled?.createTime ?? 0,
          version,
        ),
      );
    } catch (err) {
      // A timeout or a dropped connection leaves it open whether Redis ran the script (it may have
      // been queued, e.g. behind CLIENT PAUSE WRITE): find out before anyone answers the apology.
      if (!(err instanceof StoreUnavailableError) || isReplyError(err.cause)) throw err;
      const settled = await this.#settle(storageKey, value, version);
      if (settled === undefined) throw err;
      return settled;
    }
    const [outcome, first = '', second = '', third] = reply.map(String);
    if (outcome === 'h') return { committed: false, snapshot: expected, handled: decodeHandled(first) };
    if (outcome === 'c') return { committed: false, snapshot: snapshotOf(first, Number(third ?? 0), second) };
    return { committed: true, snapshot: snapshotOf(value, Number(first), second, next) };
  }

  /** @inheritDoc One Lua script (`SET … NX EX`, then `handledUpTo`): one round trip. */
  async remember(key: StateKey, handled: HandledMessage): Promise<HandledReply | undefined> {
    assertTtlSeconds(handled.ttlSeconds);
    const storageKey = this.#key(key);
    await this.#whenSendable('EVALSHA', storageKey, 'write');
    const reply = await this.#run('EVALSHA', () =>
      this.#redis.dialogRemember(handledKey(storageKey, handled.id), upToKey(storageKey), encodeHandled(handled), handled.ttlSeconds, handled.createTime),
    );
    const [outcome, got = ''] = reply.map(String);
    return outcome === 'h' ? decodeHandled(got) : undefined;
  }

  /**
   * After a commit whose outcome is unknown (no answer in time, or the connection dropped), reads
   * the state and its token until Redis answers, for at most {@link SETTLE_WAIT_MS}
   * **milliseconds**. On the same connection the read runs after the script if the script is still
   * queued (Redis runs one client's commands in order); on a new connection the old one's commands
   * have either run or gone. So what is read is final: our value with our version means committed,
   * anything else means not committed (the caller plans again from it). `undefined` when Redis did
   * not answer in time.
   */
  async #settle(storageKey: string, value: string, version: string): Promise<CommitResult | undefined> {
    const deadline = performance.now() + SETTLE_WAIT_MS;
    while (!this.#closed && performance.now() < deadline) {
      try {
        await this.#whenSendable('EVALSHA', storageKey, 'read');
        const [raw = '', token = ''] = (
          await this.#run('EVALSHA', () => this.#redis.dialogRead(storageKey, versionKey(storageKey), upToKey(storageKey), storageKey, '0'))
        ).map(String);
        // handledUpTo is not used here: the snapshot is one to plan from again, with a lookup.
        const committed = raw === value && (value === '' ? token === '' : token.startsWith(`${version}#`));
        return { committed, snapshot: snapshotOf(raw, undefined, token) };
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
    // A new version with it, so a commit planned from what was there before is refused.
    await this.#run('SET', () => this.#redis.multi().set(storageKey, value, 'EX', ttlSeconds).set(versionKey(storageKey), nextVersion(), 'EX', ttlSeconds).exec());
  }

  /**
   * @inheritDoc
   * Like `save`, the `DEL` is only sent on a ready connection.
   */
  async delete(key: StateKey): Promise<void> {
    const storageKey = this.#key(key);
    await this.#whenSendable('DEL', storageKey, 'write');
    await this.#run('DEL', () => this.#redis.del(storageKey, versionKey(storageKey)));
  }

  /**
   * @inheritDoc
   * One `PING` (on a cluster: to any node of it), sent only once the client (the cluster) is
   * `ready`, so it never waits in an offline queue. Waiting for the connection and for the answer
   * take at most the client's `commandTimeout` together (1000 ms if unset); then it rejects.
   */
  async ping(): Promise<void> {
    if (this.#closed) throw this.#notSent('PING', 'the store was closed');
    const client = this.#redis;
    const waitMs = commandTimeoutOf(client) ?? DEFAULT_WRITE_WAIT_MS;
    const deadline = performance.now() + waitMs;
    await this.#whenReady(client, client instanceof Cluster ? 'the cluster' : 'the client', 'PING', deadline, waitMs);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      const message = `Redis did not answer PING within ${waitMs} ms: check REDIS_URL and that Redis is running`;
      timer = setTimeout(() => reject(new StoreUnavailableError(message)), Math.max(0, deadline - performance.now()));
    });
    try {
      await Promise.race([this.#run('PING', () => client.ping()), timedOut]);
    } finally {
      clearTimeout(timer);
    }
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
      // The cause is a copy without ioredis's `command.args`: they hold states, i.e. what users wrote.
      throw new StoreUnavailableError(this.#describeFailure(command, err), { cause: scrubbedError(err) });
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
