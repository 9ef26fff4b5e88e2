/**
 * An in-process {@link DialogStore}: for development, a single process, and tests.
 *
 * States are kept as encoded strings (format 1 of the state codec: the whole state as one JSON
 * string; Redis keeps format 2, the same texts as a header and two parts), so what a caller does
 * with a state object after `save()` or after `load()` never changes what is stored, and a value
 * that would not survive Redis does not survive here either.
 *
 * Bounded: at most `maxEntries` entries (default {@link DEFAULT_MAX_ENTRIES}): states, and the
 * records of handled messages (one per message, for their replay window, plus one per user). When
 * a new entry would exceed it, the least recently used states (read or written longest ago) make room:
 * expired ones silently, live ones as evictions, counted and logged (rate-limited). An evicted
 * user's dialog is forgotten, as if its TTL had run out. The sweep timer still removes expired
 * states wherever they are.
 *
 * @module
 */
import { stateKeyString } from './keys.js';
import { decodeHandled, encodeHandled, encodeState, snapshotOf } from './state-codec.js';
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

/** Default {@link MemoryStoreOptions.maxEntries}: 100 000 entries. */
export const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * The map key remembering one handled message of the user whose state is under `stateMapKey`
 * (`stateKeyString('', key)`; the identity verbatim: no size to save here).
 */
function handledMapKey(stateMapKey: string, identity: string): string {
  return `${stateMapKey}\u0000h\u0000${identity}`;
}

/** The map key of the newest remembered `CreateTime` of the user whose state is under `stateMapKey`. */
function upToMapKey(stateMapKey: string): string {
  return `${stateMapKey}\u0000t`;
}

/**
 * After a warning about evictions, the store stays quiet for this many **milliseconds**; the next
 * warning then counts every eviction since the previous one.
 */
export const EVICTION_WARNING_INTERVAL_MS = 60_000;

/** The subset of a pino logger the store uses. */
export interface MemoryStoreLogger {
  warn(fields: object, message: string): void;
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Most entries held at once (states and records of handled messages), a positive integer.
   * Writing a new entry into a full store removes the least recently used one (read or written longest ago): if it has expired, that
   * is no eviction; if it is live, it is evicted (its dialog is forgotten, as if the TTL had run
   * out). Overwriting a state already held evicts nothing.
   * @default DEFAULT_MAX_ENTRIES (100 000)
   */
  readonly maxEntries?: number;
  /**
   * Where to warn about evictions: on the first one, then at most once every
   * {@link EVICTION_WARNING_INTERVAL_MS} (60 s), with fields `evicted` (since the previous warning),
   * `totalEvicted` and `maxEntries`. An eviction in a quiet period is counted in the next warning.
   * @default no logging (the count is still in {@link MemoryStore.evictions})
   */
  readonly logger?: MemoryStoreLogger;
  /**
   * How often, in **milliseconds**, a timer removes expired entries, so that states of users who
   * never come back do not pile up. The timer is `unref()`ed (it never keeps the process alive) and
   * stopped by `close()`. `0` disables it: expired entries are then removed only when read or
   * replaced. Expired entries are never returned, whatever this is.
   * @default 30_000
   */
  readonly sweepIntervalMs?: number;
  /**
   * The clock, in **milliseconds** since the epoch. Tests may pass a fake one.
   * @default Date.now
   */
  readonly now?: () => number;
}

interface Entry {
  /** What {@link encodeState} produced (or, in tests, any raw string). */
  readonly encoded: string;
  /** When the entry expires, in ms since the epoch (same clock as `now`). */
  readonly expiresAtMs: number;
}

/** A {@link DialogStore} in a `Map`, with per-key expiry. Not shared between processes. */
export class MemoryStore implements DialogStore {
  /** Least recently used first (a `Map` keeps insertion order; a use re-inserts). */
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  readonly #logger: MemoryStoreLogger | undefined;
  /** Most entries (states and records of handled messages) held at once. */
  readonly maxEntries: number;
  #evictions = 0;
  /** Evictions not yet reported in a warning. */
  #unreported = 0;
  #lastWarningMs: number | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /**
   * @throws {RangeError} when `sweepIntervalMs` is negative or not a finite number, or `maxEntries`
   *   is not a positive integer.
   */
  constructor(options: MemoryStoreOptions = {}) {
    const { sweepIntervalMs = 30_000, now = Date.now, maxEntries = DEFAULT_MAX_ENTRIES, logger } = options;
    if (!Number.isFinite(sweepIntervalMs) || sweepIntervalMs < 0) {
      throw new RangeError(`MemoryStore: sweepIntervalMs must be a number of milliseconds >= 0, got ${sweepIntervalMs}`);
    }
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`MemoryStore: maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.#now = now;
    this.maxEntries = maxEntries;
    this.#logger = logger;
    if (sweepIntervalMs > 0) {
      this.#sweepTimer = setInterval(() => this.#sweep(), sweepIntervalMs);
      this.#sweepTimer.unref();
    }
  }

  /** @inheritDoc */
  async load(key: StateKey): Promise<DialogState | undefined> {
    return (await this.read(key)).state;
  }

  /**
   * @inheritDoc
   * @throws {RangeError} when `ttlSeconds` is not a positive integer.
   */
  async save(key: StateKey, state: DialogState, ttlSeconds: number): Promise<void> {
    assertTtlSeconds(ttlSeconds);
    this.writeEncoded(key, encodeState(state), ttlSeconds);
  }

  /** @inheritDoc One map lookup each for the state, `handledUpTo` and (with `identity`) the message's record. */
  async read(key: StateKey, identity?: string): Promise<Snapshot> {
    const stateMapKey = stateKeyString('', key);
    const snapshot = snapshotOf(this.readEncoded(key) ?? '', this.#upTo(stateMapKey));
    const got = identity === undefined ? undefined : this.#get(handledMapKey(stateMapKey, identity));
    return got === undefined ? snapshot : { ...snapshot, handled: decodeHandled(got) };
  }

  /**
   * @inheritDoc
   * Checks the handled message, compares the stored string with the snapshot's and writes in the
   * same synchronous step, so no other turn in this process can come in between.
   * @throws {RangeError} when `ttlSeconds` (or `handled.ttlSeconds`) is not a positive integer.
   */
  async commit(key: StateKey, expected: Snapshot, next: DialogState | undefined, ttlSeconds: number, handled?: HandledMessage): Promise<CommitResult> {
    assertTtlSeconds(ttlSeconds);
    if (handled !== undefined) assertTtlSeconds(handled.ttlSeconds);
    const encoded = next === undefined ? '' : encodeState(next);
    // The map keys of this user, built once for the whole commit.
    const stateMapKey = stateKeyString('', key);
    const handledKey = handled === undefined ? undefined : handledMapKey(stateMapKey, handled.id);
    if (handledKey !== undefined) {
      const got = this.#get(handledKey);
      if (got !== undefined) return { committed: false, snapshot: expected, handled: decodeHandled(got) };
    }
    const current = this.readEncoded(key) ?? '';
    if (current !== expected.token) return { committed: false, snapshot: snapshotOf(current, this.#upTo(stateMapKey)) };
    if (encoded === '') this.#entries.delete(stateMapKey);
    else this.writeEncoded(key, encoded, ttlSeconds);
    if (handled !== undefined && handledKey !== undefined) this.#rememberNow(stateMapKey, handledKey, handled);
    return { committed: true, snapshot: snapshotOf(encoded, this.#upTo(stateMapKey), encoded, next) };
  }

  /** @inheritDoc Kept in the same map as the states (under the same entry cap and sweep). */
  async remember(key: StateKey, handled: HandledMessage): Promise<HandledReply | undefined> {
    assertTtlSeconds(handled.ttlSeconds);
    const stateMapKey = stateKeyString('', key);
    const handledKey = handledMapKey(stateMapKey, handled.id);
    const got = this.#get(handledKey);
    if (got !== undefined) return decodeHandled(got);
    this.#rememberNow(stateMapKey, handledKey, handled);
    return undefined;
  }

  /**
   * Records `handled` (under `handledKey`) and raises the user's `handledUpTo`, both for
   * `handled.ttlSeconds`; `stateMapKey` is the user's state key.
   */
  #rememberNow(stateMapKey: string, handledKey: string, handled: HandledMessage): void {
    this.#put(handledKey, encodeHandled(handled), handled.ttlSeconds);
    this.#put(upToMapKey(stateMapKey), String(Math.max(this.#upTo(stateMapKey), handled.createTime)), handled.ttlSeconds);
  }

  /** The newest remembered `CreateTime` of the user whose state is under `stateMapKey`, `0` when none. */
  #upTo(stateMapKey: string): number {
    return Number(this.#get(upToMapKey(stateMapKey)) ?? 0);
  }

  /** @inheritDoc */
  async delete(key: StateKey): Promise<void> {
    this.#assertOpen();
    this.#entries.delete(stateKeyString('', key));
  }

  /** @inheritDoc Resolves at once while the store is open. */
  async ping(): Promise<void> {
    this.#assertOpen();
  }

  /** Stops the sweep timer and drops every state. Later calls throw {@link StoreUnavailableError}. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#entries.clear();
  }

  /** Number of entries held, expired ones not yet swept included; at most `maxEntries`. */
  get size(): number {
    return this.#entries.size;
  }

  /** How many live entries were evicted to stay within `maxEntries`, since the store was created. */
  get evictions(): number {
    return this.#evictions;
  }

  /**
   * Stores a raw string for `key`, as Redis `SET key encoded EX ttlSeconds` would, as its most
   * recently used state; a new key in a full store first makes room (see `maxEntries`). For
   * subclasses (tests write corrupt values with it).
   */
  protected writeEncoded(key: StateKey, encoded: string, ttlSeconds: number): void {
    this.#put(stateKeyString('', key), encoded, ttlSeconds);
  }

  /** Stores `encoded` under `mapKey` for `ttlSeconds` **seconds**, making room under the entry cap. */
  #put(mapKey: string, encoded: string, ttlSeconds: number): void {
    this.#assertOpen();
    const now = this.#now();
    if (!this.#entries.delete(mapKey)) this.#makeRoom(now);
    this.#entries.set(mapKey, { encoded, expiresAtMs: now + ttlSeconds * 1000 });
  }

  /** The live value under `mapKey` (not a use: the recency order stays). */
  #get(mapKey: string): string | undefined {
    return this.#live(mapKey)?.encoded;
  }

  /**
   * The raw string stored for `key`, `undefined` when absent or expired (an expired entry is
   * removed). A read makes the state the most recently used.
   */
  protected readEncoded(key: StateKey): string | undefined {
    const mapKey = stateKeyString('', key);
    const entry = this.#live(mapKey);
    if (entry !== undefined) {
      this.#entries.delete(mapKey);
      this.#entries.set(mapKey, entry);
    }
    return entry?.encoded;
  }

  /** When the state for `key` expires, ms since the epoch; `undefined` when absent or expired. */
  protected expiresAtMs(key: StateKey): number | undefined {
    return this.#live(stateKeyString('', key))?.expiresAtMs;
  }

  #live(mapKey: string): Entry | undefined {
    this.#assertOpen();
    const entry = this.#entries.get(mapKey);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.#now()) {
      this.#entries.delete(mapKey);
      return undefined;
    }
    return entry;
  }

  /**
   * Leaves room for one more entry: removes entries from the least recently used end until fewer
   * than `maxEntries` remain, expired ones silently, live ones as evictions (counted and reported).
   */
  #makeRoom(now: number): void {
    if (this.#entries.size < this.maxEntries) return;
    let evicted = 0;
    for (const [mapKey, entry] of this.#entries) {
      if (this.#entries.size < this.maxEntries) break;
      this.#entries.delete(mapKey);
      if (entry.expiresAtMs > now) evicted += 1;
    }
    if (evicted > 0) this.#reportEvictions(evicted, now);
  }

  #reportEvictions(evicted: number, now: number): void {
    this.#evictions += evicted;
    this.#unreported += evicted;
    if (this.#logger === undefined) return;
    if (this.#lastWarningMs !== undefined && now - this.#lastWarningMs < EVICTION_WARNING_INTERVAL_MS) return;
    this.#logger.warn(
      { evicted: this.#unreported, totalEvicted: this.#evictions, maxEntries: this.maxEntries },
      'MemoryStore is full (maxEntries): evicted the least recently used dialog states, whose users lose their dialogs; ' +
        'raise maxEntries or keep state in Redis (REDIS_URL)',
    );
    this.#unreported = 0;
    this.#lastWarningMs = now;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [mapKey, entry] of this.#entries) {
      if (entry.expiresAtMs <= now) this.#entries.delete(mapKey);
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new StoreUnavailableError('MemoryStore was used after close(): create a new store instead');
    }
  }
}
