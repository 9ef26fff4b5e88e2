/**
 * The Redis store on a real Redis Cluster: three masters on loopback ports that this file starts
 * (and stops) itself with `redis-server --cluster-enabled yes` and `redis-cli --cluster create`,
 * so it runs without `REDIS_URL`. It checks the store contract through `createRedisClusterClient`
 * (save/load/delete, TTL, compare-and-set, concurrent commits), that users' keys really spread
 * over the masters, the demo accumulator over HTTP for several users at once, and failing fast
 * when the cluster (or one master) cannot be reached.
 *
 * The last test kills one master and starts it again: keep it last.
 */
import type { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { router } from '../../dialogs/router.js';
import { clusterKeySlot, stateKeyString } from '../../src/dialog/store/keys.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { createRedisClusterClient } from '../../src/dialog/store/redis-client.js';
import { type DialogState, type StateKey, StoreUnavailableError } from '../../src/dialog/store/store.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { parseReply, serveDialogs, signedQuery, textXml } from '../support/http.js';
import { ACCOUNT } from '../support/messages.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { uniqueKeyPrefix } from '../support/stores.js';
import { expectCappedBackoff } from '../support/backoff.js';
import { ownRedisSuitesRun } from '../support/redis-server.js';

const key = (openid: string, account = ACCOUNT): StateKey => ({ account, openid });

function text(openid: string, content: string, msgId: string): InboundMessage {
  return { MsgType: 'text', ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1_700_000_000, MsgId: msgId, Content: content };
}

function state(openid: string, overrides: Partial<DialogState> = {}): DialogState {
  return { dialog: 'accumulator', version: 'v1', messages: [text(openid, '累加器', '1')], effects: [], ...overrides };
}

/** Twelve users: enough that their keys land on every master (slots depend only on the hash tag). */
const USERS = Array.from({ length: 12 }, (_, i) => `oCluster${String(i).padStart(20, '0')}`);

describe.runIf(ownRedisSuitesRun('Redis Cluster suite'))('RedisStore on a Redis Cluster (3 masters started by this test)', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  let store: RedisStore;
  let keyPrefix: string;
  let clientErrors: string[];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  beforeEach(() => {
    clientErrors = [];
    keyPrefix = uniqueKeyPrefix();
    client = createRedisClusterClient(cluster.seedUrl, { onError: (err) => clientErrors.push(err.message) });
    store = new RedisStore({ redis: client, keyPrefix });
  });
  afterEach(async () => {
    try {
      // Each master holds its own keys: find ours on each of them, and delete them one by one (a
      // multi-key DEL is refused unless all its keys are in one slot, even on one node).
      if (client.status === 'ready') {
        for (const node of client.nodes('master')) {
          const keys = await node.keys(`${keyPrefix}*`).catch((): string[] => []);
          for (const k of keys) await node.del(k);
        }
      }
    } finally {
      await store.close();
    }
  });

  /** The master (`host:port`) that holds `storageKey`, from the cluster's own slot map. */
  async function ownerOf(storageKey: string): Promise<string> {
    const slot = await client.cluster('KEYSLOT', storageKey);
    const owner = client.slots[slot]?.[0];
    if (owner === undefined) throw new Error(`the client knows no node for slot ${slot}`);
    return owner;
  }

  /** How many of our keys each master holds, by `host:port`. */
  async function keysPerMaster(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const node of client.nodes('master')) {
      // State keys only (a state's version key `…}:v` lives beside it, in the same slot).
      const keys = (await node.keys(`${keyPrefix}*`)).filter((k) => k.endsWith('}'));
      counts.set(`${node.options.host}:${node.options.port}`, keys.length);
    }
    return counts;
  }

  it('talks to three masters, and a state key hashes on its {account:openid} tag only', async () => {
    await store.save(key(USERS[0] ?? ''), state(USERS[0] ?? ''), 60); // waits for the cluster to be ready
    expect(client.status).toBe('ready');
    expect(client.nodes('master')).toHaveLength(3);
    const k = key('oTagged');
    const slot = await client.cluster('KEYSLOT', stateKeyString(keyPrefix, k));
    expect(await client.cluster('KEYSLOT', `{${k.account}:${k.openid}}`)).toBe(slot);
    expect(await client.cluster('KEYSLOT', stateKeyString('another-prefix:', k))).toBe(slot);
  });

  it('clusterKeySlot computes the slot as Redis does (hash tags, empty tags, UTF-8)', async () => {
    const keys = [
      stateKeyString(keyPrefix, key('oTagged')),
      ...USERS.map((openid) => stateKeyString('wechat-dialog:', key(openid))),
      'plain-key',
      '',
      '{}empty-tag',
      'a{b}c{d}',
      '{unclosed',
      '}{x}',
      '用户{账号:张三}',
      '🙂{🙂}',
      '123456789', // the CRC16/XMODEM check value: 0x31C3
    ];
    for (const k of keys) expect(clusterKeySlot(k), k).toBe(await client.cluster('KEYSLOT', k));
    expect(clusterKeySlot('123456789')).toBe(0x31c3 % 16_384);
  });

  it('waits for the connection to the key\'s master before the first write (no write sits in an offline queue)', async () => {
    // A fresh client: the cluster is connecting, and its node connections are opened lazily.
    const results = await Promise.all(USERS.map((openid) => store.save(key(openid), state(openid), 60).then(() => 'saved')));
    expect(results).toEqual(USERS.map(() => 'saved'));
    for (const node of client.nodes('master')) expect(['ready', 'wait']).toContain(node.status);
    for (const openid of USERS) expect(await store.load(key(openid))).toEqual(state(openid));
  });

  it('saves, loads, replaces and deletes states; keeps users and accounts apart', async () => {
    const [a = '', b = ''] = USERS;
    expect(await store.load(key(a))).toBeUndefined();
    await store.save(key(a), state(a), 60);
    await store.save(key(b), state(b, { dialog: 'b' }), 60);
    await store.save(key(a, 'gh_other'), state(a, { dialog: 'other-account' }), 60);
    expect(await store.load(key(a))).toEqual(state(a));

    const replaced = state(a, { messages: [text(a, '累加器', '1'), text(a, '2', '18446744073709551615')], effects: [{ ok: { n: 1 } }] });
    await store.save(key(a), replaced, 60);
    expect(await store.load(key(a))).toEqual(replaced);
    expect(await store.load(key(b))).toEqual(state(b, { dialog: 'b' }));
    expect(await store.load(key(a, 'gh_other'))).toEqual(state(a, { dialog: 'other-account' }));

    await store.delete(key(a));
    expect(await store.load(key(a))).toBeUndefined();
    expect(await store.load(key(b))).toEqual(state(b, { dialog: 'b' }));
    await expect(store.delete(key('oNeverSaved'))).resolves.toBeUndefined();
  });

  it('sets the time to live in seconds, on save and on commit', async () => {
    const [a = '', b = ''] = USERS;
    await store.save(key(a), state(a), 60);
    const ttl = await client.ttl(stateKeyString(keyPrefix, key(a)));
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(60);
    expect((await store.commit(key(b), await store.read(key(b)), state(b), 45)).committed).toBe(true);
    expect(await client.ttl(stateKeyString(keyPrefix, key(b)))).toBeLessThanOrEqual(45);
    expect(await client.ttl(stateKeyString(keyPrefix, key(b)))).toBeGreaterThan(40);
    expect(await client.ttl(stateKeyString(keyPrefix, key('oMissing')))).toBe(-2);
  });

  it('read/commit: commits when nothing changed; refuses, returning what is stored, when something did', async () => {
    const k = key('oCas');
    const empty = await store.read(k);
    expect(empty.state).toBeUndefined();
    const seenByA = empty;
    const seenByB = await store.read(k);
    const a = state('oCas', { dialog: 'a' });
    const b = state('oCas', { dialog: 'b' });
    expect(await store.commit(k, seenByA, a, 60)).toMatchObject({ committed: true, snapshot: { state: a } });
    const refused = await store.commit(k, seenByB, b, 60);
    expect(refused.committed).toBe(false);
    expect(refused.snapshot.state).toEqual(a);
    expect(await store.load(k)).toEqual(a);
    // Planned again from the refusal's snapshot (no extra read), B now commits.
    expect((await store.commit(k, refused.snapshot, b, 60)).committed).toBe(true);
    expect((await store.load(k))?.dialog).toBe('b');
    // Deleting through commit is compare-and-set too.
    const stale = await store.read(k);
    await store.save(k, state('oCas', { dialog: 'c' }), 60);
    expect((await store.commit(k, stale, undefined, 60)).committed).toBe(false);
    expect((await store.commit(k, await store.read(k), undefined, 60)).committed).toBe(true);
    expect(await store.load(k)).toBeUndefined();
  });

  it('of many concurrent commits over one snapshot, exactly one wins; the others get its state back', async () => {
    for (const openid of USERS.slice(0, 3)) {
      const k = key(openid);
      const seen = await store.read(k);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.commit(k, seen, state(openid, { dialog: `d${i}` }), 60)));
      const winners = results.filter((r) => r.committed);
      expect(winners).toHaveLength(1);
      const winner = winners[0]?.snapshot.state;
      expect(winner?.dialog).toBe(`d${results.findIndex((r) => r.committed)}`);
      for (const refused of results.filter((r) => !r.committed)) expect(refused.snapshot.state).toEqual(winner);
      expect(await store.load(k)).toEqual(winner);
    }
  });

  it('spreads many users over every master, each state intact on its own node', async () => {
    await Promise.all(
      USERS.map(async (openid) => {
        expect((await store.commit(key(openid), await store.read(key(openid)), state(openid), 60)).committed).toBe(true);
      }),
    );
    for (const openid of USERS) expect(await store.load(key(openid))).toEqual(state(openid));

    const counts = await keysPerMaster();
    expect([...counts.values()].reduce((sum, n) => sum + n, 0)).toBe(USERS.length);
    const mastersWithKeys = [...counts].filter(([, n]) => n > 0).map(([node]) => node);
    expect(mastersWithKeys.length, JSON.stringify([...counts])).toBeGreaterThanOrEqual(2);
    expect(mastersWithKeys).toHaveLength(3); // twelve fixed tags: in fact all three
    // ...and each key is on the master its slot belongs to.
    for (const openid of USERS) {
      const owner = await ownerOf(stateKeyString(keyPrefix, key(openid)));
      const node = client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
      expect(await node?.exists(stateKeyString(keyPrefix, key(openid)))).toBe(1);
    }
  });

  it('runs the demo accumulator over HTTP for several users at once, their states on different masters', async () => {
    const server = await serveDialogs(router, store);
    const users = USERS.slice(0, 6);
    const send = async (openid: string, content: string): Promise<string | undefined> => {
      const res = await fetch(`${server.url}/wechat${signedQuery(openid)}`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: textXml(openid, content),
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(200);
      return parseReply(await res.text()).Content;
    };
    try {
      await Promise.all(
        users.map(async (openid) => {
          expect(await send(openid, '累加器')).toBe('您需要累加几个数字？');
          expect(await send(openid, '2')).toBe('请输入第1个数字, 目前累加和:0');
          expect(await send(openid, '3')).toBe('请输入第2个数字, 目前累加和:3');
        }),
      );
      // Mid-dialog: every user has a state, and they are not all on one master.
      const owners = new Set(await Promise.all(users.map((openid) => ownerOf(stateKeyString(keyPrefix, key(openid))))));
      expect(owners.size).toBeGreaterThanOrEqual(2);
      for (const openid of users) expect((await store.load(key(openid)))?.dialog).toBe('accumulator');

      await Promise.all(users.map(async (openid) => expect(await send(openid, '4')).toBe('累加结束，累加和: 7')));
    } finally {
      await server.close();
    }
  });

  it('fails fast with StoreUnavailableError when no node of the cluster answers, and closes promptly', async () => {
    const consoleError = vi.spyOn(console, 'error');
    const errors: string[] = [];
    // Port 1 on loopback: nothing listens, connections are refused at once.
    const unreachable = createRedisClusterClient('redis://127.0.0.1:1', {
      commandTimeoutMs: 300,
      connectTimeoutMs: 300,
      maxReconnectDelayMs: 200,
      onError: (err) => errors.push(err.message),
    });
    const lost = new RedisStore({ redis: unreachable, keyPrefix: uniqueKeyPrefix() });
    try {
      // All at once, as requests arrive while the cluster is away: each fails within the bound.
      const calls = [
        () => lost.load(key('oA')),
        () => lost.read(key('oA')),
        () => lost.save(key('oA'), state('oA'), 60),
        () => lost.commit(key('oA'), { state: undefined, token: '' }, state('oA'), 60),
        () => lost.delete(key('oA')),
      ];
      const started = performance.now();
      const outcomes = await Promise.allSettled(
        calls.map(async (call) => {
          await call();
          return performance.now() - started;
        }),
      );
      for (const outcome of outcomes) {
        expect(outcome.status).toBe('rejected');
        if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(StoreUnavailableError);
      }
      expect(performance.now() - started).toBeLessThan(1500);
      expect(errors.length).toBeGreaterThan(0);
      expect(consoleError).not.toHaveBeenCalledWith(expect.stringContaining('Unhandled error event'), expect.anything());
    } finally {
      const started = performance.now();
      await lost.close();
      expect(performance.now() - started).toBeLessThan(2500);
      consoleError.mockRestore();
    }
    // Closed: no further connection attempts (each would report an error), and calls fail at once.
    const errorsAtClose = errors.length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(errors.length).toBe(errorsAtClose);
    await expect(lost.load(key('oA'))).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  // Keep last: it kills one master of the shared cluster.
  it('when one master dies, its users fail fast and the others are served; once it is back, it serves again', async () => {
    for (const openid of USERS) await store.save(key(openid), state(openid), 60);
    const owners = await Promise.all(USERS.map((openid) => ownerOf(stateKeyString(keyPrefix, key(openid)))));
    const victim = owners[0] ?? '';
    await cluster.killNode(Number(victim.split(':')[1]));
    for (const [i, openid] of USERS.entries()) {
      const started = performance.now();
      if (owners[i] === victim) {
        await expect(store.load(key(openid))).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.save(key(openid), state(openid), 60)).rejects.toBeInstanceOf(StoreUnavailableError);
      } else {
        expect(await store.load(key(openid))).toEqual(state(openid));
        await store.save(key(openid), state(openid, { version: 'v2' }), 60);
      }
      expect(performance.now() - started).toBeLessThan(2500);
    }
    expect(clientErrors.some((message) => message.includes(victim))).toBe(true);

    // The master comes back (empty: nothing is kept on disk): the same client serves its users again.
    await cluster.restartNode(Number(victim.split(':')[1]));
    const lostUser = USERS[0] ?? '';
    const back = performance.now();
    for (;;) {
      try {
        await store.save(key(lostUser), state(lostUser, { version: 'back' }), 60);
        break;
      } catch (err) {
        expect(err).toBeInstanceOf(StoreUnavailableError);
        if (performance.now() - back > 10_000) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    expect(await store.load(key(lostUser))).toEqual(state(lostUser, { version: 'back' }));
    console.log(`[redis cluster] a restarted master served again after ${(performance.now() - back).toFixed(0)} ms`);
  });
});

describe('createRedisClusterClient', () => {
  it('configures fail-fast timeouts, a capped reconnection backoff, and the URL credentials for every node', () => {
    const client = createRedisClusterClient('redis://app:s%3Acret@127.0.0.1:1', {
      commandTimeoutMs: 700,
      connectTimeoutMs: 900,
      maxReconnectDelayMs: 1500,
    });
    try {
      const { redisOptions } = client.options;
      expect(redisOptions?.commandTimeout).toBe(700);
      expect(redisOptions?.connectTimeout).toBe(900);
      expect(redisOptions?.maxRetriesPerRequest).toBe(1);
      expect(redisOptions?.username).toBe('app');
      expect(redisOptions?.password).toBe('s:cret');
      expect(redisOptions?.tls).toBeUndefined();
      expect(client.options.retryDelayOnFailover).toBe(0);
      expect(client.options.retryDelayOnClusterDown).toBe(0);
      expect(client.listenerCount('error')).toBeGreaterThan(0);
      const retry = client.options.clusterRetryStrategy;
      expectCappedBackoff(retry, 1500);
    } finally {
      client.disconnect();
    }
  });

  it('defaults to 1000 ms per command and 2000 ms to connect; rediss:// turns TLS on; /0 is accepted', () => {
    const client = createRedisClusterClient('rediss://127.0.0.1:1/0');
    try {
      expect(client.options.redisOptions?.commandTimeout).toBe(1000);
      expect(client.options.redisOptions?.connectTimeout).toBe(2000);
      expect(client.options.redisOptions?.tls).toEqual({});
      expect(client.options.redisOptions?.password).toBeUndefined();
    } finally {
      client.disconnect();
    }
  });

  it('refuses a database other than 0 and what is not a redis:// URL', () => {
    expect(() => createRedisClusterClient('redis://127.0.0.1:7000/15')).toThrow(/only database 0/);
    expect(() => createRedisClusterClient('http://127.0.0.1:7000')).toThrow(RangeError);
    expect(() => createRedisClusterClient('127.0.0.1:7000')).toThrow(RangeError);
  });
});
