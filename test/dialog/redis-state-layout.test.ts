/**
 * How the Redis store lays a state out (format 2: a header, and the messages and effects as
 * append-only strings) and what a continuing turn sends: only what it adds, so its bytes do not
 * grow with the dialog's length; a format-1 value (the whole state in one string) is still read and
 * continued; conflicts, expiry and deletion cover every key of the state. Runs on ioredis-mock and,
 * when REDIS_URL is set, on real Redis.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import RedisMock from 'ioredis-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defineDialog, record } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRouter } from '../../src/dialog/router.js';
import { stateKeyString } from '../../src/dialog/store/keys.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { effectsKey, messagesKey, RedisStore, versionKey } from '../../src/dialog/store/redis-store.js';
import { encodeState } from '../../src/dialog/store/state-codec.js';
import type { DialogState, StateKey } from '../../src/dialog/store/store.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { text } from '../../src/wechat/replies.js';
import { ACCOUNT, textFrom } from '../support/messages.js';
import { deleteRedisKeys } from '../support/processes.js';
import { uniqueKeyPrefix } from '../support/stores.js';

/** Echoes each message. */
const echo = defineDialog('echo', function* () {
  let message: InboundMessage = yield text('ready');
  for (;;) message = yield text(`echo ${message.MsgType === 'text' ? message.Content : message.MsgType}`);
});
/** Answers with every text it got since it started, joined by `,` (the reply shows the history it saw). */
const log = defineDialog('log', function* () {
  const seen: string[] = [];
  let message: InboundMessage = yield text('ready');
  for (;;) {
    seen.push(message.MsgType === 'text' ? message.Content : message.MsgType);
    message = yield text(seen.join(','));
  }
});
/** Records one effect per message: the effects part grows with the history too. */
let tallies = 0;
const tally = defineDialog('tally', function* () {
  let message: InboundMessage = yield text('ready');
  for (;;) {
    const n = yield* record(() => (tallies += 1));
    message = yield text(`tally ${n} ${message.MsgType === 'text' ? message.Content : ''}`);
  }
});
const router = createRouter({
  routes: [
    { match: { text: 'echo' }, dialog: echo },
    { match: { text: 'log' }, dialog: log },
    { match: { text: 'tally' }, dialog: tally },
  ],
  fallback: null,
});

/** One commit as the store sent it: the write mode and the bytes of every argument (keys included). */
interface SentCommit {
  readonly mode: string;
  readonly bytes: number;
}

/** A Redis (mock or real) for these tests: stores sharing its data, each with its client's commits recorded. */
interface Backend {
  readonly name: string;
  /** A client for raw looks at the keys. */
  readonly admin: Redis;
  readonly keyPrefix: string;
  /** A new store on the same data (another "process"), and the commits it sends. */
  open(): { store: RedisStore; commits: SentCommit[]; client: Redis };
  cleanup(): Promise<void>;
}

type ClientWithCommit = Redis & { dialogCommit: (...args: (string | number)[]) => Promise<string[]> };

/** Records the arguments of every `dialogCommit` the store sends through `client`. */
function spyOnCommits(client: Redis): SentCommit[] {
  const commits: SentCommit[] = [];
  const scripted = client as ClientWithCommit;
  const original = scripted.dialogCommit.bind(client);
  scripted.dialogCommit = (...args) => {
    commits.push({ mode: String(args[7]), bytes: args.reduce<number>((sum, a) => sum + Buffer.byteLength(String(a)), 0) });
    return original(...args);
  };
  return commits;
}

function mockBackend(): Backend {
  const host = `mock-${randomBytes(6).toString('hex')}`; // instances with the same host share one dataset
  const keyPrefix = uniqueKeyPrefix();
  const stores: RedisStore[] = [];
  const admin = new RedisMock({ host, port: 6379 }) as unknown as Redis;
  return {
    name: 'ioredis-mock',
    admin,
    keyPrefix,
    open() {
      const client = new RedisMock({ host, port: 6379 }) as unknown as Redis;
      const store = new RedisStore({ redis: client, keyPrefix });
      stores.push(store);
      return { store, commits: spyOnCommits(client), client };
    },
    async cleanup() {
      await deleteRedisKeys(admin, keyPrefix);
      await Promise.all(stores.map((s) => s.close()));
      admin.disconnect();
    },
  };
}

function realBackend(url: string): Backend {
  const keyPrefix = uniqueKeyPrefix();
  const stores: RedisStore[] = [];
  const admin = new Redis(url);
  return {
    name: 'real Redis',
    admin,
    keyPrefix,
    open() {
      const client = createRedisClient(url);
      const store = new RedisStore({ redis: client, keyPrefix });
      stores.push(store);
      return { store, commits: spyOnCommits(client), client };
    },
    async cleanup() {
      await deleteRedisKeys(admin, keyPrefix);
      await Promise.all(stores.map((s) => s.close()));
      admin.disconnect();
    },
  };
}

const backends: { name: string; create: () => Backend }[] = [{ name: 'ioredis-mock', create: mockBackend }];
const url = process.env.REDIS_URL;
if (url) backends.push({ name: 'real Redis', create: () => realBackend(url) });

describe.each(backends)('the Redis store on $name: format 2, appends', ({ create }) => {
  let backend: Backend;
  beforeEach(() => {
    backend = create();
  });
  afterEach(() => backend.cleanup());

  const keyOf = (openid: string): StateKey => ({ account: ACCOUNT, openid });
  const storageKey = (openid: string): string => stateKeyString(backend.keyPrefix, keyOf(openid));
  /** A fixed-width text, so that every turn's message has the same size. */
  const numbered = (n: number): string => `m${String(n).padStart(5, '0')}`;
  /** Increasing CreateTimes: each message is newer than every remembered one (no lookup needed). */
  let clock = 1_700_000_000;
  const at = (): number => (clock += 1);

  it('a continuing turn sends as many bytes at 500 messages as at 10, and Redis holds the history', async () => {
    const { store, commits, client } = backend.open();
    const engine = new DialogEngine({ router, store, ttlSeconds: 600, maxMessages: 1000 });
    const openid = 'oLayoutLong00000000000001';
    expect((await engine.handle(textFrom(openid, 'echo', at()))).outcome).toBe('started');
    const sent = new Map<number, { commit: SentCommit; socket?: number }>();
    for (let history = 1; history < 500; history += 1) {
      const before = commits.length;
      const written = client.stream?.bytesWritten;
      const result = await engine.handle(textFrom(openid, numbered(history), at()));
      expect(result.reply).toEqual(text(`echo ${numbered(history)}`));
      expect(commits.length, 'one commit per continuing turn').toBe(before + 1);
      const socket = written === undefined ? undefined : client.stream.bytesWritten - written;
      sent.set(history, { commit: commits[commits.length - 1]!, ...(socket === undefined ? {} : { socket }) });
    }
    const at10 = sent.get(10)!;
    const at499 = sent.get(499)!;
    expect(at10.commit.mode).toBe('a');
    expect(at499.commit.mode).toBe('a');
    // The header's counts gain a digit or two; nothing else differs.
    expect(at499.commit.bytes).toBeLessThanOrEqual(at10.commit.bytes + 4);
    expect(at499.commit.bytes).toBeLessThan(3_000);
    if (at10.socket !== undefined) expect(at499.socket!).toBeLessThanOrEqual(at10.socket + 8);
    console.log(`[layout] continuing turn at 10 / 499 messages: script args ${at10.commit.bytes} / ${at499.commit.bytes} B` + (at10.socket === undefined ? '' : `, socket ${at10.socket} / ${at499.socket} B`));

    const header = (await backend.admin.get(storageKey(openid))) ?? '';
    expect(header.startsWith('{"f":2,')).toBe(true);
    expect(JSON.parse(header)).toMatchObject({ dialog: 'echo', messages: 500, effects: 0 });
    expect(await backend.admin.exists(effectsKey(storageKey(openid)))).toBe(0);
    // Another process (no cache) reads the whole history back.
    const other = backend.open().store;
    const state = await other.load(keyOf(openid));
    expect(state?.messages).toHaveLength(500);
    expect(state?.messages.map((m) => (m.MsgType === 'text' ? m.Content : '')).slice(0, 3)).toEqual(['echo', numbered(1), numbered(2)]);
  }, 120_000);

  it('effects are appended too: bytes per turn stay flat, and every effect is read back in order', async () => {
    const { store, commits } = backend.open();
    const engine = new DialogEngine({ router, store, ttlSeconds: 600, maxMessages: 1000 });
    const openid = 'oLayoutEffects00000000001';
    await engine.handle(textFrom(openid, 'tally', at()));
    const first = tallies;
    const sizes: number[] = [];
    for (let history = 1; history <= 200; history += 1) {
      await engine.handle(textFrom(openid, numbered(history), at()));
      expect(commits.at(-1)?.mode).toBe('a');
      sizes.push(commits.at(-1)!.bytes);
    }
    // The counter (in the effect, and in the 5 recent replies) and the header's counts gain digits
    // as they grow: allow a few bytes for that, nothing that grows with the history.
    expect(sizes[199]!).toBeLessThanOrEqual(sizes[9]! + 24);
    const state = await backend.open().store.load(keyOf(openid));
    expect(state?.effects).toHaveLength(200);
    expect(state?.effects.map((e) => ('ok' in e ? e.ok : undefined))).toEqual(Array.from({ length: 200 }, (_, i) => first + i + 1));
    // A fresh engine on another store replays them and carries on.
    const fresh = new DialogEngine({ router, store: backend.open().store, ttlSeconds: 600, maxMessages: 1000 });
    expect((await fresh.handle(textFrom(openid, 'next', at()))).reply).toEqual(text(`tally ${first + 201} next`));
  }, 60_000);

  it('a format-1 value (the whole state in one string) is read, continued, and written again in format 2', async () => {
    const openid = 'oLayoutFormat100000000001';
    const messages = [textFrom(openid, 'log', at()), textFrom(openid, 'a', at()), textFrom(openid, 'b', at())];
    const old: DialogState = { dialog: 'log', version: log.version, messages, effects: [], recent: [{ id: 'x', reply: null }] };
    // What the previous release wrote: the value, and a version beside it.
    await backend.admin.set(storageKey(openid), encodeState(old), 'EX', 60);
    await backend.admin.set(versionKey(storageKey(openid)), 'an-older-version', 'EX', 60);
    const { store, commits } = backend.open();
    expect(await store.load(keyOf(openid))).toEqual(old);
    const engine = new DialogEngine({ router, store, ttlSeconds: 60 });
    expect((await engine.handle(textFrom(openid, 'c', at()))).reply).toEqual(text('a,b,c'));
    expect(commits.map((c) => c.mode)).toEqual(['w']); // the whole state, in the new form
    const header = (await backend.admin.get(storageKey(openid))) ?? '';
    expect(JSON.parse(header)).toMatchObject({ f: 2, dialog: 'log', messages: 4, effects: 0 });
    const rewritten = (await store.load(keyOf(openid)))?.messages ?? [];
    expect(rewritten.slice(0, 3)).toEqual(messages);
    expect(await backend.admin.get(messagesKey(storageKey(openid)))).toBe(rewritten.map((m) => JSON.stringify(m)).join(','));
    // From then on, appends.
    expect((await engine.handle(textFrom(openid, 'd', at()))).reply).toEqual(text('a,b,c,d'));
    expect(commits.map((c) => c.mode)).toEqual(['w', 'a']);
    expect((await backend.open().store.load(keyOf(openid)))?.messages).toHaveLength(5);
  });

  it('an append planned before another process appended is refused, planned again from what is there, and then appends', async () => {
    const a = backend.open();
    const b = backend.open();
    const processA = new DialogEngine({ router, store: a.store, ttlSeconds: 60 });
    const processB = new DialogEngine({ router, store: b.store, ttlSeconds: 60 });
    const openid = 'oLayoutConflict0000000001';
    await processA.handle(textFrom(openid, 'log', at()));
    expect((await processA.handle(textFrom(openid, '1', at()))).reply).toEqual(text('1'));
    expect((await processA.handle(textFrom(openid, '2', at()))).reply).toEqual(text('1,2')); // A caches this state
    expect((await processB.handle(textFrom(openid, '3', at()))).reply).toEqual(text('1,2,3')); // B appends meanwhile
    a.commits.length = 0;
    // A plans from its stale view ('1,2'), its append is refused, and the retry sees B's message.
    expect((await processA.handle(textFrom(openid, '4', at()))).reply).toEqual(text('1,2,3,4'));
    expect(a.commits.map((c) => c.mode)).toEqual(['a', 'a']);
    const state = await backend.open().store.load(keyOf(openid));
    expect(state?.messages.map((m) => (m.MsgType === 'text' ? m.Content : ''))).toEqual(['log', '1', '2', '3', '4']);
  });

  it('a stale append never lands, even when the stored header has the same length', async () => {
    const { store } = backend.open();
    const openid = 'oLayoutStale0000000000001';
    const k = keyOf(openid);
    const opening = textFrom(openid, 'log', at());
    const base: DialogState = { dialog: 'log', version: 'v', messages: [opening], effects: [] };
    const first = await store.commit(k, await store.read(k), base, 60);
    expect(first.committed).toBe(true);
    const x = textFrom(openid, 'x', at());
    const y = { ...x, Content: 'y' }; // the same size as x
    const other = backend.open().store;
    const seen = await other.read(k);
    expect((await other.commit(k, seen, { ...seen.state!, messages: [...seen.state!.messages, x] }, 60)).committed).toBe(true);
    const stale = await store.commit(k, first.snapshot, { ...base, messages: [opening, y] }, 60);
    expect(stale.committed).toBe(false);
    expect(stale.snapshot.state?.messages).toEqual([opening, x]);
    expect((await store.commit(k, stale.snapshot, { ...stale.snapshot.state!, messages: [opening, x, y] }, 60)).committed).toBe(true);
    expect((await other.load(k))?.messages).toEqual([opening, x, y]);
  });

  it('every key of the state gets the new TTL on each commit, appends included', async () => {
    const { store } = backend.open();
    const openid = 'oLayoutTtl000000000000001';
    const k = keyOf(openid);
    const opening = textFrom(openid, 'tally', at());
    const started = await store.commit(k, await store.read(k), { dialog: 'tally', version: 'v', messages: [opening], effects: [{ ok: 1 }] }, 5);
    const keys = [storageKey(openid), versionKey(storageKey(openid)), messagesKey(storageKey(openid)), effectsKey(storageKey(openid))];
    for (const key of keys) expect(await backend.admin.ttl(key), key).toBeLessThanOrEqual(5);
    const next: DialogState = { ...started.snapshot.state!, messages: [opening, textFrom(openid, 'more', at())], effects: [{ ok: 1 }, { ok: 2 }] };
    const appended = await store.commit(k, started.snapshot, next, 100);
    expect(appended.committed).toBe(true);
    for (const key of keys) {
      const ttl = await backend.admin.ttl(key);
      expect(ttl, key).toBeGreaterThan(90);
      expect(ttl, key).toBeLessThanOrEqual(100);
    }
    // An append that adds no effect still renews the effects' TTL.
    const third = await store.commit(k, appended.snapshot, { ...next, messages: [...next.messages, textFrom(openid, 'again', at())] }, 200);
    expect(third.committed).toBe(true);
    for (const key of keys) expect(await backend.admin.ttl(key), key).toBeGreaterThan(100);
    expect((await store.load(k))?.effects).toEqual([{ ok: 1 }, { ok: 2 }]);
  });

  it('delete, and a commit that removes the state, remove every key of the state (not the memory of handled messages)', async () => {
    const { store } = backend.open();
    for (const how of ['delete', 'commit'] as const) {
      const openid = `oLayoutDelete${how}`.padEnd(25, '0');
      const k = keyOf(openid);
      const opening = textFrom(openid, 'tally', at());
      const handled = { id: `${openid}|m|${opening.MsgId}`, reply: null, createTime: opening.CreateTime, ttlSeconds: 60 };
      const written = await store.commit(k, await store.read(k), { dialog: 'tally', version: 'v', messages: [opening], effects: [{ ok: 1 }] }, 60, handled);
      const keys = [storageKey(openid), versionKey(storageKey(openid)), messagesKey(storageKey(openid)), effectsKey(storageKey(openid))];
      expect(await backend.admin.exists(...keys)).toBe(4);
      if (how === 'delete') await store.delete(k);
      else expect((await store.commit(k, written.snapshot, undefined, 60)).committed).toBe(true);
      expect(await backend.admin.exists(...keys), how).toBe(0);
      expect(await store.load(k)).toBeUndefined();
      expect(await backend.admin.exists(`${storageKey(openid)}:t`)).toBe(1);
    }
  });

  it('a state whose messages were lost (evicted) reads as absent, and the next commit writes it whole', async () => {
    const { store, commits } = backend.open();
    const openid = 'oLayoutLost00000000000001';
    const k = keyOf(openid);
    const opening = textFrom(openid, 'log', at());
    const written = await store.commit(k, await store.read(k), { dialog: 'log', version: 'v', messages: [opening], effects: [] }, 60);
    await backend.admin.del(messagesKey(storageKey(openid)));
    const lost = await store.commit(k, written.snapshot, { ...written.snapshot.state!, messages: [opening, textFrom(openid, 'x', at())] }, 60);
    expect(lost.committed).toBe(false);
    expect(lost.snapshot.state).toBeUndefined();
    const fresh: DialogState = { dialog: 'log', version: 'v', messages: [textFrom(openid, 'log', at())], effects: [] };
    expect((await store.commit(k, lost.snapshot, fresh, 60)).committed).toBe(true);
    expect(commits.map((c) => c.mode)).toEqual(['w', 'a', 'w']);
    expect(await store.load(k)).toEqual(fresh);
  });

  it('a new dialog replacing an ended one is written whole, and its predecessor\'s effects go', async () => {
    const { store, commits } = backend.open();
    const openid = 'oLayoutReplace00000000001';
    const k = keyOf(openid);
    const ended = await store.commit(k, await store.read(k), { dialog: 'tally', version: 'v', messages: [textFrom(openid, 'tally', at())], effects: [{ ok: 1 }], ended: true }, 60);
    const fresh: DialogState = { dialog: 'log', version: 'v', messages: [textFrom(openid, 'log', at())], effects: [] };
    expect((await store.commit(k, ended.snapshot, fresh, 60)).committed).toBe(true);
    expect(commits.map((c) => c.mode)).toEqual(['w', 'w']);
    expect(await backend.admin.exists(effectsKey(storageKey(openid)))).toBe(0);
    expect(await backend.open().store.load(k)).toEqual(fresh);
  });
});
