/**
 * Configuration from the environment, validated with zod at startup. The variable names are part
 * of the public interface (README, `.env.example`).
 *
 * @module
 */
import { z } from 'zod';
import { MAX_TIMEOUT_MS } from './dialog/dialog.js';
import { ApiKeysError, parseApiKeys, type ApiKey } from './push/api-keys.js';
import { ACCOUNT_ID_FORMAT } from './push/push-service.js';
import { APP_ID_FORMAT, ENCODING_AES_KEY_FORMAT } from './wechat/crypto.js';
import { TOKEN_FORMAT } from './wechat/signature.js';

/** The validated configuration. */
export interface Config {
  /** `WECHAT_TOKEN`: the Token (令牌) set in the Official Account console; 3 to 32 letters or digits. */
  readonly token: string;
  /** `HOST`: the address to listen on. @default '0.0.0.0' */
  readonly host: string;
  /** `PORT`: the TCP port to listen on. @default 3000 */
  readonly port: number;
  /** `WECHAT_PATH`: the URL path WeChat posts to. @default '/wechat' */
  readonly path: string;
  /**
   * `METRICS_PATH`: where Prometheus scrapes the metrics (summed over all workers); `undefined`
   * (`off`) serves none. Keep it off the public server URL: see docs/operations.md. @default '/metrics'
   */
  readonly metricsPath: string | undefined;
  /** `METRICS_TOKEN`: when set, a scrape must send `Authorization: Bearer <token>`. @default undefined */
  readonly metricsToken: string | undefined;
  /** `LOG_TURNS`: one `info` line per turn (masked openid, MsgId, outcome, duration). @default true */
  readonly logTurns: boolean;
  /** `HEALTH_PATH`: the liveness path (`200 ok` while the process serves); not `path`. @default '/healthz' */
  readonly healthPath: string;
  /**
   * `READY_PATH`: the readiness path (`200 ready` when the store answers, `503` otherwise and
   * during shutdown); neither `path` nor `healthPath`. @default '/readyz'
   */
  readonly readyPath: string;
  /** `REDIS_URL`: `redis://` or `rediss://` URL; `undefined` (unset or empty) means the in-process store. */
  readonly redisUrl: string | undefined;
  /**
   * `REDIS_CLUSTER`: `redisUrl` is one seed node of a Redis Cluster (e.g. `redis://10.0.0.1:7000`),
   * not a single Redis; the client discovers the other nodes from it, and the URL's password (if
   * any) is used for every node. Needs `REDIS_URL`, without a database other than 0.
   * @default false
   */
  readonly redisCluster: boolean;
  /** `DIALOG_TTL_SECONDS`: how long a dialog waits for the user's next message, in **seconds**. @default 60 */
  readonly dialogTtlSeconds: number;
  /** `REDIS_KEY_PREFIX`: prefix of every Redis key this server writes. @default 'wechat-dialog:' */
  readonly redisKeyPrefix: string;
  /** `APOLOGY_TEXT`: the reply when a dialog fails or Redis does not answer. */
  readonly apologyText: string;
  /** `DIALOG_MAX_MESSAGES`: most messages one dialog may receive; one more ends it. @default 100 */
  readonly dialogMaxMessages: number;
  /**
   * `REQUEST_MAX_AGE_SECONDS`: the freshness window, in **seconds**: a push whose `timestamp` (or,
   * encrypted, whose `CreateTime`) is further than this from the server's clock gets 401. `0` turns
   * the check off (unsafe: one captured signed query string then signs any body forever).
   * @default 300
   */
  readonly requestMaxAgeSeconds: number;
  /** `EFFECT_TIMEOUT_MS`: how long one `record()` effect may take, in **milliseconds**, unless its call says otherwise. @default 30000 */
  readonly effectTimeoutMs: number;
  /** `STATE_CACHE_BYTES`: the per-process budget of the cache of committed states, in **bytes**; `0` turns it off. @default 67108864 (64 MiB) */
  readonly stateCacheBytes: number;
  /** `MEMORY_STORE_MAX_ENTRIES`: most entries the in-process store holds (without `REDIS_URL`). @default 100000 */
  readonly memoryStoreMaxEntries: number;
  /** `WEB_CONCURRENCY`: how many server processes to run (Node's cluster module); > 1 needs Redis. @default 1 */
  readonly webConcurrency: number;
  /**
   * Security mode (安全模式), from `WECHAT_APPID` and `WECHAT_ENCODING_AES_KEY` (both or neither):
   * `undefined` means plaintext only. `required` (`WECHAT_REQUIRE_ENCRYPTION`) refuses plaintext pushes.
   * `previousEncodingAESKey` (`WECHAT_ENCODING_AES_KEY_PREVIOUS`) is tried when the current key fails.
   */
  readonly security:
    | {
        readonly appId: string;
        readonly encodingAESKey: string;
        readonly previousEncodingAESKey?: string;
        readonly required: boolean;
      }
    | undefined;
  /**
   * Late replies through the customer-service API (客服消息), from `WECHAT_APPSECRET` (needs
   * `WECHAT_APPID`): `undefined` means a slow turn is simply waited for. `deadlineMs`
   * (`REPLY_DEADLINE_MS`, **milliseconds**) is when a running turn is answered `success`;
   * `apiBase` (`WECHAT_API_BASE`) is where WeChat's API lives. `deliveryGraceMs`
   * (`DELIVERY_GRACE_MS`, **milliseconds**, default 10 000) is how long a reply made durable
   * before its commit waits for its own process before another process sends it.
   */
  readonly lateReplies:
    | { readonly appId: string; readonly appSecret: string; readonly deadlineMs: number; readonly apiBase: string; readonly deliveryGraceMs: number }
    | undefined;
  /**
   * `WECHAT_ACCOUNT`: the Official Account's original id (原始ID, `gh_…`, the `ToUserName` of its
   * users' messages), needed by pushes that start a dialog. @default undefined
   */
  readonly account: string | undefined;
  /**
   * The push API (`POST /push`), on when `PUSH_API_KEYS` is set (it needs `WECHAT_APPID` and
   * `WECHAT_APPSECRET` to send): `keys` (`PUSH_API_KEYS`, comma-separated `name:key`), `path`
   * (`PUSH_PATH`, default `/push`), `ratePerMinute` (`PUSH_RATE_LIMIT`: pushes per minute per
   * key, default 600). `undefined`: the API is off.
   */
  readonly push: { readonly keys: readonly ApiKey[]; readonly path: string; readonly ratePerMinute: number } | undefined;
  /** `LOG_LEVEL`: pino level. @default 'info' */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Thrown by {@link loadConfig}; `message` is one line naming the variable and what it must be. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'INVALID_CONFIG';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a whole number from ${min} to ${max}`);

const emptyAsUndefined = (value: unknown): unknown => (value === '' ? undefined : value);

const schema = z.object({
  WECHAT_TOKEN: z
    .string({ error: 'is required: the Token (令牌) you set in the Official Account console, 3 to 32 letters or digits' })
    .regex(TOKEN_FORMAT, 'must be 3 to 32 letters or digits, as the Official Account console requires'),
  HOST: z.preprocess(emptyAsUndefined, z.string().default('0.0.0.0')),
  PORT: z.preprocess(emptyAsUndefined, integer(1, 65535).default(3000)),
  WECHAT_PATH: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\/[A-Za-z0-9._~\-/]*$/, 'must be a URL path starting with "/", e.g. /wechat')
      .default('/wechat'),
  ),
  HEALTH_PATH: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\/[A-Za-z0-9._~\-/]*$/, 'must be a URL path starting with "/", e.g. /healthz')
      .default('/healthz'),
  ),
  READY_PATH: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\/[A-Za-z0-9._~\-/]*$/, 'must be a URL path starting with "/", e.g. /readyz')
      .default('/readyz'),
  ),
  METRICS_PATH: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^(\/[A-Za-z0-9._~\-/]*|off)$/, 'must be a URL path starting with "/", e.g. /metrics, or off')
      .default('/metrics'),
  ),
  METRICS_TOKEN: z.preprocess(
    emptyAsUndefined,
    z.string().regex(/^[\x21-\x7e]{16,256}$/, 'must be 16 to 256 printable characters without spaces (a bearer token Prometheus sends)').optional(),
  ),
  LOG_TURNS: z.preprocess(
    emptyAsUndefined,
    z
      .enum(['true', 'false', '1', '0'], { error: 'must be true or false (or 1 or 0): whether each turn is logged at info' })
      .default('true')
      .transform((value) => value === 'true' || value === '1'),
  ),
  REDIS_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), or empty for the in-process store')
      .optional(),
  ),
  REDIS_CLUSTER: z.preprocess(
    emptyAsUndefined,
    z
      .enum(['true', 'false', '1', '0'], { error: 'must be true or false (or 1 or 0): whether REDIS_URL is one node of a Redis Cluster' })
      .default('false')
      .transform((value) => value === 'true' || value === '1'),
  ),
  DIALOG_TTL_SECONDS: z.preprocess(emptyAsUndefined, integer(1, 86_400).default(60)),
  REDIS_KEY_PREFIX: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[^\s{}]{1,64}$/, 'must be 1 to 64 characters without spaces or braces (braces are the hash tag)')
      .default('wechat-dialog:'),
  ),
  DIALOG_MAX_MESSAGES: z.preprocess(emptyAsUndefined, integer(1, 10_000).default(100)),
  REQUEST_MAX_AGE_SECONDS: z.preprocess(emptyAsUndefined, integer(0, 86_400).default(300)),
  EFFECT_TIMEOUT_MS: z.preprocess(emptyAsUndefined, integer(1, MAX_TIMEOUT_MS).default(30_000)),
  STATE_CACHE_BYTES: z.preprocess(emptyAsUndefined, integer(0, 2 ** 40).default(64 * 1024 * 1024)),
  MEMORY_STORE_MAX_ENTRIES: z.preprocess(emptyAsUndefined, integer(1, 100_000_000).default(100_000)),
  WEB_CONCURRENCY: z.preprocess(emptyAsUndefined, integer(1, 64).default(1)),
  WECHAT_APPID: z.preprocess(
    emptyAsUndefined,
    z.string().regex(APP_ID_FORMAT, "must be the account's AppID (开发者ID), e.g. wx0123456789abcdef").optional(),
  ),
  WECHAT_ENCODING_AES_KEY: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(ENCODING_AES_KEY_FORMAT, 'must be the 43-letter-or-digit EncodingAESKey (消息加解密密钥) from the console')
      .optional(),
  ),
  WECHAT_ENCODING_AES_KEY_PREVIOUS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(ENCODING_AES_KEY_FORMAT, 'must be the previous 43-letter-or-digit EncodingAESKey, kept while the console switches keys')
      .optional(),
  ),
  WECHAT_APPSECRET: z.preprocess(
    emptyAsUndefined,
    z.string().regex(/^[A-Za-z0-9]{16,64}$/, "must be the account's AppSecret (开发者密码), letters and digits").optional(),
  ),
  REPLY_DEADLINE_MS: z.preprocess(emptyAsUndefined, integer(100, 4_900).default(4_500)),
  DELIVERY_GRACE_MS: z.preprocess(emptyAsUndefined, integer(100, 600_000).default(10_000)),
  WECHAT_API_BASE: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^https?:\/\/[^\s/?#]+$/, 'must be a base URL without a path, e.g. https://api.weixin.qq.com')
      .default('https://api.weixin.qq.com'),
  ),
  WECHAT_REQUIRE_ENCRYPTION: z.preprocess(
    emptyAsUndefined,
    z.enum(['true', 'false', '1', '0'], { error: 'must be true or false (or 1 or 0)' }).default('false'),
  ),
  WECHAT_ACCOUNT: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(ACCOUNT_ID_FORMAT, "must be the account's original id (原始ID), gh_ and then letters, digits, _ or - (gh_0123456789ab): the ToUserName of its users' messages")
      .optional(),
  ),
  PUSH_API_KEYS: z.preprocess(emptyAsUndefined, z.string().optional()),
  PUSH_PATH: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~-]$/, 'must be a URL path starting with "/" and not ending with "/", e.g. /push')
      .default('/push'),
  ),
  PUSH_RATE_LIMIT: z.preprocess(emptyAsUndefined, integer(1, 1_000_000).default(600)),
  APOLOGY_TEXT: z.preprocess(emptyAsUndefined, z.string().default('抱歉，出了点问题，请稍后再试。')),
  LOG_LEVEL: z.preprocess(
    emptyAsUndefined,
    z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
        error: 'must be one of fatal, error, warn, info, debug, trace, silent',
      })
      .default('info'),
  ),
});

/** The path of a URL (`/15` for a database number), or `undefined` when it cannot be parsed. */
function urlPath(url: string): string | undefined {
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}

/**
 * Reads and validates the configuration.
 * @param env - the environment, usually `process.env`.
 * @throws {ConfigError} for the first missing or invalid variable, with a one-line message such
 *   as `WECHAT_TOKEN is required: the Token (令牌) you set in the Official Account console, ...`.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const result = schema.safeParse(env);
  if (!result.success) {
    const issue = result.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(variable, `${variable} ${issue?.message ?? 'is invalid'}`);
  }
  const e = result.data;
  if (e.WECHAT_ENCODING_AES_KEY !== undefined && e.WECHAT_APPID === undefined) {
    throw new ConfigError('WECHAT_APPID', 'WECHAT_APPID is required too: security mode needs both WECHAT_APPID and WECHAT_ENCODING_AES_KEY');
  }
  if (e.WECHAT_APPID !== undefined && e.WECHAT_ENCODING_AES_KEY === undefined && e.WECHAT_APPSECRET === undefined) {
    throw new ConfigError(
      'WECHAT_ENCODING_AES_KEY',
      'WECHAT_ENCODING_AES_KEY is required too: WECHAT_APPID is used by security mode (with WECHAT_ENCODING_AES_KEY) or late replies (with WECHAT_APPSECRET)',
    );
  }
  if (e.WECHAT_ENCODING_AES_KEY_PREVIOUS !== undefined && e.WECHAT_ENCODING_AES_KEY === undefined) {
    throw new ConfigError(
      'WECHAT_ENCODING_AES_KEY_PREVIOUS',
      'WECHAT_ENCODING_AES_KEY_PREVIOUS needs WECHAT_ENCODING_AES_KEY (the current key) and WECHAT_APPID',
    );
  }
  if (e.WECHAT_APPSECRET !== undefined && e.WECHAT_APPID === undefined) {
    throw new ConfigError('WECHAT_APPSECRET', 'WECHAT_APPSECRET needs WECHAT_APPID: the access_token is fetched for that AppID');
  }
  const requireEncryption = e.WECHAT_REQUIRE_ENCRYPTION === 'true' || e.WECHAT_REQUIRE_ENCRYPTION === '1';
  if (requireEncryption && e.WECHAT_APPID === undefined) {
    throw new ConfigError(
      'WECHAT_REQUIRE_ENCRYPTION',
      'WECHAT_REQUIRE_ENCRYPTION needs WECHAT_APPID and WECHAT_ENCODING_AES_KEY: without them nothing can be decrypted',
    );
  }
  for (const variable of ['HEALTH_PATH', 'READY_PATH', 'METRICS_PATH'] as const) {
    if (e[variable] === e.WECHAT_PATH) {
      throw new ConfigError(variable, `${variable} must differ from WECHAT_PATH (${e.WECHAT_PATH}): set one of them to another path`);
    }
  }
  const push = pushOf(e);
  if (push !== undefined) {
    for (const [variable, other] of [['WECHAT_PATH', e.WECHAT_PATH], ['HEALTH_PATH', e.HEALTH_PATH], ['READY_PATH', e.READY_PATH], ['METRICS_PATH', e.METRICS_PATH]] as const) {
      if (push.path === other) throw new ConfigError('PUSH_PATH', `PUSH_PATH must differ from ${variable} (${other}): set one of them to another path`);
    }
  }
  if (e.METRICS_PATH === e.HEALTH_PATH || e.METRICS_PATH === e.READY_PATH) {
    throw new ConfigError('METRICS_PATH', `METRICS_PATH must differ from HEALTH_PATH and READY_PATH (${e.METRICS_PATH})`);
  }
  if (e.READY_PATH === e.HEALTH_PATH) {
    throw new ConfigError('READY_PATH', `READY_PATH must differ from HEALTH_PATH (${e.HEALTH_PATH}): liveness and readiness answer different questions`);
  }
  if (e.WEB_CONCURRENCY > 1 && e.REDIS_URL === undefined) {
    throw new ConfigError(
      'WEB_CONCURRENCY',
      'WEB_CONCURRENCY above 1 needs REDIS_URL: without Redis each process would keep its own dialog state',
    );
  }
  if (e.REDIS_CLUSTER && e.REDIS_URL === undefined) {
    throw new ConfigError(
      'REDIS_CLUSTER',
      'REDIS_CLUSTER=true needs REDIS_URL: the address of one node of the cluster, e.g. redis://10.0.0.1:7000',
    );
  }
  // The client would throw on it, with the whole URL (password included) in the error: say why here, without it.
  const redisPath = e.REDIS_URL === undefined ? '' : urlPath(e.REDIS_URL);
  if (redisPath === undefined) {
    throw new ConfigError(
      'REDIS_URL',
      e.REDIS_CLUSTER
        ? 'REDIS_URL must be a URL such as redis://10.0.0.1:7000 (one node of the cluster) when REDIS_CLUSTER is true; percent-encode / ? # in the password (%2F %3F %23)'
        : 'REDIS_URL is not a valid URL, e.g. redis://:password@127.0.0.1:6379/0: percent-encode / ? # in the password (%2F %3F %23)',
    );
  }
  if (!/^(\/\d*)?$/.test(redisPath)) {
    throw new ConfigError(
      'REDIS_URL',
      'REDIS_URL may only have a database number as its path, e.g. redis://:password@127.0.0.1:6379/0: percent-encode / ? # in the password (%2F %3F %23)',
    );
  }
  if (e.REDIS_CLUSTER && !['', '/', '/0'].includes(redisPath)) {
    throw new ConfigError(
      'REDIS_URL',
      'REDIS_URL must not select a database other than 0 when REDIS_CLUSTER is true: a Redis Cluster has only database 0',
    );
  }
  return {
    token: e.WECHAT_TOKEN,
    host: e.HOST,
    port: e.PORT,
    path: e.WECHAT_PATH,
    healthPath: e.HEALTH_PATH,
    metricsPath: e.METRICS_PATH === 'off' ? undefined : e.METRICS_PATH,
    metricsToken: e.METRICS_TOKEN,
    logTurns: e.LOG_TURNS,
    readyPath: e.READY_PATH,
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER,
    dialogTtlSeconds: e.DIALOG_TTL_SECONDS,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    apologyText: e.APOLOGY_TEXT,
    security:
      e.WECHAT_APPID === undefined || e.WECHAT_ENCODING_AES_KEY === undefined
        ? undefined
        : {
            appId: e.WECHAT_APPID,
            encodingAESKey: e.WECHAT_ENCODING_AES_KEY,
            ...(e.WECHAT_ENCODING_AES_KEY_PREVIOUS === undefined ? {} : { previousEncodingAESKey: e.WECHAT_ENCODING_AES_KEY_PREVIOUS }),
            required: requireEncryption,
          },
    lateReplies:
      e.WECHAT_APPID === undefined || e.WECHAT_APPSECRET === undefined
        ? undefined
        : {
            appId: e.WECHAT_APPID,
            appSecret: e.WECHAT_APPSECRET,
            deadlineMs: e.REPLY_DEADLINE_MS,
            apiBase: e.WECHAT_API_BASE,
            deliveryGraceMs: e.DELIVERY_GRACE_MS,
          },
    dialogMaxMessages: e.DIALOG_MAX_MESSAGES,
    requestMaxAgeSeconds: e.REQUEST_MAX_AGE_SECONDS,
    effectTimeoutMs: e.EFFECT_TIMEOUT_MS,
    stateCacheBytes: e.STATE_CACHE_BYTES,
    memoryStoreMaxEntries: e.MEMORY_STORE_MAX_ENTRIES,
    webConcurrency: e.WEB_CONCURRENCY,
    account: e.WECHAT_ACCOUNT,
    push,
    logLevel: e.LOG_LEVEL,
  };
}

/**
 * The push API's settings, or `undefined` without `PUSH_API_KEYS`.
 * @throws {ConfigError} for keys that do not parse (the message never quotes a key), or keys
 *   without `WECHAT_APPID` and `WECHAT_APPSECRET` (pushes are sent with the access_token).
 */
function pushOf(e: z.infer<typeof schema>): Config['push'] {
  if (e.PUSH_API_KEYS === undefined) return undefined;
  let keys: readonly ApiKey[];
  try {
    keys = parseApiKeys(e.PUSH_API_KEYS);
  } catch (err) {
    if (err instanceof ApiKeysError) throw new ConfigError('PUSH_API_KEYS', `PUSH_API_KEYS ${err.message}`);
    throw err;
  }
  if (e.WECHAT_APPID === undefined || e.WECHAT_APPSECRET === undefined) {
    throw new ConfigError(
      'PUSH_API_KEYS',
      'PUSH_API_KEYS needs WECHAT_APPID and WECHAT_APPSECRET: pushes are sent as customer-service and template messages with the access_token',
    );
  }
  return { keys, path: e.PUSH_PATH, ratePerMinute: e.PUSH_RATE_LIMIT };
}
