/**
 * Server processes for multi-process tests: spawn N servers (`node --import tsx src/cli/main.ts serve --router dialogs/router.ts`) on
 * free loopback ports, wait until each answers a signed echostr handshake, and stop them all by
 * signalling their process groups. Also: deleting the Redis keys a test's prefix left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { signedQuery } from './http.js';
import { freePorts } from './ports.js';

/** The repository root: the servers' working directory. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** One running server process. */
export interface ServerProcess {
  /** 0-based position in its group, for messages ("process 2"). */
  readonly index: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>/wechat` */
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or the signal name) once it has exited. */
  readonly exited: Promise<number | string | null>;
}

/** Options of {@link ServerGroup.start}. */
export interface StartOptions {
  /** Environment of every server, on top of `PATH`, `HOME`, `DOTENV_CONFIG_PATH`, `HOST` and `PORT`. Must hold `WECHAT_TOKEN`. */
  readonly env: Readonly<Record<string, string>>;
  /** How long each server may take to answer the handshake, in ms. @default 30000 */
  readonly readyTimeoutMs?: number;
  /** The `--router` module, relative to the repository root. @default 'dialogs/router.ts' */
  readonly router?: string;
}


function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Signals the child's whole process group; a group already gone is fine. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || !isRunning(child)) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true when `promise` settles within `ms`, false otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  const settled = promise.then(
    () => true as const,
    () => true as const,
  );
  const result = await Promise.race([settled, timeout]);
  clearTimeout(timer);
  return result;
}

/**
 * A set of server processes started together and stopped together. Every child is registered as
 * soon as it is spawned, so {@link stop} reaches all of them even when {@link start} failed halfway.
 */
export class ServerGroup {
  readonly #processes: ServerProcess[] = [];
  readonly #spawned: ChildProcess[] = [];
  /** Last resort when the test process exits without calling stop(): kill what is left (sync). */
  readonly #onExit = () => {
    for (const child of this.#spawned) signalGroup(child, 'SIGKILL');
  };

  /** The running servers, in start order. */
  get processes(): readonly ServerProcess[] {
    return this.#processes;
  }

  /** Starts `n` servers in parallel and waits until every one answers a signed echostr handshake. */
  async start(n: number, options: StartOptions): Promise<readonly ServerProcess[]> {
    const ports = await freePorts(n);
    const started = await Promise.all(ports.map((port, index) => this.#startOne(index, port, options)));
    this.#processes.push(...started);
    return this.#processes;
  }

  /**
   * Stops every server: SIGTERM to each process group, SIGKILL to those still alive after 3 s.
   * Never throws; waits (bounded) for the exits.
   */
  async stop(): Promise<void> {
    process.off('exit', this.#onExit);
    const children = this.#spawned.splice(0);
    this.#processes.splice(0);
    const exits = children.map((child) =>
      isRunning(child) ? new Promise<void>((resolve) => child.once('exit', () => resolve())) : Promise.resolve(),
    );
    for (const child of children) signalGroup(child, 'SIGTERM');
    await within(Promise.all(exits), 3_000);
    for (const child of children) signalGroup(child, 'SIGKILL');
    await within(Promise.all(exits), 3_000);
  }

  async #startOne(index: number, firstPort: number, options: StartOptions): Promise<ServerProcess> {
    // A port found free can be taken by someone else before the server binds it: try another (bounded).
    let port = firstPort;
    for (let attempt = 1; ; attempt += 1) {
      const server = this.#spawn(index, port, options.env, options.router ?? 'dialogs/router.ts');
      const outcome = await this.#waitReady(server, options.env.WECHAT_TOKEN ?? '', options.readyTimeoutMs ?? 30_000);
      if (outcome === 'ready') return server;
      const portTaken = /EADDRINUSE|cannot listen/.test(server.output());
      if (!portTaken || attempt >= 3) {
        throw new Error(`server process ${index} on port ${port} ${outcome}; output:\n${server.output()}`);
      }
      [port] = (await freePorts(1)) as [number];
    }
  }

  #spawn(index: number, port: number, env: Readonly<Record<string, string>>, router: string): ServerProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--router', router], {
      cwd: ROOT,
      // Only what the server needs: nothing inherited from the test environment.
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DOTENV_CONFIG_PATH: 'test/no-such.env',
        ...env,
        HOST: '127.0.0.1',
        PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so stop() reaches everything it started
    });
    if (this.#spawned.length === 0) process.once('exit', this.#onExit);
    this.#spawned.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    return { index, port, url: `http://127.0.0.1:${port}/wechat`, child, output: () => output, exited };
  }

  /** Polls a signed `GET ?echostr=…` until the server echoes it; 'ready', or why not. */
  async #waitReady(server: ServerProcess, token: string, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const echostr = randomBytes(8).toString('hex');
    while (Date.now() < deadline) {
      if (!isRunning(server.child)) {
        await within(server.exited, 1_000); // let the last output arrive
        return `exited (${String(server.child.exitCode ?? server.child.signalCode)}) before answering the handshake`;
      }
      const query = new URLSearchParams(signedQuery(undefined, token).slice(1));
      query.set('echostr', echostr);
      try {
        const response = await fetch(`${server.url}?${query.toString()}`, { signal: AbortSignal.timeout(2_000) });
        const body = await response.text();
        if (response.status === 200 && body === echostr) return 'ready';
        return `answered the handshake with ${response.status} ${JSON.stringify(body.slice(0, 200))}`;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    return `did not answer the handshake within ${timeoutMs} ms`;
  }
}

/**
 * Deletes every key under `keyPrefix` (`SCAN MATCH <prefix>*` + `DEL`) and returns how many. The
 * prefix must hold no glob characters. Bounded: gives up after 10 000 SCAN calls.
 */
export async function deleteRedisKeys(redis: Redis, keyPrefix: string): Promise<number> {
  if (/[*?[\]\\]/.test(keyPrefix)) throw new Error(`key prefix ${keyPrefix} holds a glob character`);
  let deleted = 0;
  let cursor = '0';
  for (let calls = 0; calls < 10_000; calls += 1) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
    if (keys.length > 0) deleted += await redis.del(...keys);
    cursor = next;
    if (cursor === '0') return deleted;
  }
  throw new Error(`SCAN of ${keyPrefix}* did not finish within 10000 calls`);
}
