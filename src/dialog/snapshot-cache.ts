/**
 * The snapshots this process last committed, per user: a continuing turn plans from the cached
 * snapshot and sends only the compare-and-set commit (one round trip). A stale entry (another
 * process moved the state on) costs nothing but a refused commit, which returns the current value;
 * a missing entry costs one read. Correctness never depends on what the cache holds.
 *
 * Bounded in **estimated bytes** (`maxBytes`, default {@link DEFAULT_CACHE_BYTES}) and in entries
 * (`maxEntries`, default {@link DEFAULT_CACHE_ENTRIES}): when either is exceeded, the least recently
 * used entries are dropped until both hold. An entry larger than `maxBytes` on its own is not cached.
 * Each entry is valid for the state's time to live; expired entries are dropped when read, from the
 * least recently used end whenever an entry is inserted, and by a full pass over the cache at most
 * once every {@link CACHE_SWEEP_INTERVAL_MS} (also on insertion: no timer).
 *
 * The size of an entry is estimated by {@link snapshotBytes}, from the stored length the store
 * reports (no serialization on the hot path).
 *
 * @module
 */
import type { Snapshot } from './store/store.js';

/** Default byte budget of a {@link SnapshotCache}: 64 MiB (67 108 864 bytes) per process. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/** Default entry limit of a {@link SnapshotCache}: 10 000 users. */
export const DEFAULT_CACHE_ENTRIES = 10_000;

/**
 * The fixed part of an entry's estimated size, in **bytes**: the map slot, the entry and snapshot
 * objects, the key string (about 45 characters) and the decoded state's outer objects.
 */
export const CACHE_ENTRY_OVERHEAD_BYTES = 512;

/** Bytes counted per character of the stored JSON: 2 for the JSON text (UTF-16) + 2 for the decoded state. */
export const CACHE_BYTES_PER_STORED_CHAR = 4;

/** The most often, in **milliseconds**, that an insertion also sweeps the whole cache for expired entries. */
export const CACHE_SWEEP_INTERVAL_MS = 1_000;

/**
 * The estimated heap size, in **bytes**, of caching `snapshot`:
 * `4 × the stored JSON's length + 512` ({@link CACHE_BYTES_PER_STORED_CHAR}, {@link CACHE_ENTRY_OVERHEAD_BYTES}).
 *
 * `storedLength` is the length of everything stored for the state: the format-1 value, or (on
 * Redis) the format-2 header and both parts together. The JSON the state was read or written as
 * stays in memory with it on the in-memory store (as its token, and as the history's JSON
 * `encodeState` keeps for the next turn): at most 2 bytes per character (V8 keeps Latin-1 strings
 * at 1); on Redis it does not (a commit sends only what it adds), so there the estimate errs on the
 * large side by up to half. The decoded state holds the same texts again, without
 * the JSON syntax but with an object per message: about 2 bytes per character more. Measured on
 * Node 20 with `process.memoryUsage().heapUsed`, a cached entry took 2.1 to 4.1 × the JSON's length
 * in bytes (ASCII texts at the low end, Chinese texts at the high end; 100 messages of 500
 * characters: 67 000 characters of JSON, 258 kB measured, 268 kB estimated), so the estimate errs on
 * the large side for Chinese dialogs and about 2 × on the large side for ASCII ones.
 */
export function snapshotBytes(snapshot: Snapshot): number {
  return CACHE_BYTES_PER_STORED_CHAR * (snapshot.storedLength ?? snapshot.token.length) + CACHE_ENTRY_OVERHEAD_BYTES;
}

/** Options of {@link SnapshotCache}. */
export interface SnapshotCacheOptions {
  /**
   * Most **bytes** the entries may take together, as estimated by {@link snapshotBytes}. `0`
   * disables the cache.
   * @default DEFAULT_CACHE_BYTES (64 MiB)
   */
  readonly maxBytes?: number;
  /**
   * Most entries (users) kept. `0` disables the cache.
   * @default DEFAULT_CACHE_ENTRIES (10 000)
   */
  readonly maxEntries?: number;
  /**
   * The clock, in **milliseconds** since the epoch.
   * @default Date.now
   */
  readonly now?: () => number;
}

interface Entry {
  readonly snapshot: Snapshot;
  /** When the entry stops being used, ms since the epoch. */
  readonly expiresAtMs: number;
  /** {@link snapshotBytes} of the snapshot, computed once. */
  readonly bytes: number;
}

/** A least-recently-used map of snapshots with per-entry expiry, bounded in bytes and in entries. */
export class SnapshotCache {
  /** Most recently used last (a `Map` keeps insertion order; a use re-inserts). */
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private totalBytes = 0;
  private lastSweepMs: number;
  /** Most bytes the entries may take together, as estimated by {@link snapshotBytes}. */
  readonly maxBytes: number;
  /** Most entries kept. */
  readonly maxEntries: number;

  /** @throws {RangeError} when `maxBytes` or `maxEntries` is not an integer >= 0. */
  constructor(options: SnapshotCacheOptions = {}) {
    const { maxBytes = DEFAULT_CACHE_BYTES, maxEntries = DEFAULT_CACHE_ENTRIES, now = Date.now } = options;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`SnapshotCache: maxBytes must be a whole number of bytes >= 0, got ${maxBytes}`);
    }
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) {
      throw new RangeError(`SnapshotCache: maxEntries must be an integer >= 0, got ${maxEntries}`);
    }
    this.maxBytes = maxBytes;
    this.maxEntries = maxEntries;
    this.now = now;
    this.lastSweepMs = now();
  }

  /** The cached snapshot for `key`, if present and not expired (an expired entry is dropped). */
  get(key: string): Snapshot | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.remove(key, entry);
    if (entry.expiresAtMs <= this.now()) return undefined;
    this.entries.set(key, entry); // most recently used last
    this.totalBytes += entry.bytes;
    return entry.snapshot;
  }

  /**
   * Remembers `snapshot` for `key` for `ttlSeconds` **seconds**, replacing what was cached for it,
   * then drops expired entries and least recently used ones until both limits hold. A snapshot
   * estimated larger than `maxBytes` is not cached (and the older entry for `key` is forgotten).
   */
  set(key: string, snapshot: Snapshot, ttlSeconds: number): void {
    const previous = this.entries.get(key);
    if (previous !== undefined) this.remove(key, previous);
    const bytes = snapshotBytes(snapshot);
    if (bytes > this.maxBytes || this.maxEntries === 0) return;
    const now = this.now();
    this.entries.set(key, { snapshot, expiresAtMs: now + ttlSeconds * 1000, bytes });
    this.totalBytes += bytes;
    this.dropExpired(now);
    if (this.totalBytes <= this.maxBytes && this.entries.size <= this.maxEntries) return;
    for (const [oldestKey, oldest] of this.entries) {
      if (this.totalBytes <= this.maxBytes && this.entries.size <= this.maxEntries) break;
      this.remove(oldestKey, oldest); // never the new entry: it alone fits both limits
    }
  }

  /** Forgets `key`. */
  delete(key: string): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) this.remove(key, entry);
  }

  /** Number of entries held, expired ones not yet dropped included. */
  get size(): number {
    return this.entries.size;
  }

  /** Estimated **bytes** of the entries held ({@link snapshotBytes} summed), at most `maxBytes`. */
  get bytes(): number {
    return this.totalBytes;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.totalBytes -= entry.bytes;
  }

  /**
   * Drops expired entries from the least recently used end up to the first live one, and, at most
   * once every {@link CACHE_SWEEP_INTERVAL_MS}, everywhere (a read moves an entry to the recent end
   * without renewing its expiry, so an expired entry can sit behind a live one).
   */
  private dropExpired(now: number): void {
    const sweepAll = now - this.lastSweepMs >= CACHE_SWEEP_INTERVAL_MS;
    if (sweepAll) this.lastSweepMs = now;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs <= now) this.remove(key, entry);
      else if (!sweepAll) return;
    }
  }
}
