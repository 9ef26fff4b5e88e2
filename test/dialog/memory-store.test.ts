/**
 * The in-memory store's entry cap: never more than `maxEntries` states, the least recently used
 * evicted first, evictions counted and logged (rate-limited); the expiry sweep still runs.
 * (The store contract itself is in store.test.ts.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_MAX_ENTRIES,
  EVICTION_WARNING_INTERVAL_MS,
  MemoryStore,
  type MemoryStoreOptions,
} from '../../src/dialog/store/memory-store.js';
import { snapshotOf } from '../../src/dialog/store/state-codec.js';
import type { DialogState, StateKey } from '../../src/dialog/store/store.js';
import { ACCOUNT, textFrom } from '../support/messages.js';

const key = (openid: string): StateKey => ({ account: ACCOUNT, openid });
const stateOf = (openid: string): DialogState => ({
  dialog: 'd',
  version: 'v',
  messages: [{ ...textFrom(openid, 'hi'), MsgId: '7300000000000000001' }],
  effects: [],
});

function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function warnings() {
  const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
  return { lines, logger: { warn: (fields: object, message: string) => lines.push({ fields: fields as Record<string, unknown>, message }) } };
}

const stores: MemoryStore[] = [];
function store(options: MemoryStoreOptions): MemoryStore {
  const s = new MemoryStore({ sweepIntervalMs: 0, ...options });
  stores.push(s);
  return s;
}
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe('MemoryStore entry cap', () => {
  it('defaults to 100 000 entries', () => {
    expect(DEFAULT_MAX_ENTRIES).toBe(100_000);
    expect(store({}).maxEntries).toBe(100_000);
  });

  it('never holds more than maxEntries states; the oldest go first', async () => {
    const s = store({ maxEntries: 3 });
    for (let u = 0; u < 10; u += 1) {
      await s.save(key(`o${u}`), stateOf(`o${u}`), 60);
      expect(s.size).toBeLessThanOrEqual(3);
    }
    for (let u = 0; u < 7; u += 1) expect(await s.load(key(`o${u}`))).toBeUndefined();
    for (let u = 7; u < 10; u += 1) expect(await s.load(key(`o${u}`))).toEqual(stateOf(`o${u}`));
    expect(s.evictions).toBe(7);
  });

  it('evicts the least recently used state: a read counts as a use', async () => {
    const s = store({ maxEntries: 3 });
    for (const u of ['a', 'b', 'c']) await s.save(key(u), stateOf(u), 60);
    await s.read(key('a'));
    await s.save(key('d'), stateOf('d'), 60);
    expect(await s.load(key('b'))).toBeUndefined();
    for (const u of ['a', 'c', 'd']) expect(await s.load(key(u))).toBeDefined();
  });

  it('caps states written by commit too', async () => {
    const s = store({ maxEntries: 2 });
    for (const u of ['a', 'b', 'c']) {
      const result = await s.commit(key(u), snapshotOf(''), stateOf(u), 60);
      expect(result.committed).toBe(true);
    }
    expect(s.size).toBe(2);
    expect(await s.load(key('a'))).toBeUndefined();
    expect(s.evictions).toBe(1);
  });

  it('evicts nothing when a full store overwrites a state it holds', async () => {
    const s = store({ maxEntries: 2 });
    await s.save(key('a'), stateOf('a'), 60);
    await s.save(key('b'), stateOf('b'), 60);
    await s.save(key('a'), stateOf('a'), 60);
    expect(s.size).toBe(2);
    expect(s.evictions).toBe(0);
  });

  it('drops expired states before evicting live ones, and does not count them as evictions', async () => {
    const clock = fakeClock();
    const { lines, logger } = warnings();
    const s = store({ maxEntries: 2, now: clock.now, logger });
    await s.save(key('a'), stateOf('a'), 1);
    await s.save(key('b'), stateOf('b'), 60);
    clock.advance(2_000);
    await s.save(key('c'), stateOf('c'), 60);
    expect(await s.load(key('b'))).toBeDefined();
    expect(await s.load(key('c'))).toBeDefined();
    expect(s.evictions).toBe(0);
    expect(lines).toEqual([]);
  });

  it('warns on the first eviction, then at most once per interval with the count since the last warning', async () => {
    const clock = fakeClock();
    const { lines, logger } = warnings();
    const s = store({ maxEntries: 1, now: clock.now, logger });
    await s.save(key('u0'), stateOf('u0'), 3600);
    await s.save(key('u1'), stateOf('u1'), 3600); // evicts u0: first warning
    expect(lines).toHaveLength(1);
    expect(lines[0]?.fields).toMatchObject({ evicted: 1, totalEvicted: 1, maxEntries: 1 });
    expect(lines[0]?.message).toMatch(/maxEntries/);
    for (let u = 2; u < 12; u += 1) await s.save(key(`u${u}`), stateOf(`u${u}`), 3600); // 10 more, quiet
    expect(lines).toHaveLength(1);
    clock.advance(EVICTION_WARNING_INTERVAL_MS);
    await s.save(key('u12'), stateOf('u12'), 3600);
    expect(lines).toHaveLength(2);
    expect(lines[1]?.fields).toMatchObject({ evicted: 11, totalEvicted: 12, maxEntries: 1 });
    expect(s.evictions).toBe(12);
  });

  it('refuses a cap that is not a positive integer', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
      expect(() => new MemoryStore({ sweepIntervalMs: 0, maxEntries })).toThrow(RangeError);
    }
  });

  it('still sweeps expired states on its timer', async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const s = store({ sweepIntervalMs: 1_000, now: () => Date.now() });
    await s.save(key('a'), stateOf('a'), 1);
    await s.save(key('b'), stateOf('b'), 60);
    expect(s.size).toBe(2);
    vi.advanceTimersByTime(2_000);
    expect(s.size).toBe(1);
  });
});
