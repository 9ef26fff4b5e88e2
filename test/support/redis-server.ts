/**
 * A throwaway `redis-server` for tests that need to stop and start Redis under a live client:
 * one child process (not daemonized) on 127.0.0.1, a free port, no persistence, its own empty
 * working directory (so it never loads or writes a `dump.rdb` anywhere else).
 *
 * ```ts
 * const redis = await startRedisServer();          // a free port
 * await redis.stop();                              // SIGKILL, waits for the exit
 * const again = await startRedisServer({ port: redis.port }); // same port, empty dataset
 * ```
 *
 * A missing `redis-server`, a port that is taken, or a server that does not answer `PING` within
 * the bound fail with a message that says which, including the tail of the server's output.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort } from './ports.js';

/** A running `redis-server` child. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>/0` */
  readonly url: string;
  readonly pid: number;
  /** The last few KiB of the server's stdout and stderr. */
  output(): string;
  /**
   * Kills the server (SIGKILL by default: a crash, nothing flushed) and waits for it to exit;
   * removes its working directory. Safe to call more than once.
   */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Options of {@link startRedisServer}. */
export interface StartRedisServerOptions {
  /** The port to listen on; by default a free one (with a couple of retries if it gets taken). */
  readonly port?: number;
  /** How long to wait for the first `PING` answer, in milliseconds. @default 5000 */
  readonly readyTimeoutMs?: number;
}

let cachedPath: string | undefined;

/**
 * Whether the suites that start their own redis-server (fault, cluster) run: always when
 * `REDIS_URL` is set (CI; a missing binary then fails them loudly), otherwise only when
 * `redis-server` and `redis-cli` are installed, so `npm test` on a fresh machine without Redis
 * still passes on ioredis-mock. Prints why when they are skipped.
 */
export function ownRedisSuitesRun(suite: string): boolean {
  if (process.env.REDIS_URL) return true;
  const installed = ['redis-server', 'redis-cli'].every((bin) => {
    try {
      return execFileSync('/bin/sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() !== '';
    } catch {
      return false;
    }
  });
  if (!installed) console.log(`[tests] ${suite} skipped: redis-server/redis-cli not installed and REDIS_URL not set`);
  return installed;
}

/** The path `command -v redis-server` gives. @throws when there is none, saying so. */
export function redisServerPath(): string {
  if (cachedPath !== undefined) return cachedPath;
  let found = '';
  try {
    found = execFileSync('/bin/sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    found = '';
  }
  if (found === '') {
    throw new Error(
      'redis-server is not installed (`command -v redis-server` found nothing): this test starts and kills its own ' +
        'Redis, so it needs the binary on PATH (Debian/Ubuntu: apt-get install redis-server; .ci/run installs it)',
    );
  }
  cachedPath = found;
  return found;
}


/** Starts `redis-server` and resolves once it answers `PING` (and is the process we started). */
export async function startRedisServer(options: StartRedisServerOptions = {}): Promise<RedisServer> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 5000;
  if (options.port !== undefined) return startOn(options.port, readyTimeoutMs);
  // A free port can be taken between findFreePort and the bind: try a fresh one a few times.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await startOn(await findFreePort(), readyTimeoutMs);
    } catch (err) {
      if (!(err instanceof PortTakenError)) throw err;
      lastError = err;
    }
  }
  throw lastError;
}

class PortTakenError extends Error {}

async function startOn(port: number, readyTimeoutMs: number): Promise<RedisServer> {
  const bin = redisServerPath();
  const dir = mkdtempSync(join(tmpdir(), 'redis-test-'));
  const child = spawn(
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4096);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // If the test process exits without stopping it, do not leave a redis-server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  let stopped = false;
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (!stopped) {
      stopped = true;
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill(signal);
        await exited;
      }
      process.off('exit', killOnExit);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitUntilAnswering(child, port, readyTimeoutMs, () => tail);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    pid: child.pid as number,
    output: () => tail,
    stop,
  };
}

async function waitUntilAnswering(child: ChildProcess, port: number, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  let lastProbe = 'no answer yet';
  for (;;) {
    if (spawnError !== undefined) {
      throw new Error(`could not run redis-server (${spawnError.message})`, { cause: spawnError });
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      const out = output();
      const how = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${String(child.signalCode)}`;
      const message = `redis-server on 127.0.0.1:${port} exited before answering PING (${how}); its output:\n${out}`;
      throw /already in use/i.test(out) ? new PortTakenError(`port ${port} is taken: ${message}`) : new Error(message);
    }
    try {
      const pid = await pingAndPid(port, 500);
      // Something answers: make sure it is our child and not another Redis already on this port.
      if (pid === child.pid) return;
      lastProbe = `port ${port} is answered by another Redis (process_id ${pid}), not ours (pid ${String(child.pid)})`;
    } catch (err) {
      lastProbe = err instanceof Error ? err.message : String(err);
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `redis-server on 127.0.0.1:${port} did not answer PING within ${timeoutMs} ms (last probe: ${lastProbe}); its output:\n${output()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Sends `PING` and `INFO server` on a fresh connection; resolves to the server's `process_id` once it answered `+PONG`. */
function pingAndPid(port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let buffer = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | undefined, pid?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(pid as number);
    };
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => done(err));
    socket.once('close', () => done(new Error('the connection was closed without an answer')));
    socket.once('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const pong = Buffer.from('+PONG\r\n');
      if (buffer.length < pong.length) return;
      if (!buffer.subarray(0, pong.length).equals(pong)) {
        return done(new Error(`PING answered ${JSON.stringify(buffer.toString('utf8').slice(0, 100))}`));
      }
      const rest = buffer.subarray(pong.length);
      const headerEnd = rest.indexOf('\r\n');
      if (headerEnd < 0) return;
      const length = Number(rest.subarray(1, headerEnd).toString('ascii'));
      if (rest.length < headerEnd + 2 + length) return;
      const info = rest.subarray(headerEnd + 2, headerEnd + 2 + length).toString('utf8');
      const match = /^process_id:(\d+)/m.exec(info);
      if (match === null) return done(new Error('INFO server has no process_id'));
      done(undefined, Number(match[1]));
    });
  });
}
