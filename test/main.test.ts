/**
 * The server process as a user starts it: the README's run command (`npm start`), on the
 * in-process store and (when REDIS_URL is set) on Redis; and a bad config stopping startup with
 * one line naming the variable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseReply, signedQuery, textXml } from './support/http.js';
import { findFreePort } from './support/ports.js';
import { deleteRedisKeys } from './support/processes.js';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Where the servers on Redis keep their keys: this run's own prefix, deleted afterwards. */
const KEY_PREFIX = `test:main:${process.pid}:`;
const children: ChildProcess[] = [];
/** Signals the child's whole process group (npm start runs node under npm and sh). */
function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, name);
    } catch {
      // already gone
    }
  }
}
afterEach(() => {
  for (const child of children.splice(0)) signal(child, 'SIGKILL');
});
afterAll(async () => {
  // What the servers on Redis left under this run's prefix (states, handled messages, the delivery queue).
  if (!process.env.REDIS_URL) return;
  const redis = new Redis(process.env.REDIS_URL);
  try {
    await deleteRedisKeys(redis, KEY_PREFIX);
  } finally {
    redis.disconnect();
  }
});


interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(command: string, args: string[], env: Record<string, string>): Started {
  // Only what the server needs: no inherited REDIS_URL or WECHAT_* from the test environment.
  const child = spawn(command, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DOTENV_CONFIG_PATH: 'test/no-such.env', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: signals reach npm, sh and node alike, as Ctrl-C in a terminal does
  });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitFor(check: () => boolean, what: string, started: Started, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${started.output()}`);
    if (started.child.exitCode !== null) throw new Error(`exited (${started.child.exitCode}) before ${what}; output:\n${started.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** POSTs `body` on a connection of its own (no keep-alive) and resolves with the status. */
function postOnce(port: number, path: string, body: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-type': 'text/xml' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function talk(port: number): Promise<void> {
  const base = `http://127.0.0.1:${port}/wechat`;
  const q = new URLSearchParams(signedQuery(undefined, 'maintest123').slice(1));
  q.set('echostr', 'hello-echo');
  const echo = await fetch(`${base}?${q.toString()}`);
  expect(await echo.text()).toBe('hello-echo');
  const openid = `oMainTest${Date.now()}`;
  const say = async (content: string) => {
    const response = await fetch(`${base}${signedQuery(openid, 'maintest123')}`, { method: 'POST', body: textXml(openid, content) });
    return parseReply(await response.text()).Content;
  };
  expect(await say('累加器')).toBe('您需要累加几个数字？');
  expect(await say('1')).toBe('请输入第1个数字, 目前累加和:0');
  expect(await say('41')).toBe('累加结束，累加和: 41');
}

/** The `serve` command on a free port with REDIS_URL (its keys under a prefix of this test run) and `env`. */
async function startOnRedis(env: Record<string, string>): Promise<{ port: number; server: Started }> {
  const port = await findFreePort();
  const server = start(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--router', 'dialogs/router.ts'], {
    WECHAT_TOKEN: 'maintest123',
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: process.env.REDIS_URL ?? '',
    REDIS_KEY_PREFIX: KEY_PREFIX,
    DIALOG_TTL_SECONDS: '5',
    ...env,
  });
  return { port, server };
}

describe('the server process', () => {
  it('`npm start` (the built server) without REDIS_URL: says it uses the in-process store, holds a dialog, stops on SIGTERM', async () => {
    const port = await findFreePort();
    const server = start('npm', ['start'], { WECHAT_TOKEN: 'maintest123', PORT: String(port), HOST: '127.0.0.1' });
    await waitFor(() => server.output().includes('listening on'), 'listening', server, 60_000);
    expect(server.output()).toContain('REDIS_URL is not set: dialog state is kept in this process only');
    await talk(port);
    signal(server.child, 'SIGTERM');
    await server.exited;
    expect(server.output()).toContain('shutting down');
  }, 90_000);

  it.runIf(Boolean(process.env.REDIS_URL))('with REDIS_URL: says it uses Redis and holds a dialog there', async () => {
    const { port, server } = await startOnRedis({});
    await waitFor(() => server.output().includes('listening on'), 'listening', server);
    expect(server.output()).toContain('dialog state is kept in Redis');
    await talk(port);
    signal(server.child, 'SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('shutting down');
  }, 60_000);

  it.runIf(Boolean(process.env.REDIS_URL))('WEB_CONCURRENCY=2: two worker processes on one port, sharing Redis; SIGTERM stops them all', async () => {
    const { port, server } = await startOnRedis({ WEB_CONCURRENCY: '2' });
    const listening = () => server.output().split('\n').filter((line) => line.includes('listening on'));
    await waitFor(() => listening().length === 2, 'two workers listening', server);
    expect(server.output()).toContain('starting 2 server processes (WEB_CONCURRENCY)');
    const workerPids = listening().map((line) => (JSON.parse(line) as { pid: number }).pid);
    expect(new Set(workerPids).size).toBe(2);
    expect(workerPids).not.toContain(server.child.pid);
    await talk(port);
    signal(server.child, 'SIGTERM');
    expect(await server.exited).toBe(0);
    for (const pid of workerPids) expect(() => process.kill(pid, 0)).toThrow();
  }, 60_000);

  it.runIf(Boolean(process.env.REDIS_URL))('WEB_CONCURRENCY=2: after N turns spread over both workers, /metrics (summed by the primary) counts N', async () => {
    const { port, server } = await startOnRedis({ WEB_CONCURRENCY: '2', METRICS_TOKEN: 'metrics-token-0123456789' });
    await waitFor(() => server.output().split('\n').filter((line) => line.includes('listening on')).length === 2, 'two workers listening', server);
    const turns = 12;
    for (let i = 0; i < turns; i += 1) {
      const openid = `oMetricsWorkers${String(i).padStart(4, '0')}`;
      // A connection per request (agent: false): the cluster hands connections to the workers in turn.
      const status = await postOnce(port, `/wechat${signedQuery(openid, 'maintest123')}`, textXml(openid, '帮助'));
      expect(status).toBe(200);
    }
    const turnLines = () =>
      server
        .output()
        .split('\n')
        .filter((line) => line.includes('"msg":"turn"'))
        .map((line) => JSON.parse(line) as { pid: number });
    await waitFor(() => turnLines().length === turns, `${turns} turn lines`, server);
    expect(new Set(turnLines().map((line) => line.pid)).size).toBe(2); // both workers handled some
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
    for (let scrape = 0; scrape < 2; scrape += 1) {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer metrics-token-0123456789' } });
      const exposition = await response.text();
      expect(response.status, exposition).toBe(200);
      const total = exposition
        .split('\n')
        .filter((line) => line.startsWith('wechat_dialog_turns_total{'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      expect(total).toBe(turns);
    }
    signal(server.child, 'SIGTERM');
    expect(await server.exited).toBe(0);
  }, 60_000);

  it.each([
    [{}, /^config error: WECHAT_TOKEN is required/],
    [{ WECHAT_TOKEN: 'no' }, /^config error: WECHAT_TOKEN must be 3 to 32 letters or digits/],
    [{ WECHAT_TOKEN: 'abc123', PORT: 'eighty' }, /^config error: PORT must be a whole number from 1 to 65535/],
    [{ WECHAT_TOKEN: 'abc123', REDIS_URL: 'localhost:6379' }, /^config error: REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
    [{ WECHAT_TOKEN: 'abc123', DIALOG_TTL_SECONDS: '0' }, /^config error: DIALOG_TTL_SECONDS must be a whole number/],
    [{ WECHAT_TOKEN: 'abc123', WEB_CONCURRENCY: '2' }, /^config error: WEB_CONCURRENCY above 1 needs REDIS_URL/],
  ] as Array<[Record<string, string>, RegExp]>)('a bad config %j stops startup with one line naming the variable', async (env, line) => {
    const server = start(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--router', 'dialogs/router.ts'], env);
    expect(await server.exited).toBe(1);
    const output = server.output().trim();
    expect(output.split('\n')).toHaveLength(1);
    expect(output).toMatch(line);
  }, 30_000);
});

describe('the built `wechat-dialog serve` fails loudly at startup', () => {
  /** Runs the built bin (`dist/`, built by the global setup) and collects its exit code and stderr. */
  async function serveOnce(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DOTENV_CONFIG_PATH: 'test/no-such.env', HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stderr: stderr.trim() };
  }

  it('a port in use: one line saying so, exit 1 (not a successful start)', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const variants: Array<Record<string, string>> = [{}, ...(process.env.REDIS_URL ? [{ WEB_CONCURRENCY: '2', REDIS_URL: process.env.REDIS_URL }] : [])];
      for (const extra of variants) {
        const result = await serveOnce(['--router', 'dist/dialogs/router.js'], { WECHAT_TOKEN: 'abc123', PORT: String(port), ...extra });
        expect(result.code, JSON.stringify(extra)).toBe(1);
        const lines = result.stderr.split('\n');
        if (Object.keys(extra).length === 0) expect(lines).toHaveLength(1);
        expect(lines[0]).toBe(`listen error: cannot listen on 127.0.0.1:${port}: the port is already in use (another server is running there): stop it or set PORT`);
      }
    } finally {
      blocker.close();
    }
  }, 30_000);

  it.each([
    [['--router', 'dialogs/no-such-router.js'], /^router error: router module dialogs\/no-such-router\.js not found \(looked for .*\)$/],
    [['--router', 'test/support/fixtures/no-router.mjs'], /^router error: router module test\/support\/fixtures\/no-router\.mjs exports no router: add `export const router = createRouter\(\{ routes, fallback \}\)`$/],
    [['--router', 'test/support/fixtures/throwing-router.mjs'], /^router error: cannot load router module test\/support\/fixtures\/throwing-router\.mjs: .*two different dialogs are named "same"/],
    [['--router', 'dialogs/router.ts'], /^router error: cannot load router module dialogs\/router\.ts: .*\(a TypeScript router: compile it first/],
    [[], /^wechat-dialog: serve needs --router <module>/],
  ])('a bad router %j: one line naming the module and what to do, non-zero exit', async (args, line) => {
    const result = await serveOnce(args, { WECHAT_TOKEN: 'abc123', PORT: '1' });
    expect(result.code).not.toBe(0);
    expect(result.stderr.split('\n')[0]).toMatch(line);
    if (args.length > 0) expect(result.stderr.split('\n')).toHaveLength(1);
  }, 30_000);
});
