/**
 * The DialogStore contract, run against every store (test/support/stores.ts), plus how the Redis
 * store behaves when Redis cannot be reached.
 */
import { encodeState } from '../../src/dialog/store/state-codec.js';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { type DialogState, type StateKey, StoreUnavailableError } from '../../src/dialog/store/store.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { storeFactories, type StoreUnderTest, uniqueKeyPrefix } from '../support/stores.js';
import { expectCappedBackoff } from '../support/backoff.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const ACCOUNT = 'gh_0123456789ab';
const key = (openid: string, account = ACCOUNT): StateKey => ({ account, openid });

function text(openid: string, content: string, msgId: string, createTime = 1_700_000_000): InboundMessage {
  return { MsgType: 'text', ToUserName: ACCOUNT, FromUserName: openid, CreateTime: createTime, MsgId: msgId, Content: content };
}

function state(openid: string, overrides: Partial<DialogState> = {}): DialogState {
  return {
    dialog: 'accumulator',
    version: 'v1',
    messages: [text(openid, '累加', '1')],
    effects: [],
    ...overrides,
  };
}

describe.each(storeFactories())('DialogStore contract: $name', (factory) => {
  let s: StoreUnderTest;
  beforeEach(async () => {
    s = await factory.create();
  });
  afterEach(async () => {
    await s.cleanup();
  });

  it('loads undefined for a key never saved', async () => {
    expect(await s.store.load(key('oNobody'))).toBeUndefined();
  });

  it('returns what was saved, exactly: 64-bit MsgId, Chinese, emoji, ]]>, newlines, effects', async () => {
    const openid = 'oUser_1-abc';
    const saved: DialogState = {
      dialog: 'signup',
      version: 'a1b2c3',
      messages: [
        text(openid, '报名', '18446744073709551615'),
        text(openid, '张三 👨‍👩‍👧 ]]> <xml>\n第二行\r\n"quoted" \\ back\tslash', '9007199254740993', 1_700_000_005),
        { MsgType: 'event', Event: 'CLICK', EventKey: 'MENU_SIGNUP', ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1_700_000_009 },
        {
          MsgType: 'unknown',
          RawMsgType: 'miniprogrampage',
          ToUserName: ACCOUNT,
          FromUserName: openid,
          CreateTime: 1_700_000_010,
          MsgId: '24000000000000000001',
          Fields: { Title: '小程序', AppId: 'wx123' },
        },
      ],
      effects: [{ ok: { id: 42, name: '张三', tags: ['a', null, true], nested: { deep: [1.5, -3] } } }, {}, { error: 'HTTP 502 ]]>' }, { ok: null }],
    };
    await s.store.save(key(openid), saved, 60);
    const loaded = await s.store.load(key(openid));
    expect(loaded).toEqual(saved);
    expect(loaded?.messages[0]).toHaveProperty('MsgId', '18446744073709551615');
    expect(typeof (loaded?.messages[1] as { MsgId: unknown }).MsgId).toBe('string');
  });

  it('save replaces the previous state', async () => {
    await s.store.save(key('oA'), state('oA'), 60);
    const second = state('oA', { messages: [text('oA', '累加', '1'), text('oA', '3', '2')], effects: [{ ok: 7 }] });
    await s.store.save(key('oA'), second, 60);
    expect(await s.store.load(key('oA'))).toEqual(second);
  });

  it('delete removes the state; deleting a missing key is fine', async () => {
    await s.store.save(key('oA'), state('oA'), 60);
    await s.store.delete(key('oA'));
    expect(await s.store.load(key('oA'))).toBeUndefined();
    await expect(s.store.delete(key('oA'))).resolves.toBeUndefined();
    await expect(s.store.delete(key('oNeverSaved'))).resolves.toBeUndefined();
  });

  it('keeps different openids and different accounts apart', async () => {
    const a = state('oA', { dialog: 'a' });
    const b = state('oB', { dialog: 'b' });
    const otherAccount = state('oA', { dialog: 'other-account' });
    await s.store.save(key('oA'), a, 60);
    await s.store.save(key('oB'), b, 60);
    await s.store.save(key('oA', 'gh_other'), otherAccount, 60);

    expect(await s.store.load(key('oA'))).toEqual(a);
    expect(await s.store.load(key('oB'))).toEqual(b);
    expect(await s.store.load(key('oA', 'gh_other'))).toEqual(otherAccount);

    await s.store.delete(key('oA'));
    expect(await s.store.load(key('oA'))).toBeUndefined();
    expect(await s.store.load(key('oB'))).toEqual(b);
    expect(await s.store.load(key('oA', 'gh_other'))).toEqual(otherAccount);
  });

  it('sets the time to live in seconds', async () => {
    await s.store.save(key('oA'), state('oA'), 60);
    if (s.rawTtlSeconds) {
      const ttl = await s.rawTtlSeconds(key('oA'));
      expect(ttl).toBeGreaterThan(55);
      expect(ttl).toBeLessThanOrEqual(60);
      expect(await s.rawTtlSeconds(key('oMissing'))).toBe(-2);
    }
  });

  it('expires states after their TTL, and saving again renews it', async () => {
    // One timeline for both behaviours, so the suite waits ~1.2 s in all.
    await s.store.save(key('oExpires1'), state('oExpires1'), 1);
    await s.store.save(key('oExpires2', 'gh_other'), state('oExpires2'), 1);
    await s.store.save(key('oRenewed'), state('oRenewed'), 1);
    await s.store.save(key('oLong'), state('oLong'), 60);
    await sleep(600);
    await s.store.save(key('oRenewed'), state('oRenewed', { version: 'renewed' }), 1);
    await sleep(600);
    expect(await s.store.load(key('oExpires1'))).toBeUndefined();
    expect(await s.store.load(key('oExpires2', 'gh_other'))).toBeUndefined();
    expect(await s.store.load(key('oRenewed'))).toEqual(state('oRenewed', { version: 'renewed' }));
    expect(await s.store.load(key('oLong'))).toEqual(state('oLong'));
  });

  it('rejects a TTL that is not a positive integer number of seconds, and stores nothing', async () => {
    for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(s.store.save(key('oA'), state('oA'), ttl)).rejects.toThrow(RangeError);
    }
    expect(await s.store.load(key('oA'))).toBeUndefined();
  });

  it('a commit planned before a write that left no version (a server of an older release) is refused', async () => {
    if (!s.writeRaw) return;
    const k = key('oRolling');
    const first = await s.store.commit(k, await s.store.read(k), state('oRolling'), 60);
    expect(first.committed).toBe(true);
    // An older server writes the value alone, as it always did (no version beside it).
    const olderWrite = { ...state('oRolling'), messages: [...state('oRolling').messages, text('oRolling', 'from an older server', '7300000000000000099')] };
    await s.writeRaw(k, encodeState(olderWrite), 60);
    const stale = await s.store.commit(k, first.snapshot, { ...state('oRolling'), dialog: 'stale-plan' }, 60);
    expect(stale.committed).toBe(false);
    expect(stale.snapshot.state).toEqual(olderWrite);
    expect(await s.store.load(k)).toEqual(olderWrite);
    // Planned again from what is there, the commit goes through.
    expect((await s.store.commit(k, stale.snapshot, { ...olderWrite, dialog: 'fresh-plan' }, 60)).committed).toBe(true);
  });

  it('loads a corrupt or foreign-format stored value as undefined', async () => {
    if (!s.writeRaw) return;
    const corrupt = ['', 'not json', '{"f":1,"dialog":"x"', JSON.stringify({ ...state('oA'), f: 2 }), '{"f":1,"dialog":"x","version":"v","messages":[],"effects":[]}'];
    for (const [i, raw] of corrupt.entries()) {
      await s.writeRaw(key(`oCorrupt${i}`), raw, 60);
      expect(await s.store.load(key(`oCorrupt${i}`)), raw).toBeUndefined();
    }
    // ...and a later save overwrites it.
    await s.store.save(key('oCorrupt0'), state('oCorrupt0'), 60);
    expect(await s.store.load(key('oCorrupt0'))).toEqual(state('oCorrupt0'));
  });

  it('read gives the state and a token; commit writes when nothing changed in between', async () => {
    const k = key('oCas1');
    const empty = await s.store.read(k);
    expect(empty.state).toBeUndefined();
    expect((await s.store.commit(k, empty, state('oCas1'), 60)).committed).toBe(true);
    const first = await s.store.read(k);
    expect(first.state).toEqual(state('oCas1'));
    const next = state('oCas1', { messages: [...state('oCas1').messages, text('oCas1', 'b', '2')] });
    expect((await s.store.commit(k, first, next, 60)).committed).toBe(true);
    expect(await s.store.load(k)).toEqual(next);
    if (s.rawTtlSeconds) expect(await s.rawTtlSeconds(k)).toBe(60);
  });

  it('commit refuses, writing nothing, when another commit came first (compare-and-set)', async () => {
    const k = key('oCas2');
    const seenByA = await s.store.read(k);
    const seenByB = await s.store.read(k);
    const a = state('oCas2', { dialog: 'a' });
    const b = state('oCas2', { dialog: 'b' });
    expect((await s.store.commit(k, seenByA, a, 60)).committed).toBe(true);
    const refused = await s.store.commit(k, seenByB, b, 60);
    expect(refused.committed).toBe(false);
    // The refusal carries what is stored instead, ready to plan again from
    expect(refused.snapshot.state).toEqual(a);
    expect(await s.store.load(k)).toEqual(a);
    // B reads again and then succeeds on top of A
    expect((await s.store.commit(k, await s.store.read(k), b, 60)).committed).toBe(true);
    expect((await s.store.load(k))?.dialog).toBe('b');
  });

  it('commit with no next state deletes, also only if nothing changed', async () => {
    const k = key('oCas3');
    await s.store.save(k, state('oCas3'), 60);
    const seen = await s.store.read(k);
    await s.store.save(k, state('oCas3', { dialog: 'other' }), 60);
    expect((await s.store.commit(k, seen, undefined, 60)).committed).toBe(false);
    expect((await s.store.load(k))?.dialog).toBe('other');
    expect((await s.store.commit(k, await s.store.read(k), undefined, 60)).committed).toBe(true);
    expect(await s.store.load(k)).toBeUndefined();
  });

  it('of many concurrent commits over one snapshot, exactly one wins', async () => {
    const k = key('oCas4');
    const seen = await s.store.read(k);
    const results = (
      await Promise.all(Array.from({ length: 10 }, (_, i) => s.store.commit(k, seen, state('oCas4', { dialog: `d${i}` }), 60)))
    ).map((r) => r.committed);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await s.store.load(k))?.dialog).toBe(`d${results.indexOf(true)}`);
  });

  it('keeps the ended flag', async () => {
    const k = key('oCas5');
    await s.store.save(k, state('oCas5', { ended: true }), 60);
    expect((await s.store.load(k))?.ended).toBe(true);
  });

  it('is not affected by mutating the saved or the loaded object', async () => {
    type Mutable<T> = { -readonly [P in keyof T]: T[P] };
    const messages = [text('oA', '累加', '1')];
    const saved: Mutable<DialogState> = { dialog: 'accumulator', version: 'v1', messages, effects: [{ ok: { n: 1 } }] };
    await s.store.save(key('oA'), saved, 60);

    saved.dialog = 'changed';
    messages.push(text('oA', '2', '2'));
    (messages[0] as Mutable<InboundMessage>).CreateTime = 0;
    saved.effects = [];
    expect(await s.store.load(key('oA'))).toEqual(state('oA', { effects: [{ ok: { n: 1 } }] }));

    const loaded = (await s.store.load(key('oA'))) as Mutable<DialogState>;
    loaded.version = 'changed';
    (loaded.messages as InboundMessage[]).length = 0;
    expect(await s.store.load(key('oA'))).toEqual(state('oA', { effects: [{ ok: { n: 1 } }] }));
  });
});

describe('RedisStore when Redis cannot be reached', () => {
  // Port 1 on localhost: the connection is refused at once, over and over.
  const url = 'redis://127.0.0.1:1';

  it('rejects load, save and delete with StoreUnavailableError within ~3 s, without an unhandled error event', async () => {
    const consoleError = vi.spyOn(console, 'error');
    const errors: Error[] = [];
    const redis = createRedisClient(url, { commandTimeoutMs: 500, connectTimeoutMs: 500, onError: (err) => errors.push(err) });
    const store = new RedisStore({ redis, keyPrefix: 'test:unreachable:' });
    try {
      const started = Date.now();
      const results = await Promise.allSettled([
        store.load(key('oA')),
        store.save(key('oA'), state('oA'), 60),
        store.delete(key('oA')),
      ]);
      expect(Date.now() - started).toBeLessThan(3000);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const reason: unknown = result.status === 'rejected' ? result.reason : undefined;
        expect(reason).toBeInstanceOf(StoreUnavailableError);
        expect((reason as StoreUnavailableError).code).toBe('STORE_UNAVAILABLE');
        expect((reason as Error).message).toMatch(/check REDIS_URL and that Redis is running/);
      }
      const loadError = (results[0] as PromiseRejectedResult).reason as StoreUnavailableError;
      // Refused connections are not timeouts: the message gives ioredis's reason instead of a time.
      expect(loadError.message).toMatch(/^Redis could not run EVALSHA \(Reached the max retries per request limit.*\): check REDIS_URL and that Redis is running$/);
      expect(loadError.cause).toBeInstanceOf(Error);

      // Later calls fail just as fast: the client keeps retrying in the background.
      const again = Date.now();
      await expect(store.load(key('oA'))).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - again).toBeLessThan(3000);

      expect(errors.length).toBeGreaterThan(0);
      expect(consoleError).not.toHaveBeenCalledWith(expect.stringContaining('Unhandled error event'), expect.anything());
    } finally {
      await store.close();
      consoleError.mockRestore();
    }
  });

  it('never leaves an error event unhandled, even without onError', async () => {
    const consoleError = vi.spyOn(console, 'error');
    const redis = createRedisClient(url, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    try {
      expect(redis.listenerCount('error')).toBeGreaterThan(0);
      await expect(redis.ping()).rejects.toThrow();
      expect(consoleError).not.toHaveBeenCalledWith(expect.stringContaining('Unhandled error event'), expect.anything());
    } finally {
      redis.disconnect();
      consoleError.mockRestore();
    }
  });

  it('close() of a store whose Redis is down returns promptly and stops reconnecting', async () => {
    let errors = 0;
    const redis = createRedisClient(url, { commandTimeoutMs: 300, connectTimeoutMs: 300, onError: () => errors++ });
    const store = new RedisStore({ redis, keyPrefix: 'test:unreachable:' });
    await expect(store.load(key('oA'))).rejects.toBeInstanceOf(StoreUnavailableError);
    const started = Date.now();
    await store.close();
    expect(Date.now() - started).toBeLessThan(2500);
    // ioredis may leave `status` at 'reconnecting' after QUIT on a dead connection, but it makes no
    // further attempts (each would report an error).
    const errorsAtClose = errors;
    await sleep(800);
    expect(errors).toBe(errorsAtClose);
    await expect(store.load(key('oA'))).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

/** A TCP proxy to the real Redis that a test can take down and bring back on the same port. */
function tcpProxy(targetHost: string, targetPort: number) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  return {
    get port() {
      return port;
    },
    async start(): Promise<void> {
      server = createServer((client) => {
        const upstream = connect(targetPort, targetHost);
        track(client);
        track(upstream);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      const listening = server;
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(port, '127.0.0.1', () => resolve());
      });
      port = (listening.address() as AddressInfo).port;
    },
    async stop(): Promise<void> {
      const closing = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
    },
  };
}

describe.runIf(process.env.REDIS_URL)('RedisStore when real Redis goes away and comes back', () => {
  it('fails fast while Redis is away and works again once it is back, without a new client', async () => {
    const target = new URL(process.env.REDIS_URL ?? '');
    const proxy = tcpProxy(target.hostname, Number(target.port || 6379));
    await proxy.start();
    const redis = createRedisClient(`redis://127.0.0.1:${proxy.port}${target.pathname}`, {
      commandTimeoutMs: 500,
      connectTimeoutMs: 500,
      maxReconnectDelayMs: 200,
    });
    const store = new RedisStore({ redis, keyPrefix: uniqueKeyPrefix() });
    try {
      await store.save(key('oA'), state('oA'), 60);
      expect(await store.load(key('oA'))).toEqual(state('oA'));

      await proxy.stop();
      const started = Date.now();
      await expect(store.load(key('oA'))).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.save(key('oA'), state('oA', { version: 'lost' }), 60)).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(3000);

      await proxy.start();
      const back = Date.now();
      let loaded: DialogState | undefined;
      for (;;) {
        try {
          loaded = await store.load(key('oA'));
          break;
        } catch (err) {
          expect(err).toBeInstanceOf(StoreUnavailableError);
          if (Date.now() - back > 5000) throw err;
          await sleep(100);
        }
      }
      // The refused save never reached Redis, not even after the reconnection.
      expect(loaded).toEqual(state('oA'));
      await store.delete(key('oA'));
      expect(await store.load(key('oA'))).toBeUndefined();
    } finally {
      await store.close();
      await proxy.stop();
    }
  });
});

describe('createRedisClient', () => {
  it('configures fail-fast timeouts and a capped reconnection backoff', () => {
    const redis = createRedisClient('redis://127.0.0.1:1/15', { commandTimeoutMs: 700, connectTimeoutMs: 900, maxReconnectDelayMs: 1500 });
    try {
      expect(redis.options.commandTimeout).toBe(700);
      expect(redis.options.connectTimeout).toBe(900);
      expect(redis.options.maxRetriesPerRequest).toBe(1);
      expect(redis.options.db).toBe(15);
      const retry = redis.options.retryStrategy;
      expect(typeof retry).toBe('function');
      expectCappedBackoff(retry, 1500);
    } finally {
      redis.disconnect();
    }
  });

  it('defaults to a 1000 ms command timeout and a 2000 ms connect timeout', () => {
    const redis = createRedisClient('redis://127.0.0.1:1');
    try {
      expect(redis.options.commandTimeout).toBe(1000);
      expect(redis.options.connectTimeout).toBe(2000);
    } finally {
      redis.disconnect();
    }
  });
});
