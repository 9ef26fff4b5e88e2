/**
 * A {@link DialogStore} on Redis (ioredis), shared by every process of the server: one Redis
 * ({@link createRedisClient}) or a Redis Cluster ({@link createRedisClusterClient}).
 *
 * Per (account, openid), keys that share one hash tag (see {@link stateKeyString}), so that on a
 * cluster every script runs on one node: the state's header (format 2 of the state codec:
 * `<state key>`), its messages (`…:m`) and recorded effects (`…:e`), each an append-only string,
 * and its version (`…:v`); beside them the memory of handled messages (`…:h:<digest>`, `…:t`).
 * All expire with the state's time to live. A continuing turn appends its message (and any new
 * effects) and rewrites the small header: what it sends, and what Redis does, does not grow with
 * the dialog's length. A value in format 1 (the whole state in one JSON string at `<state key>`,
 * as written before) is still read, and written again in format 2 at its next commit.
 *
 * @module
 */
import { hash, randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { scrubbedError } from '../../logging.js';
import { clusterKeySlot, stateKeyString } from './keys.js';
import { appendedTo, decodeHandled, decodeStored, encodeHandled, encodeListPart, encodeStateHeader, isPartsHeader } from './state-codec.js';
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
  return `${stateKey}:h:${hash('sha1', identity, 'base64url')}`;
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

/**
 * The key holding the messages of the state at `stateKey` (format 2): the JSON of each message,
 * joined by `,`. A continuing turn `APPEND`s to it. It expires and is deleted with the state.
 */
export function messagesKey(stateKey: string): string {
  return `${stateKey}:m`;
}

/**
 * The key holding the recorded effects of the state at `stateKey` (format 2): the JSON of each
 * effect, joined by `,`; absent when there is none. It expires and is deleted with the state.
 */
export function effectsKey(stateKey: string): string {
  return `${stateKey}:e`;
}

/** Every key of the state at `stateKey` (not the memory of handled messages): what a delete removes. */
export function stateKeys(stateKey: string): [string, string, string, string] {
  return [stateKey, versionKey(stateKey), messagesKey(stateKey), effectsKey(stateKey)];
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
 * The compare-and-set token of a state, computed where it is stored: `<version>#<STRLEN of the
 * header>#<STRLEN of the messages>#<STRLEN of the effects>`, `''` when neither the version nor the
 * header is there. The header's length also catches a write by a server from before versions (which
 * writes the value alone) during a rolling deploy; the parts' lengths, a part changed or lost
 * (evicted) on its own. `STRLEN` is O(1): so is the token, however long the dialog.
 */
const TOKEN_LUA = `
local function tokenOf(version, header, messages, effects)
  if version == '' and header == 0 then return '' end
  return version .. '#' .. string.format('%d', header) .. '#' .. string.format('%d', messages) .. '#' .. string.format('%d', effects)
end
local function token(stateKey, versionKey, messagesKey, effectsKey)
  return tokenOf(redis.call('GET', versionKey) or '', redis.call('STRLEN', stateKey), redis.call('STRLEN', messagesKey), redis.call('STRLEN', effectsKey))
end
`;

/**
 * Compare-and-set of one user's state, remembering the message handled (see
 * {@link RedisStore.commit}). KEYS[1] the state key (the header), KEYS[2] the message's handled
 * key, KEYS[3] the user's `handledUpTo` key, KEYS[4] the state's version key, KEYS[5] its messages
 * key, KEYS[6] its effects key (all in one hash slot). ARGV[1] the token the caller read ('' =
 * none); ARGV[2] how to write: `a` appends ARGV[4] and ARGV[5] to the parts, anything else replaces
 * them; ARGV[3] the new header ('' = delete the state); ARGV[4] the messages (or what to append to
 * them); ARGV[5] the effects (or what to append; '' = none); ARGV[6] the state's TTL in seconds;
 * ARGV[7] what the message got ('' = remember nothing); ARGV[8] how long to remember it, in
 * seconds; ARGV[9] its CreateTime; ARGV[10] the new version (unique).
 *
 * The comparison is of tokens (a unique version and three lengths, see {@link TOKEN_LUA}), not
 * values, and an append writes only what the turn added (APPEND is amortized O(1)), so a
 * continuing turn's bytes and Redis's work do not grow with the dialog. Returns `{'h', got}` when
 * the message is remembered already (nothing written), `{'c', header, messages, effects, token,
 * upTo}` when the state had changed (nothing written), else `{'ok', upTo, token}` (the new token,
 * from what was written: `APPEND` returns the new length). Every key written gets its expiry in
 * the same script.
 */
const COMMIT_SCRIPT = `${TOKEN_LUA}
if ARGV[7] ~= '' then
  local got = redis.call('GET', KEYS[2])
  if got then return {'h', got} end
end
local messages = redis.call('STRLEN', KEYS[5])
local effects = redis.call('STRLEN', KEYS[6])
local current = tokenOf(redis.call('GET', KEYS[4]) or '', redis.call('STRLEN', KEYS[1]), messages, effects)
if current ~= ARGV[1] then
  return {'c', redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[5]) or '', redis.call('GET', KEYS[6]) or '', current, redis.call('GET', KEYS[3]) or '0'}
end
local ttl = tonumber(ARGV[6])
local written = ''
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1], KEYS[4], KEYS[5], KEYS[6])
else
  if ARGV[2] == 'a' then
    if ARGV[4] ~= '' then messages = redis.call('APPEND', KEYS[5], ARGV[4]) end
    redis.call('EXPIRE', KEYS[5], ttl)
    if ARGV[5] ~= '' then effects = redis.call('APPEND', KEYS[6], ARGV[5]) end
    if effects > 0 then redis.call('EXPIRE', KEYS[6], ttl) end
  else
    redis.call('SET', KEYS[5], ARGV[4], 'EX', ttl)
    messages = string.len(ARGV[4])
    if ARGV[5] == '' then redis.call('DEL', KEYS[6]) else redis.call('SET', KEYS[6], ARGV[5], 'EX', ttl) end
    effects = string.len(ARGV[5])
  end
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ttl)
  redis.call('SET', KEYS[4], ARGV[10], 'EX', ttl)
  written = tokenOf(ARGV[10], string.len(ARGV[3]), messages, effects)
end
local upTo = tonumber(redis.call('GET', KEYS[3]) or '0')
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[2], ARGV[7], 'EX', tonumber(ARGV[8]))
  if tonumber(ARGV[9]) > upTo then upTo = tonumber(ARGV[9]) end
  redis.call('SET', KEYS[3], upTo, 'EX', tonumber(ARGV[8]))
end
return {'ok', tostring(upTo), written}
`;

/**
 * Reads one user's state for {@link RedisStore.read}: KEYS[1] the state key (the header, or a
 * format-1 value), KEYS[2] its version key, KEYS[3] the user's `handledUpTo` key, KEYS[4] a
 * message's handled key, read only when ARGV[1] is `1`, KEYS[5] and KEYS[6] the state's messages and
 * effects. Returns `{header, messages, effects, token, upTo, got}` (`''` for what is absent).
 */
const READ_SCRIPT = `${TOKEN_LUA}
local got = ''
if ARGV[1] == '1' then got = redis.call('GET', KEYS[4]) or '' end
return {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[5]) or '', redis.call('GET', KEYS[6]) or '',
  token(KEYS[1], KEYS[2], KEYS[5], KEYS[6]), redis.call('GET', KEYS[3]) or '', got}
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
    messagesKey: string,
    effectsKey: string,
    expected: string,
    mode: 'a' | 'w',
    header: string,
    messages: string,
    effects: string,
    ttlSeconds: number,
    got: string,
    handledTtlSeconds: number,
    createTime: number,
    version: string,
  ): Promise<string[]>;
  dialogRemember(handledKey: string, upToKey: string, got: string, ttlSeconds: number, createTime: number): Promise<string[]>;
  dialogRead(
    stateKey: string,
    versionKey: string,
    upToKey: string,
    handledKey: string,
    messagesKey: string,
    effectsKey: string,
    readHandled: '0' | '1',
  ): Promise<string[]>;
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

/** What one commit sends for the new state: see {@link COMMIT_SCRIPT}. */
interface StateWrite {
  /** `a`: append `messages` and `effects` to the stored parts; `w`: replace the parts with them. */
  readonly mode: 'a' | 'w';
  /** The new header ({@link encodeStateHeader}); `''` to delete the state. */
  readonly header: string;
  /** The messages part, or (`a`) what to append to it. */
  readonly messages: string;
  /** The effects part, or (`a`) what to append to it; `''` for none. */
  readonly effects: string;
  /** The length, in characters, of both parts as stored after the write. */
  readonly partsLength: number;
}

/**
 * A {@link DialogStore} on Redis: `read` and `commit` are one Lua script each (one round trip),
 * `save` one `MULTI` (a state is written whole or not at all, with its expiry), `delete` one `DEL`.
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
    options.redis.defineCommand('dialogCommit', { numberOfKeys: 6, lua: COMMIT_SCRIPT });
    options.redis.defineCommand('dialogRemember', { numberOfKeys: 2, lua: REMEMBER_SCRIPT });
    options.redis.defineCommand('dialogRead', { numberOfKeys: 6, lua: READ_SCRIPT });
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
   * One script (one round trip) reading the state (its header and both parts), its token
   * (`<version>#<lengths>`, see {@link TOKEN_LUA}), the user's `handledUpTo` and, with `identity`,
   * the message's handled key. A value in format 1 is read too (its parts, if any, are ignored).
   */
  async read(key: StateKey, identity?: string): Promise<Snapshot> {
    const storageKey = this.#key(key);
    await this.#whenSendable('EVALSHA', storageKey, 'read');
    const [header = '', messages = '', effects = '', token = '', upTo = '', got = ''] = (
      await this.#run('EVALSHA', () => this.#read(storageKey, identity === undefined ? undefined : handledKey(storageKey, identity)))
    ).map(String);
    const snapshot = this.#snapshotOf(header, messages, effects, token, Number(upTo || 0));
    return got === '' ? snapshot : { ...snapshot, handled: decodeHandled(got) };
  }

  /**
   * @inheritDoc
   * One Lua script (one round trip): checks that the message is not remembered yet, compares the
   * stored state's token with the one `read` returned and, if equal, writes the state with its
   * expiry (or deletes it), and remembers the message (its handled key and the user's
   * `handledUpTo`, in the same hash slot). When `next` extends the state `expected` saw, as stored
   * in format 2 (the same messages and effects, then more: a continuing turn), only what it adds is
   * appended and the header rewritten, so the bytes sent and Redis's work do not depend on the
   * dialog's length; otherwise (a new dialog, a state read in format 1, a rewrite) the whole state is
   * written in format 2. Redis runs a script atomically, so two processes can never both commit over
   * the same state, nor both handle one message. Sent only on a ready connection, like `save`. When
   * the answer does not come (a timeout, a dropped connection), the key is read again until Redis
   * answers (at most 2 s) to learn whether the script ran, rather than reporting a failure for a
   * write that happened.
   * @throws {RangeError} when `ttlSeconds` (or `handled.ttlSeconds`) is not a positive integer.
   */
  async commit(key: StateKey, expected: Snapshot, next: DialogState | undefined, ttlSeconds: number, handled?: HandledMessage): Promise<CommitResult> {
    assertTtlSeconds(ttlSeconds);
    if (handled !== undefined) assertTtlSeconds(handled.ttlSeconds);
    const write = this.#writeOf(expected.state, next);
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
          messagesKey(storageKey),
          effectsKey(storageKey),
          expected.token,
          write.mode,
          write.header,
          write.messages,
          write.effects,
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
      const settled = await this.#settle(storageKey, version);
      if (settled === undefined) throw err;
      return settled;
    }
    const [outcome, first = '', second = '', third = '', fourth = '', fifth] = reply.map(String);
    if (outcome === 'h') return { committed: false, snapshot: expected, handled: decodeHandled(first) };
    if (outcome === 'c') return { committed: false, snapshot: this.#snapshotOf(first, second, third, fourth, Number(fifth ?? 0)) };
    if (next !== undefined) this.#partsLength.set(next, write.partsLength);
    const storedLength = write.header === '' ? 0 : write.header.length + write.partsLength;
    return { committed: true, snapshot: { state: next, token: second, storedLength, handledUpTo: Number(first) } };
  }

  /**
   * The states this store knows to be stored in format 2 exactly as they are (read so, or just
   * written), each with the length of its two parts in characters: a commit of a state that
   * extends one of them appends. Which stored state a snapshot's state is, the commit's token
   * comparison checks (the token holds a version written once, and the parts' lengths).
   */
  readonly #partsLength = new WeakMap<DialogState, number>();

  /** What to send for `next` (see {@link StateWrite}), given the state the turn was planned from. */
  #writeOf(previous: DialogState | undefined, next: DialogState | undefined): StateWrite {
    if (next === undefined) return { mode: 'w', header: '', messages: '', effects: '', partsLength: 0 };
    const header = encodeStateHeader(next);
    const stored = previous === undefined ? undefined : this.#partsLength.get(previous);
    if (previous !== undefined && stored !== undefined) {
      const messages = appendedTo(previous.messages, next.messages);
      const effects = appendedTo(previous.effects, next.effects);
      if (messages !== undefined && effects !== undefined) {
        const addedMessages = encodeListPart(messages, previous.messages.length);
        const addedEffects = encodeListPart(effects, previous.effects.length);
        return { mode: 'a', header, messages: addedMessages, effects: addedEffects, partsLength: stored + addedMessages.length + addedEffects.length };
      }
    }
    const messages = encodeListPart(next.messages);
    const effects = encodeListPart(next.effects);
    return { mode: 'w', header, messages, effects, partsLength: messages.length + effects.length };
  }

  /**
   * The snapshot of what {@link READ_SCRIPT} (or a refused commit) returned: the state in either
   * format, `storedLength` the characters of the header and (format 2) both parts.
   */
  #snapshotOf(header: string, messages: string, effects: string, token: string, handledUpTo: number | undefined): Snapshot {
    const state = decodeStored(header, messages, effects);
    const parts = isPartsHeader(header);
    const partsLength = parts ? messages.length + effects.length : 0;
    if (state !== undefined && parts) this.#partsLength.set(state, partsLength);
    const snapshot = { state, token, storedLength: header.length + partsLength };
    return handledUpTo === undefined ? snapshot : { ...snapshot, handledUpTo };
  }

  /** Runs {@link READ_SCRIPT} for the state at `storageKey` (and, with `handled`, that handled key). */
  #read(storageKey: string, handled: string | undefined): Promise<string[]> {
    return this.#redis.dialogRead(
      storageKey,
      versionKey(storageKey),
      upToKey(storageKey),
      handled ?? storageKey,
      messagesKey(storageKey),
      effectsKey(storageKey),
      handled === undefined ? '0' : '1',
    );
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
   * not answer in time. `version`: the one the commit wrote, `''` for a delete.
   */
  async #settle(storageKey: string, version: string): Promise<CommitResult | undefined> {
    const deadline = performance.now() + SETTLE_WAIT_MS;
    while (!this.#closed && performance.now() < deadline) {
      try {
        await this.#whenSendable('EVALSHA', storageKey, 'read');
        const [header = '', messages = '', effects = '', token = ''] = (await this.#run('EVALSHA', () => this.#read(storageKey, undefined))).map(String);
        // A version is written once: finding ours means the script ran (nothing else writes it).
        const committed = version === '' ? token === '' : token.startsWith(`${version}#`);
        // handledUpTo is not used here: the snapshot is one to plan from again, with a lookup.
        return { committed, snapshot: this.#snapshotOf(header, messages, effects, token, undefined) };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    return undefined;
  }

  /**
   * @inheritDoc
   * A stored value that does not decode (corrupt, written in another format, or a part missing) is
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
   * The whole state is written in format 2 (header, messages, effects, version) in one `MULTI`.
   * @throws {RangeError} when `ttlSeconds` is not a positive integer.
   */
  async save(key: StateKey, state: DialogState, ttlSeconds: number): Promise<void> {
    assertTtlSeconds(ttlSeconds);
    const write = this.#writeOf(undefined, state);
    const storageKey = this.#key(key);
    await this.#whenSendable('SET', storageKey, 'write');
    // A new version with it, so a commit planned from what was there before is refused.
    const multi = this.#redis
      .multi()
      .set(storageKey, write.header, 'EX', ttlSeconds)
      .set(messagesKey(storageKey), write.messages, 'EX', ttlSeconds);
    if (write.effects === '') multi.del(effectsKey(storageKey));
    else multi.set(effectsKey(storageKey), write.effects, 'EX', ttlSeconds);
    await this.#run('SET', () => multi.set(versionKey(storageKey), nextVersion(), 'EX', ttlSeconds).exec());
  }

  /**
   * @inheritDoc
   * One `DEL` of every key of the state (header, version, messages, effects; not the memory of
   * handled messages). Like `save`, it is only sent on a ready connection.
   */
  async delete(key: StateKey): Promise<void> {
    const storageKey = this.#key(key);
    await this.#whenSendable('DEL', storageKey, 'write');
    await this.#run('DEL', () => this.#redis.del(...stateKeys(storageKey)));
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
