/**
 * ioredis clients for the {@link RedisStore}: one Redis ({@link createRedisClient}) or a Redis
 * Cluster ({@link createRedisClusterClient}), both set to fail fast, as a webhook that must answer
 * within WeChat's 5 s needs, and to reconnect by themselves.
 *
 * @module
 */
import { Cluster, Redis } from 'ioredis';

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions {
  /**
   * How long one command may wait for its reply, in **milliseconds**, including time spent queued
   * while the client (re)connects; then it fails with "Command timed out". Keep it well under
   * WeChat's 5 s reply deadline: a turn makes one or two commands.
   * @default 1000
   */
  readonly commandTimeoutMs?: number;
  /**
   * How long one attempt to open the TCP connection may take, in **milliseconds**, before it is
   * abandoned and retried.
   * @default 2000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Upper bound of the delay between reconnection attempts, in **milliseconds**. The delay doubles
   * from 100 ms up to this. The client never stops trying.
   * @default 2000
   */
  readonly maxReconnectDelayMs?: number;
  /**
   * Called with every `'error'` event of the client (a refused connection, a reset socket, ...), for
   * logging. While Redis is down this fires on every reconnection attempt. Errors are swallowed
   * when absent; either way they never crash the process.
   * @default undefined
   */
  readonly onError?: (err: Error) => void;
}

/**
 * Builds an ioredis client for a webhook that must answer within WeChat's 5 s:
 *
 * - every command fails after `commandTimeoutMs` (default 1000 ms) rather than hanging, also while
 *   Redis is unreachable (the offline queue is kept, so commands sent during startup or a short
 *   blip wait for the connection, but never longer than that);
 * - a command is retried over at most one reconnection (`maxRetriesPerRequest: 1`), and commands
 *   that were in flight when a connection dropped are not resent later (they have already failed
 *   for their caller);
 * - the client reconnects by itself, forever, with a delay doubling from 100 ms up to
 *   `maxReconnectDelayMs`;
 * - an `'error'` listener is always attached (forwarding to `onError`), so an unreachable Redis
 *   never becomes an unhandled `'error'` event.
 *
 * The client connects at once; a database number in the URL (`redis://host:6379/15`) is selected.
 *
 * @param url - `redis://[[user]:password@]host[:port][/db]` or `rediss://…` for TLS.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): Redis {
  const { commandTimeoutMs = 1000, connectTimeoutMs = 2000, maxReconnectDelayMs = 2000, onError } = options;
  const redis = new Redis(url, {
    commandTimeout: commandTimeoutMs,
    connectTimeout: connectTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 16), maxReconnectDelayMs),
  });
  redis.on('error', (err: Error) => onError?.(err));
  return redis;
}

/** The seed node and the per-node connection options a cluster URL gives. */
interface ClusterSeed {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

/**
 * Reads `redis://[[user]:password@]host[:port][/0]` (or `rediss://…`) as one node of a cluster.
 * @throws {RangeError} when it is not such a URL, or selects a database other than 0 (a cluster
 *   has only database 0).
 */
function parseClusterSeedUrl(seedUrl: string): ClusterSeed {
  let url: URL;
  try {
    url = new URL(seedUrl);
  } catch {
    // The value is not repeated: it may hold a password.
    throw new RangeError('the cluster seed must be a redis:// or rediss:// URL such as redis://10.0.0.1:7000 (percent-encode / ? # in a password)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new RangeError(`the cluster seed must be a redis:// or rediss:// URL such as redis://10.0.0.1:7000, got protocol ${url.protocol}`);
  }
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && db !== '0') {
    throw new RangeError(`a Redis Cluster has only database 0, but the seed URL selects database ${JSON.stringify(db)}: remove "/${db}"`);
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1'); // IPv6 literals come bracketed
  if (hostname === '') throw new RangeError('the cluster seed URL has no host, e.g. redis://10.0.0.1:7000');
  return {
    host: hostname,
    port: url.port === '' ? 6379 : Number(url.port),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: url.protocol === 'rediss:',
  };
}

/**
 * Builds an ioredis `Cluster` client with the same fail-fast behaviour as {@link createRedisClient},
 * for a Redis Cluster reached through one seed node (the client discovers the other nodes and the
 * slot map from it, and follows `MOVED`/`ASK` redirections):
 *
 * - every command fails after `commandTimeoutMs` (default 1000 ms) once it is sent to a node; a
 *   {@link RedisStore} on this client also waits at most that long for the cluster to be ready
 *   before it sends anything, so a call fails within about twice that while the cluster is down;
 * - a command is retried over at most one reconnection of its node (`maxRetriesPerRequest: 1`);
 *   a command that fails on a closed connection or a `CLUSTERDOWN` reply fails at once
 *   (`retryDelayOnFailover: 0`, `retryDelayOnClusterDown: 0`) instead of being sent again later,
 *   when it may already have failed for its caller;
 * - when no node answers, the client reconnects through the seed by itself, forever, with a delay
 *   doubling from 100 ms up to `maxReconnectDelayMs` (`clusterRetryStrategy`); a lost connection to
 *   one node is not retried on its own, but opened again by the next command for that node's slots
 *   (after a `MOVED` from another node) or the next slot-map refresh (every 5 s), so a master that
 *   comes back serves again without a restart;
 * - `'error'` (no node reachable) and `'node error'` (one node) events are forwarded to `onError`,
 *   so an unreachable cluster never becomes an unhandled `'error'` event.
 *
 * The username and password in the URL are used for every node. The client connects at once.
 *
 * @param seedUrl - one node of the cluster: `redis://[[user]:password@]host[:port]` (database 0
 *   only: a trailing `/0` is accepted) or `rediss://…` for TLS.
 * @throws {RangeError} when `seedUrl` is not such a URL or selects a database other than 0.
 */
export function createRedisClusterClient(seedUrl: string, options: RedisClientOptions = {}): Cluster {
  const { commandTimeoutMs = 1000, connectTimeoutMs = 2000, maxReconnectDelayMs = 2000, onError } = options;
  const seed = parseClusterSeedUrl(seedUrl);
  const cluster = new Cluster([{ host: seed.host, port: seed.port }], {
    enableOfflineQueue: true,
    clusterRetryStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 16), maxReconnectDelayMs),
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    slotsRefreshTimeout: commandTimeoutMs,
    redisOptions: {
      commandTimeout: commandTimeoutMs,
      connectTimeout: connectTimeoutMs,
      maxRetriesPerRequest: 1,
      autoResendUnfulfilledCommands: false,
      ...(seed.username === undefined ? {} : { username: seed.username }),
      ...(seed.password === undefined ? {} : { password: seed.password }),
      ...(seed.tls ? { tls: {} } : {}),
    },
  });
  cluster.on('error', (err: Error) => onError?.(err));
  cluster.on('node error', (err: Error, node: string) =>
    onError?.(new Error(`cluster node ${node}: ${err.message}`, { cause: err })),
  );
  return cluster;
}
