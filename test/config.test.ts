/**
 * loadConfig: REDIS_CLUSTER (true/false, 1/0, default false; needs REDIS_URL on database 0), and
 * that the other settings keep their defaults next to it.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

const TOKEN = { WECHAT_TOKEN: 'abc123' };
const SEED = 'redis://10.0.0.1:7000';

/** The ConfigError `loadConfig(env)` throws (fails the test when it throws nothing or something else). */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('REDIS_CLUSTER', () => {
  it('defaults to false, with or without REDIS_URL, and when empty', () => {
    expect(loadConfig(TOKEN).redisCluster).toBe(false);
    expect(loadConfig({ ...TOKEN, REDIS_URL: 'redis://127.0.0.1:6379/15' }).redisCluster).toBe(false);
    expect(loadConfig({ ...TOKEN, REDIS_URL: SEED, REDIS_CLUSTER: '' }).redisCluster).toBe(false);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('REDIS_CLUSTER=%s is %s', (value, expected) => {
    const config = loadConfig({ ...TOKEN, REDIS_URL: SEED, REDIS_CLUSTER: value });
    expect(config.redisCluster).toBe(expected);
    expect(config.redisUrl).toBe(SEED);
  });

  it('accepts a seed URL with a password, and database 0 spelled out', () => {
    const withPassword = 'redis://:s3cret@10.0.0.1:7000';
    expect(loadConfig({ ...TOKEN, REDIS_URL: withPassword, REDIS_CLUSTER: 'true' })).toMatchObject({ redisUrl: withPassword, redisCluster: true });
    expect(loadConfig({ ...TOKEN, REDIS_URL: `${SEED}/0`, REDIS_CLUSTER: 'true' }).redisCluster).toBe(true);
    expect(loadConfig({ ...TOKEN, REDIS_URL: `${SEED}/`, REDIS_CLUSTER: 'true' }).redisCluster).toBe(true);
  });

  it.each(['yes', 'TRUE', 'on', '2', ' true'])('refuses REDIS_CLUSTER=%j with one line saying what it must be', (value) => {
    const err = configError({ ...TOKEN, REDIS_URL: SEED, REDIS_CLUSTER: value });
    expect(err.variable).toBe('REDIS_CLUSTER');
    expect(err.message).toMatch(/^REDIS_CLUSTER must be true or false \(or 1 or 0\)/);
    expect(err.message).not.toContain('\n');
  });

  it('refuses REDIS_CLUSTER=true without REDIS_URL (unset or empty)', () => {
    for (const env of [{ ...TOKEN, REDIS_CLUSTER: 'true' }, { ...TOKEN, REDIS_CLUSTER: '1', REDIS_URL: '' }]) {
      const err = configError(env);
      expect(err.variable).toBe('REDIS_CLUSTER');
      expect(err.message).toMatch(/^REDIS_CLUSTER=true needs REDIS_URL: the address of one node of the cluster/);
    }
  });

  it('refuses a cluster seed URL that selects a database other than 0 (single Redis may)', () => {
    const err = configError({ ...TOKEN, REDIS_URL: `${SEED}/15`, REDIS_CLUSTER: 'true' });
    expect(err.variable).toBe('REDIS_URL');
    expect(err.message).toMatch(/^REDIS_URL must not select a database other than 0 when REDIS_CLUSTER is true/);
    expect(loadConfig({ ...TOKEN, REDIS_URL: `${SEED}/15` }).redisUrl).toBe(`${SEED}/15`);
  });

  it('refuses a cluster seed that is not a parseable URL', () => {
    const err = configError({ ...TOKEN, REDIS_URL: 'redis://10.0.0.1:notaport', REDIS_CLUSTER: 'true' });
    expect(err.variable).toBe('REDIS_URL');
    expect(err.message).toMatch(/^REDIS_URL must be a URL such as redis:\/\/10\.0\.0\.1:7000/);
  });

  it('still checks REDIS_URL itself first', () => {
    const err = configError({ ...TOKEN, REDIS_URL: 'localhost:7000', REDIS_CLUSTER: 'true' });
    expect(err.variable).toBe('REDIS_URL');
    expect(err.message).toMatch(/^REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
  });

  it('goes with WEB_CONCURRENCY above 1: the processes share the cluster', () => {
    expect(loadConfig({ ...TOKEN, REDIS_URL: SEED, REDIS_CLUSTER: 'true', WEB_CONCURRENCY: '4' })).toMatchObject({
      redisCluster: true,
      webConcurrency: 4,
    });
  });
});

describe('security mode variables', () => {
  const KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';

  it('is off by default', () => {
    expect(loadConfig(TOKEN).security).toBeUndefined();
  });

  it('takes WECHAT_APPID and WECHAT_ENCODING_AES_KEY together; WECHAT_REQUIRE_ENCRYPTION refuses plaintext', () => {
    expect(loadConfig({ ...TOKEN, WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: KEY }).security).toEqual({
      appId: 'wx0123456789abcdef',
      encodingAESKey: KEY,
      required: false,
    });
    const strict = loadConfig({ ...TOKEN, WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: KEY, WECHAT_REQUIRE_ENCRYPTION: '1' });
    expect(strict.security?.required).toBe(true);
  });

  it('late replies are off by default; WECHAT_APPSECRET (with WECHAT_APPID) turns them on', () => {
    expect(loadConfig(TOKEN).lateReplies).toBeUndefined();
    const env = { ...TOKEN, WECHAT_APPID: 'wx0123456789abcdef', WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef' };
    expect(loadConfig(env).lateReplies).toEqual({
      appId: 'wx0123456789abcdef',
      appSecret: '0123456789abcdef0123456789abcdef',
      deadlineMs: 4500,
      apiBase: 'https://api.weixin.qq.com',
      deliveryGraceMs: 10_000,
    });
    expect(loadConfig(env).security).toBeUndefined(); // an AppID for late replies only: plaintext mode
    const custom = loadConfig({ ...env, REPLY_DEADLINE_MS: '3000', WECHAT_API_BASE: 'http://127.0.0.1:9000', DELIVERY_GRACE_MS: '2000' }).lateReplies;
    expect(custom).toMatchObject({ deadlineMs: 3000, apiBase: 'http://127.0.0.1:9000', deliveryGraceMs: 2000 });
    expect(() => loadConfig({ ...env, DELIVERY_GRACE_MS: '50' })).toThrow(/DELIVERY_GRACE_MS/);
  });

  it('takes WECHAT_ENCODING_AES_KEY_PREVIOUS beside the current key', () => {
    const previous = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq';
    const env = { ...TOKEN, WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: KEY, WECHAT_ENCODING_AES_KEY_PREVIOUS: previous };
    expect(loadConfig(env).security).toEqual({ appId: 'wx0123456789abcdef', encodingAESKey: KEY, previousEncodingAESKey: previous, required: false });
  });

  it.each([
    [{ WECHAT_APPID: 'wx0123456789abcdef' }, /^WECHAT_ENCODING_AES_KEY is required too/],
    [{ WECHAT_ENCODING_AES_KEY: KEY }, /^WECHAT_APPID is required too/],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: KEY.slice(1) }, /^WECHAT_ENCODING_AES_KEY must be the 43-letter-or-digit EncodingAESKey/],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: `${KEY.slice(1)}+` }, /^WECHAT_ENCODING_AES_KEY must be/],
    [{ WECHAT_ENCODING_AES_KEY_PREVIOUS: KEY }, /^WECHAT_ENCODING_AES_KEY_PREVIOUS needs WECHAT_ENCODING_AES_KEY/],
    [{ WECHAT_APPSECRET: '0123456789abcdef' }, /^WECHAT_APPSECRET needs WECHAT_APPID/],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_APPSECRET: 'short' }, /^WECHAT_APPSECRET must be the account's AppSecret/],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_APPSECRET: '0123456789abcdef', REPLY_DEADLINE_MS: '5000' }, /^REPLY_DEADLINE_MS /],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_APPSECRET: '0123456789abcdef', WECHAT_API_BASE: 'https://api.weixin.qq.com/cgi-bin' }, /^WECHAT_API_BASE must be a base URL/],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: KEY, WECHAT_ENCODING_AES_KEY_PREVIOUS: 'short' }, /^WECHAT_ENCODING_AES_KEY_PREVIOUS must be the previous/],
    [{ WECHAT_REQUIRE_ENCRYPTION: 'true' }, /^WECHAT_REQUIRE_ENCRYPTION needs WECHAT_APPID and WECHAT_ENCODING_AES_KEY/],
    [{ WECHAT_APPID: 'wx0123456789abcdef', WECHAT_ENCODING_AES_KEY: KEY, WECHAT_REQUIRE_ENCRYPTION: 'yes' }, /^WECHAT_REQUIRE_ENCRYPTION must be true or false/],
  ])('refuses %j with one line naming the variable', (env, message) => {
    expect(() => loadConfig({ ...TOKEN, ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ ...TOKEN, ...env })).toThrow(message);
  });
});

describe('freshness, effect timeout and memory settings', () => {
  it('default to a 300 s window, 30 s effects, a 64 MiB state cache and 100 000 in-process entries', () => {
    expect(loadConfig(TOKEN)).toMatchObject({
      requestMaxAgeSeconds: 300,
      effectTimeoutMs: 30_000,
      stateCacheBytes: 64 * 1024 * 1024,
      memoryStoreMaxEntries: 100_000,
    });
  });

  it('take their variables; REQUEST_MAX_AGE_SECONDS=0 (no check) and STATE_CACHE_BYTES=0 (no cache) are allowed', () => {
    const config = loadConfig({ ...TOKEN, REQUEST_MAX_AGE_SECONDS: '0', EFFECT_TIMEOUT_MS: '2500', STATE_CACHE_BYTES: '0', MEMORY_STORE_MAX_ENTRIES: '10' });
    expect(config).toMatchObject({ requestMaxAgeSeconds: 0, effectTimeoutMs: 2500, stateCacheBytes: 0, memoryStoreMaxEntries: 10 });
  });

  it.each([
    ['REQUEST_MAX_AGE_SECONDS', '-1'],
    ['REQUEST_MAX_AGE_SECONDS', '5m'],
    ['EFFECT_TIMEOUT_MS', '0'],
    ['MEMORY_STORE_MAX_ENTRIES', '0'],
    ['STATE_CACHE_BYTES', 'lots'],
  ])('refuses %s=%j with one line naming it', (variable, value) => {
    const err = configError({ ...TOKEN, [variable]: value });
    expect(err.variable).toBe(variable);
    expect(err.message).toMatch(new RegExp(`^${variable} must be a whole number`));
  });
});

describe('HEALTH_PATH and READY_PATH', () => {
  it('default to /healthz and /readyz, also when empty', () => {
    expect(loadConfig(TOKEN)).toMatchObject({ healthPath: '/healthz', readyPath: '/readyz' });
    expect(loadConfig({ ...TOKEN, HEALTH_PATH: '', READY_PATH: '' })).toMatchObject({ healthPath: '/healthz', readyPath: '/readyz' });
  });

  it('take their variables', () => {
    const config = loadConfig({ ...TOKEN, HEALTH_PATH: '/ops/live', READY_PATH: '/ops/ready-1.0' });
    expect(config).toMatchObject({ healthPath: '/ops/live', readyPath: '/ops/ready-1.0', path: '/wechat' });
  });

  it.each([
    ['HEALTH_PATH', 'healthz'],
    ['HEALTH_PATH', '/health z'],
    ['READY_PATH', '/readyz?full=1'],
    ['READY_PATH', 'http://example.com/readyz'],
  ])('refuses %s=%j: not a URL path', (variable, value) => {
    const err = configError({ ...TOKEN, [variable]: value });
    expect(err.variable).toBe(variable);
    expect(err.message).toMatch(new RegExp(`^${variable} must be a URL path starting with "/"`));
  });

  it.each([
    [{ HEALTH_PATH: '/wechat' }, 'HEALTH_PATH', /^HEALTH_PATH must differ from WECHAT_PATH \(\/wechat\)/],
    [{ WECHAT_PATH: '/readyz' }, 'READY_PATH', /^READY_PATH must differ from WECHAT_PATH \(\/readyz\)/],
    [{ WECHAT_PATH: '/wx', READY_PATH: '/wx' }, 'READY_PATH', /^READY_PATH must differ from WECHAT_PATH/],
    [{ HEALTH_PATH: '/status', READY_PATH: '/status' }, 'READY_PATH', /^READY_PATH must differ from HEALTH_PATH \(\/status\)/],
  ] as Array<[Record<string, string>, string, RegExp]>)('refuses %j: the paths must differ', (env, variable, message) => {
    const err = configError({ ...TOKEN, ...env });
    expect(err.variable).toBe(variable);
    expect(err.message).toMatch(message);
  });
});

describe('metrics and turn log settings', () => {
  it('default to /metrics without a token, and turn lines on', () => {
    expect(loadConfig(TOKEN)).toMatchObject({ metricsPath: '/metrics', metricsToken: undefined, logTurns: true });
  });

  it('METRICS_PATH=off serves no metrics; LOG_TURNS=false turns the lines off; METRICS_TOKEN is kept', () => {
    expect(loadConfig({ ...TOKEN, METRICS_PATH: 'off', LOG_TURNS: 'false', METRICS_TOKEN: 'a-long-enough-token' })).toMatchObject({
      metricsPath: undefined,
      logTurns: false,
      metricsToken: 'a-long-enough-token',
    });
  });

  it.each([
    [{ METRICS_PATH: 'metrics' }, 'METRICS_PATH'],
    [{ METRICS_PATH: '/wechat' }, 'METRICS_PATH'],
    [{ METRICS_PATH: '/healthz' }, 'METRICS_PATH'],
    [{ METRICS_TOKEN: 'short' }, 'METRICS_TOKEN'],
    [{ LOG_TURNS: 'no' }, 'LOG_TURNS'],
  ])('refuses %j naming %s, without echoing a token', (env, variable) => {
    const err = configError({ ...TOKEN, ...env });
    expect(err.variable).toBe(variable);
    expect(err.message).not.toContain('short');
  });
});

describe('push API settings', () => {
  const SEND = { WECHAT_APPID: 'wx0123456789abcdef', WECHAT_APPSECRET: 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5' };
  const ORDERS_KEY = 'orders-key-0123456789abcdef';
  const CI_KEY = 'ci:key:with:colons:0123456789';

  it('is off without PUSH_API_KEYS (unset or empty), with no account', () => {
    expect(loadConfig(TOKEN)).toMatchObject({ push: undefined, account: undefined });
    expect(loadConfig({ ...TOKEN, PUSH_API_KEYS: '' }).push).toBeUndefined();
  });

  it('parses name:key pairs (a key may hold colons; spaces and a trailing comma ignored), with the defaults', () => {
    const config = loadConfig({ ...TOKEN, ...SEND, PUSH_API_KEYS: ` orders:${ORDERS_KEY}, ci:${CI_KEY},` });
    expect(config.push).toEqual({
      keys: [
        { service: 'orders', key: ORDERS_KEY },
        { service: 'ci', key: CI_KEY },
      ],
      path: '/push',
      ratePerMinute: 600,
    });
  });

  it('takes PUSH_PATH, PUSH_RATE_LIMIT and WECHAT_ACCOUNT', () => {
    const config = loadConfig({ ...TOKEN, ...SEND, PUSH_API_KEYS: `orders:${ORDERS_KEY}`, PUSH_PATH: '/api/push', PUSH_RATE_LIMIT: '30', WECHAT_ACCOUNT: 'gh_0123456789ab' });
    expect(config).toMatchObject({ push: { path: '/api/push', ratePerMinute: 30 }, account: 'gh_0123456789ab' });
  });

  it.each([
    [{ PUSH_API_KEYS: `orders:${ORDERS_KEY}` }, /^PUSH_API_KEYS needs WECHAT_APPID and WECHAT_APPSECRET/],
    [{ ...SEND, PUSH_API_KEYS: `orders${ORDERS_KEY}` }, /^PUSH_API_KEYS entry 1 is not name:key/],
    [{ ...SEND, PUSH_API_KEYS: `or ders:${ORDERS_KEY}` }, /^PUSH_API_KEYS entry 1: the service name must be 1 to 64 letters/],
    [{ ...SEND, PUSH_API_KEYS: 'orders:short-key' }, /^PUSH_API_KEYS entry 1 \(orders\): the key must be 16 to 256 printable characters/],
    [{ ...SEND, PUSH_API_KEYS: `orders:${ORDERS_KEY},orders:${CI_KEY}` }, /^PUSH_API_KEYS entry 2: the service name orders is used twice/],
    [{ ...SEND, PUSH_API_KEYS: `orders:${ORDERS_KEY},ci:${ORDERS_KEY}` }, /^PUSH_API_KEYS entry 2 \(ci\) has the same key as orders/],
    [{ ...SEND, PUSH_API_KEYS: ' , ' }, /^PUSH_API_KEYS has no name:key entry/],
  ])('refuses %j with one line that never quotes a key', (env, message) => {
    const err = configError({ ...TOKEN, ...env });
    expect(err.variable).toBe('PUSH_API_KEYS');
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
    for (const secret of [ORDERS_KEY, CI_KEY, 'short-key', SEND.WECHAT_APPSECRET]) expect(err.message).not.toContain(secret);
  });

  it.each([
    [{ PUSH_PATH: 'push' }, 'PUSH_PATH'],
    [{ PUSH_PATH: '/push/' }, 'PUSH_PATH'],
    [{ PUSH_PATH: '/wechat' }, 'PUSH_PATH'],
    [{ PUSH_PATH: '/healthz' }, 'PUSH_PATH'],
    [{ PUSH_PATH: '/metrics' }, 'PUSH_PATH'],
    [{ PUSH_RATE_LIMIT: '0' }, 'PUSH_RATE_LIMIT'],
    [{ PUSH_RATE_LIMIT: '10/s' }, 'PUSH_RATE_LIMIT'],
    [{ WECHAT_ACCOUNT: 'wx0123456789abcdef' }, 'WECHAT_ACCOUNT'],
    [{ WECHAT_ACCOUNT: 'gh_a:b' }, 'WECHAT_ACCOUNT'],
  ])('refuses %j naming %s', (env, variable) => {
    const err = configError({ ...TOKEN, ...SEND, PUSH_API_KEYS: `orders:${ORDERS_KEY}`, ...env });
    expect(err.variable).toBe(variable);
  });
});
