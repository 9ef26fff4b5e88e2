/**
 * The engine's snapshot cache: bounded in estimated bytes and in entries, least recently used
 * dropped first, expired entries dropped, an entry larger than the budget not cached; and the
 * engine gives the same replies whatever the cache holds (a miss only costs a read).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defineDialog } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRouter } from '../../src/dialog/router.js';
import {
  CACHE_ENTRY_OVERHEAD_BYTES,
  DEFAULT_CACHE_BYTES,
  DEFAULT_CACHE_ENTRIES,
  SnapshotCache,
  snapshotBytes,
} from '../../src/dialog/snapshot-cache.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { encodeState, snapshotOf } from '../../src/dialog/store/state-codec.js';
import type { DialogState, DialogStore, Snapshot } from '../../src/dialog/store/store.js';
import { text } from '../../src/wechat/replies.js';
import { ACCOUNT, textFrom } from '../support/messages.js';

/** A real snapshot (token and decoded state) of a dialog with `messages` texts of `chars` characters. */
function bigSnapshot(openid: string, messages: number, chars: number): Snapshot {
  const state: DialogState = {
    dialog: 'survey',
    version: 'v1',
    messages: Array.from({ length: messages }, (_, i) => textFrom(openid, `${'长'.repeat(chars)}${i}`)),
    effects: [],
  };
  return snapshotOf(encodeState(state));
}

/** A snapshot whose token is exactly `length` characters (the cache never parses it). */
function sizedSnapshot(length: number): Snapshot {
  return { state: undefined, token: 'x'.repeat(length) };
}

function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('the estimate', () => {
  it('is 4 bytes per token character plus a fixed overhead per entry', () => {
    expect(snapshotBytes({ state: undefined, token: '' })).toBe(CACHE_ENTRY_OVERHEAD_BYTES);
    expect(snapshotBytes(sizedSnapshot(1000))).toBe(4000 + CACHE_ENTRY_OVERHEAD_BYTES);
  });

  it('has the documented defaults', () => {
    expect(DEFAULT_CACHE_BYTES).toBe(64 * 1024 * 1024);
    expect(DEFAULT_CACHE_ENTRIES).toBe(10_000);
  });
});

describe('SnapshotCache', () => {
  it('stays under its byte budget while filled with many large states', () => {
    const maxBytes = 1024 * 1024;
    const cache = new SnapshotCache({ maxBytes });
    const openid = (u: number) => `oUser${String(u).padStart(4, '0')}`; // every snapshot the same size
    const one = snapshotBytes(bigSnapshot(openid(0), 100, 50));
    expect(one).toBeGreaterThan(maxBytes / 100); // so that 200 of them cannot all fit
    for (let u = 0; u < 200; u += 1) {
      const snapshot = bigSnapshot(openid(u), 100, 50);
      cache.set(`u${u}`, snapshot, 60);
      expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
      expect(cache.get(`u${u}`)).toBe(snapshot); // the newest one is always kept
    }
    expect(cache.size).toBe(Math.floor(maxBytes / one));
    expect(cache.bytes).toBe(cache.size * one);
    expect(cache.maxBytes).toBe(maxBytes);
  });

  it('evicts the least recently used entry first', () => {
    const per = snapshotBytes(sizedSnapshot(1000));
    const cache = new SnapshotCache({ maxBytes: 3 * per });
    const [a, b, c, d] = [sizedSnapshot(1000), sizedSnapshot(1000), sizedSnapshot(1000), sizedSnapshot(1000)];
    cache.set('a', a, 60);
    cache.set('b', b, 60);
    cache.set('c', c, 60);
    expect(cache.get('a')).toBe(a); // a is now the most recently used
    cache.set('d', d, 60);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(a);
    expect(cache.get('c')).toBe(c);
    expect(cache.get('d')).toBe(d);
    expect(cache.size).toBe(3);
    expect(cache.bytes).toBe(3 * per);
  });

  it('replacing an entry counts its new size, not both', () => {
    const cache = new SnapshotCache({ maxBytes: 1_000_000 });
    cache.set('a', sizedSnapshot(1000), 60);
    cache.set('a', sizedSnapshot(2000), 60);
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(snapshotBytes(sizedSnapshot(2000)));
  });

  it('keeps the count limit too (least recently used first)', () => {
    const cache = new SnapshotCache({ maxEntries: 2 });
    cache.set('a', sizedSnapshot(1), 60);
    cache.set('b', sizedSnapshot(1), 60);
    cache.get('a');
    cache.set('c', sizedSnapshot(1), 60);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    expect(cache.get('c')).toBeDefined();
    expect(cache.size).toBe(2);
  });

  it('drops an expired entry when it is read', () => {
    const clock = fakeClock();
    const cache = new SnapshotCache({ now: clock.now });
    cache.set('a', sizedSnapshot(100), 60);
    clock.advance(59_999);
    expect(cache.get('a')).toBeDefined();
    clock.advance(1);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('drops expired entries in passing when inserting, even ones never read again', () => {
    const clock = fakeClock();
    const cache = new SnapshotCache({ now: clock.now });
    cache.set('a', sizedSnapshot(100), 10);
    cache.set('b', sizedSnapshot(100), 100);
    cache.get('a'); // a is now behind b in the recency order, b is live: a sweep must find a
    clock.advance(11_000);
    cache.set('c', sizedSnapshot(100), 100);
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBe(2 * snapshotBytes(sizedSnapshot(100)));
    expect(cache.get('b')).toBeDefined();
    expect(cache.get('c')).toBeDefined();
  });

  it('drops expired entries before evicting live ones', () => {
    const clock = fakeClock();
    const per = snapshotBytes(sizedSnapshot(100));
    const cache = new SnapshotCache({ maxBytes: 2 * per, now: clock.now });
    cache.set('a', sizedSnapshot(100), 1);
    cache.set('b', sizedSnapshot(100), 100);
    clock.advance(2_000);
    cache.set('c', sizedSnapshot(100), 100);
    expect(cache.get('b')).toBeDefined();
    expect(cache.get('c')).toBeDefined();
    expect(cache.bytes).toBe(2 * per);
  });

  it('does not cache an entry larger than the budget, and forgets the older one for that key', () => {
    const cache = new SnapshotCache({ maxBytes: 10_000 });
    cache.set('other', sizedSnapshot(10), 60);
    cache.set('a', sizedSnapshot(10), 60);
    cache.set('a', sizedSnapshot(10_000), 60); // 40 kB estimated
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('other')).toBeDefined();
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(snapshotBytes(sizedSnapshot(10)));
  });

  it('forgets a deleted entry and its bytes', () => {
    const cache = new SnapshotCache();
    cache.set('a', sizedSnapshot(100), 60);
    cache.delete('a');
    cache.delete('never');
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('caches nothing with a budget of 0 bytes or 0 entries', () => {
    for (const cache of [new SnapshotCache({ maxBytes: 0 }), new SnapshotCache({ maxEntries: 0 })]) {
      cache.set('a', sizedSnapshot(0), 60);
      expect(cache.get('a')).toBeUndefined();
      expect(cache.size).toBe(0);
    }
  });

  it('refuses a negative or fractional budget', () => {
    expect(() => new SnapshotCache({ maxBytes: -1 })).toThrow(RangeError);
    expect(() => new SnapshotCache({ maxBytes: Number.NaN })).toThrow(RangeError);
    expect(() => new SnapshotCache({ maxEntries: 1.5 })).toThrow(RangeError);
  });
});

describe('the engine with a small cache', () => {
  const echo = defineDialog('echo', function* () {
    let message = yield text('start');
    for (let n = 1; ; n += 1) {
      if (message.MsgType === 'text' && message.Content === 'bye') return text(`bye after ${n}`);
      message = yield text(`echo ${n}: ${message.MsgType === 'text' ? message.Content : ''}`);
    }
  });
  const router = createRouter({ routes: [{ match: { text: 'hi' }, dialog: echo }], fallback: null });
  const stores: MemoryStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  /** A memory store that counts `read` calls (a cache miss costs one). */
  function countingStore(): { store: DialogStore; reads: () => number } {
    const memory = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(memory);
    let reads = 0;
    const store: DialogStore = {
      load: (key) => memory.load(key),
      save: (key, state, ttl) => memory.save(key, state, ttl),
      read: (key) => {
        reads += 1;
        return memory.read(key);
      },
      commit: (key, expected, next, ttl) => memory.commit(key, expected, next, ttl),
      delete: (key) => memory.delete(key),
      close: () => memory.close(),
    };
    return { store, reads: () => reads };
  }

  /** Eight users talking at once, interleaved; returns every reply, in order. */
  async function conversation(engine: DialogEngine): Promise<string[]> {
    const replies: string[] = [];
    const users = Array.from({ length: 8 }, (_, u) => `oUser${u}`);
    const lines = ['hi', 'one', '长'.repeat(300), 'three', 'bye'];
    for (const [n, line] of lines.entries()) {
      const results = await Promise.all(users.map((u) => engine.handle(textFrom(u, line, 1_700_000_000 + n))));
      for (const r of results) replies.push(r.reply?.MsgType === 'text' ? r.reply.Content : `<${r.outcome}>`);
    }
    return replies;
  }

  it('gives the same replies with no room in the cache, a little, or plenty; a miss only costs a read', async () => {
    const none = countingStore();
    const little = countingStore();
    const plenty = countingStore();
    const withNone = await conversation(new DialogEngine({ router, store: none.store, cacheBytes: 1 }));
    const withLittle = await conversation(new DialogEngine({ router, store: little.store, cacheBytes: 3 * 4096 }));
    const withPlenty = await conversation(new DialogEngine({ router, store: plenty.store }));
    expect(withNone).toEqual(withPlenty);
    expect(withLittle).toEqual(withPlenty);
    expect(withPlenty.slice(-8)).toEqual(Array.from({ length: 8 }, () => 'bye after 4'));
    // Every turn reads when nothing can be cached; a cache can only save reads. (How many it saves
    // depends on when the engine trusts a cached view: round-trips.test.ts counts them on Redis.)
    expect(none.reads()).toBe(5 * 8);
    expect(little.reads()).toBeLessThanOrEqual(none.reads());
    expect(plenty.reads()).toBeLessThanOrEqual(little.reads());
    const stored = await plenty.store.load({ account: ACCOUNT, openid: 'oUser0' });
    expect(stored?.ended).toBe(true);
  });

  it('hands cacheBytes to the cache (which refuses a negative budget)', () => {
    const { store } = countingStore();
    expect(() => new DialogEngine({ router, store, cacheBytes: -1 })).toThrow(/maxBytes/);
    expect(() => new DialogEngine({ router, store, cacheBytes: 0 })).not.toThrow();
  });
});
