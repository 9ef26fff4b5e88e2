/**
 * The snapshots this process last committed, per user: a continuing turn plans from the cached
 * snapshot and sends only the compare-and-set commit (one round trip). A stale entry (another
 * process moved the state on) costs nothing but a refused commit, which returns the current value.
 *
 * Bounded: at most `maxEntries` users (least recently used dropped first), each entry valid for the
 * state's time to live.
 *
 * @module
 */
import type { Snapshot } from './store/store.js';

interface Entry {
  readonly snapshot: Snapshot;
  /** When the entry stops being used, ms since the epoch. */
  readonly expiresAtMs: number;
}

/** A least-recently-used map of snapshots with per-entry expiry. */
export class SnapshotCache {
  private readonly entries = new Map<string, Entry>();

  /**
   * @param maxEntries - most users kept; `0` disables the cache.
   * @param now - the clock, milliseconds since the epoch.
   */
  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached snapshot for `key`, if present and not expired. */
  get(key: string): Snapshot | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (entry.expiresAtMs <= this.now()) return undefined;
    this.entries.set(key, entry); // most recently used last
    return entry.snapshot;
  }

  /** Remembers `snapshot` for `key` for `ttlSeconds` **seconds**. */
  set(key: string, snapshot: Snapshot, ttlSeconds: number): void {
    if (this.maxEntries === 0) return;
    this.entries.delete(key);
    this.entries.set(key, { snapshot, expiresAtMs: this.now() + ttlSeconds * 1000 });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  /** Forgets `key`. */
  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Number of entries held, expired ones not yet dropped included. */
  get size(): number {
    return this.entries.size;
  }
}
