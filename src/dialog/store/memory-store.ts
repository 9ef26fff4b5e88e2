/**
 * An in-process {@link DialogStore}: for development, a single process, and tests.
 *
 * States are kept as encoded strings (the same JSON as in Redis), so what a caller does with a state
 * object after `save()` or after `load()` never changes what is stored, and a value that would not
 * survive Redis does not survive here either.
 *
 * @module
 */
import { stateKeyString } from './keys.js';
import { encodeState, snapshotOf } from './state-codec.js';
import {
  assertTtlSeconds,
  type CommitResult,
  type DialogState,
  type DialogStore,
  type Snapshot,
  type StateKey,
  StoreUnavailableError,
} from './store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
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
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /**
   * @throws {RangeError} when `sweepIntervalMs` is negative or not a finite number.
   */
  constructor(options: MemoryStoreOptions = {}) {
    const { sweepIntervalMs = 30_000, now = Date.now } = options;
    if (!Number.isFinite(sweepIntervalMs) || sweepIntervalMs < 0) {
      throw new RangeError(`MemoryStore: sweepIntervalMs must be a number of milliseconds >= 0, got ${sweepIntervalMs}`);
    }
    this.#now = now;
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

  /** @inheritDoc */
  async read(key: StateKey): Promise<Snapshot> {
    return snapshotOf(this.readEncoded(key) ?? '');
  }

  /**
   * @inheritDoc
   * Compares the stored string with the snapshot's and writes in the same synchronous step, so no
   * other turn in this process can come in between.
   * @throws {RangeError} when `ttlSeconds` is not a positive integer.
   */
  async commit(key: StateKey, expected: Snapshot, next: DialogState | undefined, ttlSeconds: number): Promise<CommitResult> {
    assertTtlSeconds(ttlSeconds);
    const encoded = next === undefined ? '' : encodeState(next);
    const current = this.readEncoded(key) ?? '';
    if (current !== expected.token) return { committed: false, snapshot: snapshotOf(current) };
    if (encoded === '') this.#entries.delete(stateKeyString('', key));
    else this.writeEncoded(key, encoded, ttlSeconds);
    return { committed: true, snapshot: snapshotOf(encoded) };
  }

  /** @inheritDoc */
  async delete(key: StateKey): Promise<void> {
    this.#assertOpen();
    this.#entries.delete(stateKeyString('', key));
  }

  /** Stops the sweep timer and drops every state. Later calls throw {@link StoreUnavailableError}. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#entries.clear();
  }

  /** Number of entries held, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Stores a raw string for `key`, as Redis `SET key encoded EX ttlSeconds` would. For subclasses
   * (tests write corrupt values with it).
   */
  protected writeEncoded(key: StateKey, encoded: string, ttlSeconds: number): void {
    this.#assertOpen();
    this.#entries.set(stateKeyString('', key), { encoded, expiresAtMs: this.#now() + ttlSeconds * 1000 });
  }

  /** The raw string stored for `key`, `undefined` when absent or expired (an expired entry is removed). */
  protected readEncoded(key: StateKey): string | undefined {
    return this.#live(key)?.encoded;
  }

  /** When the state for `key` expires, ms since the epoch; `undefined` when absent or expired. */
  protected expiresAtMs(key: StateKey): number | undefined {
    return this.#live(key)?.expiresAtMs;
  }

  #live(key: StateKey): Entry | undefined {
    this.#assertOpen();
    const mapKey = stateKeyString('', key);
    const entry = this.#entries.get(mapKey);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.#now()) {
      this.#entries.delete(mapKey);
      return undefined;
    }
    return entry;
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
