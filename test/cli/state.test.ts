/**
 * `wechat-dialog state show|reset <openid>`, the state inspector: its output formatting and
 * settings (pure), then the real command (`node dist/src/cli/main.js state …`, built) on a state a
 * real turn wrote to the Redis at `REDIS_URL` (when set), and on a Redis Cluster this file starts
 * itself (when redis-server is installed).
 */
import { spawn } from 'node:child_process';
import type { Cluster } from 'ioredis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import {
  accountOfKey,
  escapeGlob,
  formatMessage,
  formatState,
  inspectorSettings,
  NO_REDIS_MESSAGE,
  quote,
  StateInspectorError,
  type StateReport,
} from '../../src/cli/state.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { clusterKeySlot, stateKeyString } from '../../src/dialog/store/keys.js';
import { createRedisClient, createRedisClusterClient } from '../../src/dialog/store/redis-client.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { encodeState } from '../../src/dialog/store/state-codec.js';
import type { DialogState } from '../../src/dialog/store/store.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { ACCOUNT, eventFrom, textFrom } from '../support/messages.js';
import { findFreePort } from '../support/ports.js';
import { deleteRedisKeys, ROOT } from '../support/processes.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { ownRedisSuitesRun } from '../support/redis-server.js';
import { uniqueKeyPrefix } from '../support/stores.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `wechat-dialog state <args>` with only `env` (no inherited REDIS_* and no .env file): the
 * built command, as installed (the global setup builds `dist/` from these sources first).
 */
function runState(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<Run> {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', 'state', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DOTENV_CONFIG_PATH: 'test/no-such.env', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const text = (content: string, createTime = 1_700_000_000): InboundMessage => ({
  MsgType: 'text',
  ToUserName: ACCOUNT,
  FromUserName: 'oUser1',
  CreateTime: createTime,
  MsgId: '1',
  Content: content,
});

describe('state inspector: formatting and settings', () => {
  const state: DialogState = {
    dialog: 'accumulator',
    version: 'v1',
    messages: [text('累加器'), text('2\n3', 1_700_000_060), eventFrom('oUser1', 'CLICK', 'V1001')],
    effects: [{ ok: 1 }],
  };
  const report: StateReport = {
    account: ACCOUNT,
    openid: 'oUser1',
    key: `p:{${ACCOUNT}:oUser1}`,
    state,
    ttlSeconds: 42,
    handledUpTo: 1_700_000_060,
  };

  it('prints the counts, the TTL and handledUpTo, and no message contents unless asked', () => {
    expect(formatState(report)).toBe(
      [
        `account      ${ACCOUNT}`,
        'openid       oUser1',
        `key          p:{${ACCOUNT}:oUser1}`,
        'dialog       accumulator',
        'version      v1',
        'ended        no',
        'messages     3',
        'effects      1',
        'ttl          42 s',
        'handledUpTo  1700000060 (2023-11-14T22:14:20.000Z)',
        '(message contents not shown: add --contents to print them)',
        '',
      ].join('\n'),
    );
    expect(formatState(report)).not.toContain('累加器');
  });

  it('with contents: one line per message, CreateTime as ISO time, type, quoted content or event', () => {
    const lines = formatState(report, { contents: true }).trimEnd().split('\n');
    expect(lines.slice(-4)).toEqual([
      'messages, oldest first:',
      '  2023-11-14T22:13:20.000Z text "累加器"',
      '  2023-11-14T22:14:20.000Z text "2\\n3"',
      '  2023-11-14T22:13:20.000Z event "CLICK" "V1001"',
    ]);
  });

  it('ended, no expiry, no handledUpTo', () => {
    const out = formatState({ ...report, state: { ...state, ended: true }, ttlSeconds: -1, handledUpTo: undefined });
    expect(out).toMatch(/^ended {8}yes \(/m);
    expect(out).toContain('ttl          none (the key has no expiry)');
    expect(out).toContain('handledUpTo  none');
  });

  it('what a user wrote cannot drive the terminal', () => {
    expect(quote('a\u001b[2Jb\u202ec\u0085')).toBe('"a\\u001b[2Jb\\u202ec\\u0085"');
    expect(formatMessage(eventFrom('oUser1', 'subscribe'))).toBe('2023-11-14T22:13:20.000Z event "subscribe"');
    const unknown = { ...text('x'), MsgType: 'unknown', RawMsgType: 'file', Fields: {} } as unknown as InboundMessage;
    expect(formatMessage(unknown)).toBe('2023-11-14T22:13:20.000Z file');
  });

  it('settings: the server\'s rules for REDIS_URL, REDIS_CLUSTER and REDIS_KEY_PREFIX; no WECHAT_TOKEN needed', () => {
    expect(inspectorSettings({ REDIS_URL: 'redis://h:1/2' })).toEqual({ redisUrl: 'redis://h:1/2', redisCluster: false, keyPrefix: 'wechat-dialog:' });
    expect(inspectorSettings({ REDIS_URL: 'redis://h:1', REDIS_CLUSTER: '1', REDIS_KEY_PREFIX: 'app:' })).toEqual({ redisUrl: 'redis://h:1', redisCluster: true, keyPrefix: 'app:' });
    // The server's other settings, valid or not, play no part.
    expect(inspectorSettings({ REDIS_URL: 'redis://h:1', WECHAT_TOKEN: 'x', WEB_CONCURRENCY: 'many' }).redisUrl).toBe('redis://h:1');
    for (const env of [{}, { REDIS_URL: '' }, { REDIS_CLUSTER: 'true' }]) {
      expect(() => inspectorSettings(env)).toThrow(new StateInspectorError(NO_REDIS_MESSAGE));
    }
    expect(() => inspectorSettings({ REDIS_URL: 'http://h' })).toThrow(/^REDIS_URL must be a redis:\/\//);
    expect(() => inspectorSettings({ REDIS_URL: 'redis://h:1/3', REDIS_CLUSTER: 'true' })).toThrow(/database other than 0/);
    expect(() => inspectorSettings({ REDIS_URL: 'redis://h', REDIS_KEY_PREFIX: 'a{b' })).toThrow(/^REDIS_KEY_PREFIX /);
  });

  it('SCAN patterns: glob characters of the prefix escaped, only exact state keys kept', () => {
    expect(escapeGlob('a*b?c[d]e\\f:')).toBe('a\\*b\\?c\\[d\\]e\\\\f:');
    expect(accountOfKey('p:{gh_a:oU}', 'p:', 'oU')).toBe('gh_a');
    expect(accountOfKey('p:{gh_a:oU}:t', 'p:', 'oU')).toBeUndefined();
    expect(accountOfKey('p:{gh_a:x:oU}', 'p:', 'oU')).toBeUndefined();
    expect(accountOfKey('p:{:oU}', 'p:', 'oU')).toBeUndefined();
    expect(accountOfKey('q:{gh_a:oU}', 'p:', 'oU')).toBeUndefined();
  });
});

describe('wechat-dialog state: refused before any connection', () => {
  it('a bad openid or account: one line, exit 1 (nothing listens at the URL: no Redis command is needed)', async () => {
    const env = { REDIS_URL: 'redis://127.0.0.1:1/0' };
    const runs = await Promise.all([
      runState(['show', 'o:x'], env),
      runState(['reset', 'o{x}'], env),
      runState(['show', 'oUser1', '--account', 'gh_a:b'], env),
    ]);
    expect(runs.map((r) => r.code)).toEqual([1, 1, 1]);
    expect(runs.map((r) => r.stdout)).toEqual(['', '', '']);
    expect(runs[0]?.stderr).toBe('state: the openid "o:x" is not a WeChat id: 1 to 64 letters, digits, _ or -\n');
    expect(runs[1]?.stderr).toBe('state: the openid "o{x}" is not a WeChat id: 1 to 64 letters, digits, _ or -\n');
    expect(runs[2]?.stderr).toBe('state: the account "gh_a:b" is not a WeChat id: 1 to 64 letters, digits, _ or -\n');
  }, 30_000);

  it('without REDIS_URL: one line, exit 1', async () => {
    const run = await runState(['show', 'oUser1']);
    expect(run).toEqual({ code: 1, stdout: '', stderr: `state: ${NO_REDIS_MESSAGE}\n` });
  }, 20_000);

  it('usage errors exit 2, like the other commands', async () => {
    const runs = await Promise.all([runState([]), runState(['show']), runState(['drop', 'oUser1']), runState(['reset', 'oUser1', '--contents'])]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2]);
    expect(runs.map((r) => r.stderr.split('\n')[0])).toEqual([
      'wechat-dialog: state needs an action: state show <openid> or state reset <openid>',
      "wechat-dialog: state show needs the user's openid: state show <openid> [--account <gh_id>]",
      'wechat-dialog: unknown state action drop: show or reset',
      'wechat-dialog: --contents is for state show',
    ]);
  }, 30_000);

  it('Redis unreachable: one line naming the URL without its password, exit 1', async () => {
    const port = await findFreePort();
    const run = await runState(['show', 'oUser1'], { REDIS_URL: `redis://:pa55word@127.0.0.1:${port}/0` });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`state: cannot reach Redis at redis://:***@127.0.0.1:${port}/0 (connect ECONNREFUSED 127.0.0.1:${port}): check REDIS_URL\n`);
    expect(run.stderr).not.toContain('pa55word');
  }, 20_000);
});

const url = process.env.REDIS_URL ?? '';

describe.runIf(Boolean(url))('wechat-dialog state on Redis (REDIS_URL)', () => {
  const prefix = uniqueKeyPrefix();
  const env = { REDIS_URL: url, REDIS_KEY_PREFIX: prefix };
  let admin: Redis;
  let store: RedisStore;
  let engine: DialogEngine;

  beforeAll(() => {
    admin = new Redis(url);
    store = new RedisStore({ redis: createRedisClient(url), keyPrefix: prefix });
    engine = new DialogEngine({ router, store, ttlSeconds: 60 });
  });
  afterAll(async () => {
    await store?.close();
    if (admin) {
      await deleteRedisKeys(admin, prefix);
      admin.disconnect();
    }
  });

  it('show: the dialog, its counts and TTL, contents only with --contents; reset deletes it and keeps the handled-message memory', async () => {
    const openid = 'oStateShow000000000000000001';
    const key = stateKeyString(prefix, { account: ACCOUNT, openid });
    expect((await engine.handle(textFrom(openid, '累加器', 1_700_000_000))).outcome).toBe('started');
    expect((await engine.handle(textFrom(openid, '2', 1_700_000_010))).outcome).toBe('continued');

    const [show, withContents] = await Promise.all([runState(['show', openid], env), runState(['show', openid, '--contents'], env)]);
    expect(show.stderr).toBe('');
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`account      ${ACCOUNT}\n`);
    expect(show.stdout).toContain(`key          ${key}\n`);
    expect(show.stdout).toContain('dialog       accumulator\n');
    expect(show.stdout).toMatch(/^version {6}\S+$/m);
    expect(show.stdout).toContain('ended        no\n');
    expect(show.stdout).toContain('messages     2\n');
    expect(show.stdout).toContain('effects      0\n');
    expect(show.stdout).toContain('handledUpTo  1700000010 (2023-11-14T22:13:30.000Z)\n');
    const ttl = Number(/^ttl +(\d+) s$/m.exec(show.stdout)?.[1]);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
    expect(show.stdout).not.toContain('累加器');
    expect(show.stdout).not.toMatch(/text "/);

    expect(withContents.code).toBe(0);
    expect(withContents.stdout).toContain('  2023-11-14T22:13:20.000Z text "累加器"\n  2023-11-14T22:13:30.000Z text "2"\n');

    const handledBefore = (await admin.keys(`${key}:*`)).filter((k) => !/:[vme]$/.test(k));
    expect(handledBefore.length).toBe(3); // :t and one :h: per message (:v is the state's version, :m its messages)
    expect(await admin.exists(`${key}:v`)).toBe(1);
    expect(await admin.exists(`${key}:m`)).toBe(1);

    const reset = await runState(['reset', openid], env);
    expect(reset.code).toBe(0);
    expect(reset.stderr).toBe('');
    expect(reset.stdout).toContain(`deleted the state of ${openid} on ${ACCOUNT} (dialog accumulator, 2 messages; key ${key})`);
    expect(reset.stdout).toMatch(/not deleted: the memory of handled messages/);
    expect(await admin.exists(key)).toBe(0);
    expect(await admin.exists(`${key}:v`)).toBe(0); // the version and the messages go with the state
    expect(await admin.exists(`${key}:m`)).toBe(0);
    expect((await admin.keys(`${key}:*`)).sort()).toEqual(handledBefore.sort());

    const [after, resetAgain] = await Promise.all([runState(['show', openid], env), runState(['reset', openid, '--account', ACCOUNT], env)]);
    expect(after).toEqual({ code: 0, stdout: `no state for ${openid} (no key ${prefix}{*:${openid}})\n`, stderr: '' });
    expect(resetAgain).toEqual({ code: 0, stdout: `no state for ${openid} on ${ACCOUNT} (no key ${key}): nothing deleted\n`, stderr: '' });
  }, 60_000);

  it('after a reset, a server process that cached the state routes the next message afresh (no restart)', async () => {
    const openid = 'oStateCached0000000000000001';
    await engine.handle(textFrom(openid, '累加器', 1_700_000_100));
    await engine.handle(textFrom(openid, '2', 1_700_000_110)); // cached by this engine
    expect((await runState(['reset', openid], env)).code).toBe(0);
    const next = await engine.handle(textFrom(openid, '5', 1_700_000_120));
    expect(next.reply).not.toEqual(expect.objectContaining({ Content: '请输入第2个数字, 目前累加和:5' }));
    expect(next.outcome).not.toBe('continued');
  }, 30_000);

  it('one openid on two accounts: lists them and asks for --account (exit 1); --account picks one', async () => {
    const openid = 'oStateTwoAccounts00000000001';
    const other = 'gh_other000000';
    await engine.handle(textFrom(openid, '累加器'));
    await engine.handle({ ...textFrom(openid, '累加器'), ToUserName: other });
    const [both, one] = await Promise.all([runState(['show', openid], env), runState(['show', openid, '--account', other], env)]);
    expect(both).toEqual({
      code: 1,
      stdout: '',
      stderr: `state: ${openid} has a state on 2 accounts (${ACCOUNT}, ${other}): choose one with --account <gh_id>\n`,
    });
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`account      ${other}\n`);
    expect(one.stdout).toContain('messages     1\n');
  }, 30_000);

  it('a state stored in format 1 (one JSON value, as written before format 2) is shown and reset too', async () => {
    const openid = 'oStateFormat1000000000000001';
    const key = stateKeyString(prefix, { account: ACCOUNT, openid });
    const old: DialogState = { dialog: 'accumulator', version: 'v-old', messages: [textFrom(openid, '累加器', 1_700_000_000), textFrom(openid, '2', 1_700_000_010)], effects: [{ ok: 1 }] };
    await admin.set(key, encodeState(old), 'EX', 60);
    await admin.set(`${key}:v`, 'an-older-version', 'EX', 60);
    const show = await runState(['show', openid, '--contents'], env);
    expect(show.stderr).toBe('');
    expect(show.stdout).toContain('version      v-old\n');
    expect(show.stdout).toContain('messages     2\n');
    expect(show.stdout).toContain('effects      1\n');
    expect(show.stdout).toContain('text "2"\n');
    const reset = await runState(['reset', openid], env);
    expect(reset.stdout).toContain(`deleted the state of ${openid} on ${ACCOUNT} (dialog accumulator, 2 messages; key ${key})`);
    expect(await admin.exists(key, `${key}:v`)).toBe(0);
  }, 30_000);

  it('a value that is not a state: one line, exit 1; reset deletes a string the server cannot read, never another type', async () => {
    const corrupt = 'oStateCorrupt000000000000001';
    const list = 'oStateList000000000000000001';
    await admin.set(stateKeyString(prefix, { account: ACCOUNT, openid: corrupt }), '{"f":99}', 'EX', 60);
    await admin.rpush(stateKeyString(prefix, { account: ACCOUNT, openid: list }), 'x');
    const [showCorrupt, showList, resetList] = await Promise.all([
      runState(['show', corrupt], env),
      runState(['show', list], env),
      runState(['reset', list], env),
    ]);
    expect(showCorrupt.code).toBe(1);
    expect(showCorrupt.stderr).toMatch(/^state: \S+ holds a value that is not a dialog state \(corrupt, or another format[^\n]*\n$/);
    for (const run of [showList, resetList]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^state: \S+ holds a value that is not a dialog state \(not a string\)[^\n]*\n$/);
    }
    expect(await admin.exists(stateKeyString(prefix, { account: ACCOUNT, openid: list }))).toBe(1);
    const resetCorrupt = await runState(['reset', corrupt], env);
    expect(resetCorrupt.code).toBe(0);
    expect(resetCorrupt.stdout).toContain('(a value that was not a readable dialog state;');
    expect(await admin.exists(stateKeyString(prefix, { account: ACCOUNT, openid: corrupt }))).toBe(0);
  }, 30_000);

  it('a prefix holding glob characters is matched literally', async () => {
    const globPrefix = `${prefix}*[x]?`;
    const globStore = new RedisStore({ redis: createRedisClient(url), keyPrefix: globPrefix });
    try {
      const openid = 'oStateGlob000000000000000001';
      await new DialogEngine({ router, store: globStore }).handle(textFrom(openid, '累加器'));
      // Unescaped, the pattern would miss the key above; a key under a prefix that starts alike is not reported.
      await admin.set(stateKeyString(`${prefix}zzz`, { account: 'gh_wrong0000000', openid }), 'x', 'EX', 60);
      const run = await runState(['show', openid], { ...env, REDIS_KEY_PREFIX: globPrefix });
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain(`account      ${ACCOUNT}\n`);
    } finally {
      await globStore.close();
    }
  }, 30_000);
});

/** Accounts whose state keys for `openid` land on two different masters of `client`'s cluster. */
function accountsOnTwoMasters(client: Cluster, openid: string): [string, string] {
  const owner = (account: string) => client.slots[clusterKeySlot(`{${account}:${openid}}`)]?.[0];
  const first = 'gh_cluster000001';
  for (let i = 2; i < 1000; i += 1) {
    const account = `gh_cluster${String(i).padStart(6, '0')}`;
    if (owner(account) !== undefined && owner(account) !== owner(first)) return [first, account];
  }
  throw new Error('no two accounts on different masters');
}

describe.runIf(ownRedisSuitesRun('state inspector on Redis Cluster'))('wechat-dialog state on a Redis Cluster (3 masters started by this test)', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  let store: RedisStore;
  const prefix = uniqueKeyPrefix();

  beforeAll(async () => {
    cluster = await startRedisCluster();
    client = createRedisClusterClient(cluster.seedUrl, { commandTimeoutMs: 2000 });
    store = new RedisStore({ redis: client, keyPrefix: prefix });
  }, 30_000);
  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
  });

  it('finds the user on every master, shows and resets with --account', async () => {
    const openid = 'oStateCluster000000000000001';
    await store.read({ account: 'gh_warmup0000', openid }); // the slot map is known from here on
    const [a, b] = accountsOnTwoMasters(client, openid);
    const engine = new DialogEngine({ router, store });
    await engine.handle({ ...textFrom(openid, '累加器'), ToUserName: a });
    await engine.handle({ ...textFrom(openid, '累加器'), ToUserName: b });
    await engine.handle({ ...textFrom(openid, '3', 1_700_000_001), ToUserName: b });
    const env = { REDIS_URL: cluster.seedUrl, REDIS_CLUSTER: 'true', REDIS_KEY_PREFIX: prefix };

    const [both, showB] = await Promise.all([runState(['show', openid], env), runState(['show', openid, '--account', b, '--contents'], env)]);
    expect(both.code).toBe(1);
    expect(both.stderr).toBe(`state: ${openid} has a state on 2 accounts (${a}, ${b}): choose one with --account <gh_id>\n`);
    expect(showB.stderr).toBe('');
    expect(showB.stdout).toContain('messages     2\n');
    expect(showB.stdout).toContain('handledUpTo  1700000001 (');
    expect(showB.stdout).toContain('text "3"');

    const reset = await runState(['reset', openid, '--account', a], env);
    expect(reset.code).toBe(0);
    expect(reset.stdout).toContain(`deleted the state of ${openid} on ${a} (dialog accumulator, 1 message;`);
    const showAll = await runState(['show', openid], env);
    expect(showAll.code).toBe(0);
    expect(showAll.stdout).toContain(`account      ${b}\n`);
  }, 60_000);

  it('a cluster that does not answer: one line, exit 1', async () => {
    const port = await findFreePort();
    const run = await runState(['show', 'oUser1'], { REDIS_URL: `redis://:pa55word@127.0.0.1:${port}`, REDIS_CLUSTER: 'true' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^state: cannot reach Redis Cluster at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port} \\([^\\n]+\\): check REDIS_URL\\n$`));
    expect(run.stderr).not.toContain('pa55word');
  }, 20_000);
});
