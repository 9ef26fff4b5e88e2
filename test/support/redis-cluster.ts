/**
 * A throwaway 3-master Redis Cluster for tests: three `redis-server --cluster-enabled yes` children
 * (not daemonized) on free loopback ports, no persistence, one fresh working directory for their
 * `nodes-<port>.conf` files, joined with `redis-cli --cluster create … --cluster-replicas 0`.
 *
 * ```ts
 * const cluster = await startRedisCluster(); // ~1-2 s
 * createRedisClusterClient(cluster.seedUrl);  // redis://127.0.0.1:<port of the first node>
 * await cluster.stop();                      // SIGKILL all three, remove the directory
 * ```
 *
 * A missing `redis-server` or `redis-cli`, a node that does not answer, or a cluster that does not
 * reach `cluster_state:ok` within the bound fail with a message that says which, with the output
 * of the servers and of `redis-cli`.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findFreePort } from './ports.js';

/** A running cluster of three masters on 127.0.0.1. */
export interface RedisCluster {
  /** `redis://127.0.0.1:<port of the first node>`: what `REDIS_URL` would be with `REDIS_CLUSTER=true`. */
  readonly seedUrl: string;
  /** The client ports of the three masters (each also uses port + 10000 for the cluster bus). */
  readonly ports: readonly number[];
  /** The last few KiB of each server's output, for failure messages. */
  output(): string;
  /** Kills one node (SIGKILL: a crash) and waits for it to exit; the others keep running. */
  killNode(port: number): Promise<void>;
  /**
   * Starts a killed node again on its port (killing it first if it runs), with its cluster config
   * (identity, slots) but an empty dataset, and waits until every node reports `cluster_state:ok`.
   */
  restartNode(port: number): Promise<void>;
  /** Kills the three servers (SIGKILL), waits for them to exit, removes their directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** How long to wait for the nodes to answer and the cluster to reach `cluster_state:ok`, in ms. @default 15000 */
  readonly readyTimeoutMs?: number;
}

const NODES = 3;
/** A node listens on P and P + 10000 (cluster bus): keep P + 10000 a valid port, with room. */
const MAX_CLIENT_PORT = 55_000;
const BUS_PORT_OFFSET = 10_000;

/** `command -v <name>`; throws, saying how to get it, when it is not on PATH. */
function commandPath(name: 'redis-server' | 'redis-cli'): string {
  let found = '';
  try {
    found = execFileSync('/bin/sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    found = '';
  }
  if (found === '') {
    throw new Error(
      `${name} is not installed (\`command -v ${name}\` found nothing): the Redis Cluster test starts its own 3-node ` +
        'cluster, so it needs redis-server and redis-cli on PATH (Debian/Ubuntu: apt-get install redis-server; .ci/run installs it)',
    );
  }
  return found;
}

/** Resolves to `true` when `port` can be bound on 127.0.0.1 right now. */
async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (bound) await new Promise<void>((resolve) => server.close(() => resolve()));
  return bound;
}


/** `count` distinct ports P ≤ 55000 such that P and P + 10000 were both free a moment ago. */
async function freeClusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt += 1) {
    if (attempt > 500) throw new Error(`could not find ${count} free port pairs (P and P + ${BUS_PORT_OFFSET}) on 127.0.0.1`);
    const port = await findFreePort();
    if (port > MAX_CLIENT_PORT || ports.includes(port) || ports.some((p) => Math.abs(p - port) === BUS_PORT_OFFSET)) continue;
    if (await canBind(port + BUS_PORT_OFFSET)) ports.push(port);
  }
  return ports;
}

class PortTakenError extends Error {}

/** Starts the cluster and resolves once every node reports `cluster_state:ok`. Retries with fresh ports if one was taken meanwhile. */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const server = commandPath('redis-server');
  const cli = commandPath('redis-cli');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await startOn(await freeClusterPorts(NODES), server, cli, readyTimeoutMs);
    } catch (err) {
      if (!(err instanceof PortTakenError)) throw err;
      lastError = err;
    }
  }
  throw lastError;
}

interface Node {
  readonly port: number;
  /** The running (or last) redis-server of this node; `undefined` only while it is being spawned. */
  child: ChildProcess | undefined;
  tail: string;
  spawnError?: Error | undefined;
}

async function startOn(ports: readonly number[], serverBin: string, cliBin: string, readyTimeoutMs: number): Promise<RedisCluster> {
  const deadline = performance.now() + readyTimeoutMs;
  const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-test-'));
  /** Starts (or restarts) the node's redis-server; its nodes-<port>.conf in `dir` keeps its identity and slots. */
  const spawnServer = (node: Node) => {
    const child = spawn(
      serverBin,
      [
        '--port', String(node.port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-config-file', `nodes-${node.port}.conf`,
        '--dir', dir,
        '--save', '',
        '--appendonly', 'no',
        '--daemonize', 'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer) => {
      node.tail = (node.tail + chunk.toString('utf8')).slice(-4096);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('error', (err) => {
      node.spawnError = err;
    });
    node.child = child;
  };
  const nodes: Node[] = ports.map((port) => {
    const node: Node = { port, child: undefined, tail: '' };
    spawnServer(node);
    return node;
  });
  // If the test process exits without stopping them, do not leave redis-servers behind.
  const killOnExit = () => {
    for (const node of nodes) node.child?.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const output = () => nodes.map((n) => `--- redis-server :${n.port} ---\n${n.tail}`).join('\n');
  const kill = async ({ child }: Node) => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  };
  const nodeOn = (port: number): Node => {
    const node = nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no node of this cluster listens on port ${port} (ports: ${ports.join(', ')})`);
    return node;
  };
  const killNode = (port: number) => kill(nodeOn(port));
  const restartNode = async (port: number) => {
    const node = nodeOn(port);
    await kill(node);
    node.spawnError = undefined;
    spawnServer(node);
    const restartDeadline = performance.now() + readyTimeoutMs;
    await waitUntilOurs(node, restartDeadline, readyTimeoutMs);
    await waitUntilClusterOk(ports, restartDeadline, readyTimeoutMs, output);
  };
  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      await Promise.all(nodes.map(kill));
      process.off('exit', killOnExit);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await Promise.all(nodes.map((node) => waitUntilOurs(node, deadline, readyTimeoutMs)));
    const created = await run(
      cliBin,
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      Math.max(1000, Math.ceil(deadline - performance.now())),
    );
    if (created.failed) {
      throw new Error(`redis-cli --cluster create failed (${created.failed}); its output:\n${created.output}\n${output()}`);
    }
    await waitUntilClusterOk(ports, deadline, readyTimeoutMs, () => `redis-cli --cluster create said:\n${created.output}\n${output()}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    seedUrl: `redis://127.0.0.1:${ports[0]}`,
    ports,
    output,
    killNode,
    restartNode,
    stop,
  };
}

/** A short-lived probe connection to one node: no retries, no offline queue. */
function probe(port: number): Redis {
  return new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
    commandTimeout: 500,
  });
}

async function withProbe<T>(port: number, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = probe(port);
  redis.on('error', () => {}); // failures surface through the command's promise
  try {
    await redis.connect();
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

/** Waits until the node answers PING and is the process we started (not another Redis on the port). */
async function waitUntilOurs(node: Node, deadline: number, timeoutMs: number): Promise<void> {
  let lastProbe = 'no answer yet';
  for (;;) {
    if (node.spawnError !== undefined) throw new Error(`could not run redis-server (${node.spawnError.message})`, { cause: node.spawnError });
    const { child } = node;
    if (child === undefined) throw new Error(`redis-server on 127.0.0.1:${node.port} was not started`);
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${String(child.signalCode)}`;
      const message = `redis-server on 127.0.0.1:${node.port} (cluster node) exited before answering PING (${how}); its output:\n${node.tail}`;
      throw /already in use/i.test(node.tail) ? new PortTakenError(message) : new Error(message);
    }
    try {
      const pid = await withProbe(node.port, async (redis) => {
        await redis.ping();
        const info = await redis.info('server');
        return Number(/^process_id:(\d+)/m.exec(info)?.[1]);
      });
      if (pid === child.pid) return;
      lastProbe = `port ${node.port} is answered by another Redis (process_id ${pid}), not ours (pid ${String(child.pid)})`;
    } catch (err) {
      lastProbe = err instanceof Error ? err.message : String(err);
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `redis-server on 127.0.0.1:${node.port} (cluster node) did not answer PING within ${timeoutMs} ms (last probe: ${lastProbe}); its output:\n${node.tail}`,
      );
    }
    await sleep(25);
  }
}

/** Waits until every node reports `cluster_state:ok` and knows all the nodes. */
async function waitUntilClusterOk(ports: readonly number[], deadline: number, timeoutMs: number, context: () => string): Promise<void> {
  let last = '';
  for (;;) {
    try {
      const infos = await Promise.all(ports.map((port) => withProbe(port, (redis) => redis.cluster('INFO'))));
      const ok = infos.every(
        (info) => /^cluster_state:ok\r?$/m.test(info) && new RegExp(`^cluster_known_nodes:${ports.length}\\r?$`, 'm').test(info),
      );
      if (ok) return;
      last = infos.map((info, i) => `:${ports[i]} ${/^cluster_state:\w+/m.exec(info)?.[0] ?? '?'} ${/^cluster_known_nodes:\d+/m.exec(info)?.[0] ?? '?'}`).join(', ');
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (performance.now() >= deadline) {
      throw new Error(`the Redis Cluster on ports ${ports.join(', ')} did not reach cluster_state:ok within ${timeoutMs} ms (last: ${last}); ${context()}`);
    }
    await sleep(100);
  }
}

/** Runs a command; resolves with its output and, when it failed, why. */
function run(bin: string, args: readonly string[], timeoutMs: number): Promise<{ output: string; failed: string | undefined }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.slice(-4096);
      if (err === null) return resolve({ output, failed: undefined });
      const why = err.killed ? `killed after ${timeoutMs} ms` : `exit code ${String(err.code)}`;
      resolve({ output, failed: why });
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
