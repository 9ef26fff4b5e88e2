/**
 * Health and readiness (issue 11): `GET /healthz` (liveness) and `GET /readyz` (the store answers):
 *
 * - the handlers on their own, mounted in a host Express app, with stores that answer, fail, hang
 *   or have no `ping`; `RedisStore.ping` and `MemoryStore.ping`;
 * - the standalone server (`startServer`, in this process): both paths answer without a signature,
 *   at their defaults or at `HEALTH_PATH` / `READY_PATH`;
 * - on a real `redis-server` this test starts and stops itself: `/readyz` turns 503 within 2 s of
 *   Redis going away and 200 again once it is back on the same port, with `Redis connection lost`
 *   then `Redis reconnected` in the log; a Redis missing at startup is logged once and does not
 *   stop the server;
 * - the server process (the built `serve` command) on SIGTERM: `/readyz` answers 503 while a turn
 *   with a 1.5 s effect is in flight, that turn still gets its real reply, and the process exits 0;
 * - `watchRedisConnection` (the log lines) on a fake client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { router as demoRouter } from '../../dialogs/router.js';
import { loadConfig } from '../../src/config.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { StoreUnavailableError, type DialogStore } from '../../src/dialog/store/store.js';
import { healthHandler, readinessHandler } from '../../src/http/health.js';
import { startServer, watchRedisConnection, type RunningServer } from '../../src/server.js';
import { parseReply, signedQuery, textXml, TOKEN } from '../support/http.js';
import { findFreePort } from '../support/ports.js';
import { ownRedisSuitesRun, startRedisServer, type RedisServer } from '../support/redis-server.js';
import { uniqueKeyPrefix } from '../support/stores.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
}

async function get(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000), ...init });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `GET url` every 100 ms until its status is `status`; the answer and how long it took (ms), or throws after `timeoutMs`. */
async function pollUntil(url: string, status: number, timeoutMs: number, what: string): Promise<Answer & { ms: number }> {
  const started = performance.now();
  let last: Answer | string = 'no answer yet';
  while (performance.now() - started < timeoutMs) {
    try {
      last = await get(url);
      if (last.status === status) return { ...last, ms: performance.now() - started };
    } catch (err) {
      last = String(err);
    }
    await sleep(100);
  }
  throw new Error(`${what}: ${url} did not answer ${status} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** A pino logger whose JSON lines are kept in memory. */
function capturedLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  return { logger, lines: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

/** An app with the handlers where a host would put them, served on loopback. */
async function hostApp(store: DialogStore, options: { isShuttingDown?: () => boolean; timeoutMs?: number } = {}) {
  const app = express();
  app.get('/healthz', healthHandler());
  app.get('/readyz', readinessHandler({ store, ...options }));
  app.use('/ops/readyz', readinessHandler({ store, ...options })); // every method reaches it
  app.get('/orders/:id', (req, res) => {
    res.json({ id: req.params.id });
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('healthHandler and readinessHandler in a host Express app', () => {
  const hosts: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const host of hosts.splice(0)) await host.close();
  });
  const mount = async (store: DialogStore, options?: { isShuttingDown?: () => boolean; timeoutMs?: number }) => {
    const host = await hostApp(store, options);
    hosts.push(host);
    return host.url;
  };

  it('answer 200 ok and 200 ready (text/plain, not cached) on a store that answers; the host routes are untouched', async () => {
    const url = await mount(new MemoryStore());
    const health = await get(`${url}/healthz`);
    expect(health).toEqual({ status: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' });
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('ready');
    expect(ready.headers.get('cache-control')).toBe('no-store');
    expect((await get(`${url}/readyz`, { method: 'HEAD' })).status).toBe(200);
    expect(await (await fetch(`${url}/orders/7`)).json()).toEqual({ id: '7' });
  });

  it('answer 503 with the reason, without the advice, when the store ping rejects', async () => {
    const store: DialogStore = Object.assign(new MemoryStore(), {
      ping: () =>
        Promise.reject(new StoreUnavailableError('Redis did not answer PING within 1000 ms: check REDIS_URL and that Redis is running')),
    });
    const url = await mount(store);
    expect(await get(`${url}/readyz`)).toEqual({
      status: 503,
      body: 'not ready: Redis did not answer PING within 1000 ms',
      contentType: 'text/plain; charset=utf-8',
    });
    expect((await get(`${url}/healthz`)).status).toBe(200);
  });

  it('answer 503 when the ping does not settle within timeoutMs', async () => {
    const store: DialogStore = Object.assign(new MemoryStore(), { ping: () => new Promise<void>(() => {}) });
    const url = await mount(store, { timeoutMs: 150 });
    const started = performance.now();
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 503, body: 'not ready: the store did not answer within 150 ms' });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('answer 503 on a closed MemoryStore, 200 on a store without ping, and 503 shutting down when told so', async () => {
    const closed = new MemoryStore();
    await closed.close();
    expect((await get(`${await mount(closed)}/readyz`)).status).toBe(503);

    const noPing = new MemoryStore() as DialogStore;
    const withoutPing: DialogStore = {
      load: (key) => noPing.load(key),
      save: (key, state, ttl) => noPing.save(key, state, ttl),
      read: (key, identity) => noPing.read(key, identity),
      commit: (key, expected, next, ttl, handled) => noPing.commit(key, expected, next, ttl, handled),
      delete: (key) => noPing.delete(key),
      close: () => noPing.close(),
    };
    expect(await get(`${await mount(withoutPing)}/readyz`)).toMatchObject({ status: 200, body: 'ready' });

    let shuttingDown = false;
    const url = await mount(new MemoryStore(), { isShuttingDown: () => shuttingDown });
    expect((await get(`${url}/readyz`)).status).toBe(200);
    shuttingDown = true;
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 503, body: 'not ready: shutting down' });
  });

  it('answer 405 to methods other than GET and HEAD when mounted with app.use', async () => {
    const url = await mount(new MemoryStore());
    const res = await fetch(`${url}/ops/readyz`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect((await get(`${url}/ops/readyz`)).status).toBe(200);
  });

  it('refuse a timeoutMs that is not a positive integer of milliseconds', () => {
    for (const timeoutMs of [0, -1, 1.5, Number.NaN, 2 ** 31]) {
      expect(() => readinessHandler({ store: new MemoryStore(), timeoutMs })).toThrow(RangeError);
    }
  });
});

describe('DialogStore.ping', () => {
  it('MemoryStore: resolves while open, rejects with StoreUnavailableError once closed', async () => {
    const store = new MemoryStore();
    await expect(store.ping()).resolves.toBeUndefined();
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('RedisStore: rejects within the command timeout when nothing listens, and at once once closed', async () => {
    const port = await findFreePort();
    const store = new RedisStore({ redis: createRedisClient(`redis://127.0.0.1:${port}/0`, { commandTimeoutMs: 300 }), keyPrefix: uniqueKeyPrefix() });
    try {
      const started = performance.now();
      const err: unknown = await store.ping().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(/PING/);
      expect(performance.now() - started).toBeLessThan(800);
    } finally {
      await store.close();
    }
    await expect(store.ping()).rejects.toThrow(/closed/);
  });

  it.runIf(Boolean(process.env.REDIS_URL))('RedisStore: resolves on the reachable Redis of REDIS_URL', async () => {
    const store = new RedisStore({ redis: createRedisClient(process.env.REDIS_URL ?? ''), keyPrefix: uniqueKeyPrefix() });
    try {
      await expect(store.ping()).resolves.toBeUndefined();
    } finally {
      await store.close();
    }
  });
});

/** `startServer` in this process on a free loopback port, with its log captured. */
async function startInProcess(env: Record<string, string>) {
  const port = await findFreePort();
  const config = loadConfig({ WECHAT_TOKEN: TOKEN, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env });
  const { logger, lines } = capturedLogger();
  const server = await startServer(config, logger, { router: demoRouter });
  return { server, url: `http://127.0.0.1:${port}`, lines, messages: () => lines().map((line) => String(line['msg'])) };
}

describe('the standalone server mounts both, without a signature', () => {
  const running: RunningServer[] = [];
  afterEach(async () => {
    for (const server of running.splice(0)) await server.close();
  });

  it('at /healthz and /readyz by default, on the in-process store; the WeChat endpoint and the 404 are as before', async () => {
    const { server, url } = await startInProcess({});
    running.push(server);
    expect(await get(`${url}/healthz`)).toEqual({ status: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' });
    expect(await get(`${url}/readyz`)).toEqual({ status: 200, body: 'ready', contentType: 'text/plain; charset=utf-8' });
    expect((await get(`${url}/healthz`, { method: 'POST', body: 'x' })).status).toBe(404);
    expect((await get(`${url}/nowhere`)).status).toBe(404);
    const echo = await get(`${url}/wechat${signedQuery()}&echostr=health-echo`);
    expect(echo).toMatchObject({ status: 200, body: 'health-echo' });
  });

  it('at HEALTH_PATH and READY_PATH when set', async () => {
    const { server, url } = await startInProcess({ HEALTH_PATH: '/ops/live', READY_PATH: '/ops/ready' });
    running.push(server);
    expect(await get(`${url}/ops/live`)).toMatchObject({ status: 200, body: 'ok' });
    expect(await get(`${url}/ops/ready`)).toMatchObject({ status: 200, body: 'ready' });
    expect((await get(`${url}/healthz`)).status).toBe(404);
    expect((await get(`${url}/readyz`)).status).toBe(404);
  });

  it('readiness turns 503 as soon as close() is called, while a request is in flight; the listener closes after it', async () => {
    const { server, url } = await startInProcess({});
    // A POST whose body is still arriving is a request in flight.
    const openid = 'oHealth0000000000000000001';
    const body = textXml(openid, '帮助');
    const request = httpRequest(`${url}/wechat${signedQuery(openid)}`, { method: 'POST', headers: { 'content-type': 'text/xml' } });
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      request.once('response', (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      request.once('error', reject);
    });
    request.write(body.slice(0, 20));
    await sleep(100);
    const closing = server.close();
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 503, body: 'not ready: shutting down' });
    expect((await get(`${url}/healthz`)).status, 'liveness stays 200 during the drain').toBe(200);
    request.end(body.slice(20));
    const reply = await answered;
    expect(reply.status).toBe(200);
    expect(parseReply(reply.body).MsgType).toBe('text');
    await closing;
    await expect(get(`${url}/healthz`)).rejects.toThrow();
  });
});

describe.runIf(ownRedisSuitesRun('Health and readiness Redis suite'))('/readyz follows Redis (real redis-server, stopped and restarted)', () => {
  let redis: RedisServer | undefined;
  let server: RunningServer | undefined;

  afterEach(async () => {
    try {
      await server?.close();
    } finally {
      server = undefined;
      await redis?.stop();
      redis = undefined;
    }
  });

  it('200 on a reachable Redis; 503 within 2 s of Redis stopping; 200 again once it is back; lost then reconnected in the log', async () => {
    redis = await startRedisServer();
    const started = await startInProcess({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniqueKeyPrefix() });
    server = started.server;
    const { url } = started;
    await pollUntil(`${url}/readyz`, 200, 5_000, 'Redis up');
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 200, body: 'ready' });

    const { port } = redis;
    await redis.stop();
    const down = await pollUntil(`${url}/readyz`, 503, 2_000, 'Redis stopped');
    // The store's reason, or, on a loaded machine, the probe's own 1 s limit passing first.
    expect(down.body).toMatch(/^not ready: (Redis |the store did not answer within 1000 ms)/);
    expect(down.ms, `503 ${down.ms.toFixed(0)} ms after Redis stopped`).toBeLessThan(2_000);
    expect((await get(`${url}/healthz`)).status, 'liveness does not depend on Redis').toBe(200);

    redis = await startRedisServer({ port });
    await pollUntil(`${url}/readyz`, 200, 10_000, 'Redis restarted');

    const messages = started.messages();
    const lost = messages.indexOf('Redis connection lost');
    const reconnected = messages.indexOf('Redis reconnected');
    expect(lost, messages.join('\n')).toBeGreaterThanOrEqual(0);
    expect(reconnected).toBeGreaterThan(lost);
    expect(messages.filter((m) => m === 'Redis connection lost')).toHaveLength(1);
    const lines = started.lines();
    expect(typeof lines[lost]?.['reason']).toBe('string');
    expect(lines[lost]?.['level']).toBe(40); // warn
    expect(lines[reconnected]?.['downMs']).toEqual(expect.any(Number));
    expect(lines[reconnected]?.['level']).toBe(30); // info
    expect(messages.some((m) => m.startsWith('Redis is not reachable at startup'))).toBe(false);

    await server.close();
    server = undefined;
    expect(started.messages().filter((m) => m === 'Redis connection lost'), 'our own shutdown is no loss').toHaveLength(1);
  }, 30_000);

  it('a Redis missing at startup: the server listens, says so once, answers 503, then 200 once Redis is there', async () => {
    const port = await findFreePort();
    const started = await startInProcess({ REDIS_URL: `redis://127.0.0.1:${port}/0`, REDIS_KEY_PREFIX: uniqueKeyPrefix() });
    server = started.server;
    const { url } = started;
    expect(started.messages().some((m) => m.startsWith('listening on'))).toBe(true);
    expect((await get(`${url}/readyz`)).status).toBe(503);
    expect((await get(`${url}/healthz`)).status).toBe(200);
    const deadline = performance.now() + 5_000;
    while (!started.messages().some((m) => m.startsWith('Redis is not reachable at startup')) && performance.now() < deadline) await sleep(50);
    const unreachable = started.messages().filter((m) => m.startsWith('Redis is not reachable at startup'));
    expect(unreachable, started.messages().join('\n')).toHaveLength(1);
    expect(unreachable[0]).toMatch(/; \/readyz answers 503 until it is$/);

    redis = await startRedisServer({ port });
    await pollUntil(`${url}/readyz`, 200, 10_000, 'Redis started late');
    expect(started.messages()).toContain('Redis reconnected');
    expect(started.messages()).not.toContain('Redis connection lost');
    expect(started.messages().filter((m) => m.startsWith('Redis is not reachable at startup'))).toHaveLength(1);
  }, 30_000);
});

describe('the server process on SIGTERM', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('answers /readyz 503 while a turn with a 1.5 s effect finishes, gives that turn its reply, then exits 0', async () => {
    const port = await findFreePort();
    const token = 'drain12345';
    // The built server (dist/, built by the global setup), as `npm start` runs it: the fixture's
    // dialog comes from dist/ too, so the engine recognises its record() effect.
    child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', '--router', 'test/support/fixtures/slow-router.mjs'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DOTENV_CONFIG_PATH: 'test/no-such.env', WECHAT_TOKEN: token, HOST: '127.0.0.1', PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const proc = child;
    let output = '';
    proc.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (!output.includes('listening on')) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`the server did not start; output:\n${output}`);
      await sleep(50);
    }
    const url = `http://127.0.0.1:${port}`;
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 200, body: 'ready' });

    const openid = 'oDrain00000000000000000001';
    let repliedAt = Infinity;
    const turn = fetch(`${url}/wechat${signedQuery(openid, token)}`, { method: 'POST', body: textXml(openid, 'hello'), signal: AbortSignal.timeout(10_000) }).then(
      async (res) => {
        repliedAt = performance.now();
        return { status: res.status, body: await res.text() };
      },
    );
    await sleep(300); // the turn is in its effect now
    process.kill(-(proc.pid as number), 'SIGTERM');
    const sigtermAt = performance.now();
    const notReady = await pollUntil(`${url}/readyz`, 503, 1_000, 'draining');
    const notReadyAt = performance.now();
    expect(notReady.body).toBe('not ready: shutting down');
    expect(notReadyAt, 'the 503 came while the turn was still running').toBeLessThan(repliedAt);

    const reply = await turn;
    expect(reply.status).toBe(200);
    expect(parseReply(reply.body).Content).toBe('slow reply after the whole effect');
    expect(repliedAt - sigtermAt).toBeGreaterThan(500);
    expect(await exited).toBe(0);
    expect(output).toContain('shutting down');
  }, 60_000);
});

describe('watchRedisConnection: the Redis lines of the log', () => {
  function fake() {
    const client = new EventEmitter();
    const logged: Array<{ level: 'info' | 'warn'; fields: Record<string, unknown>; message: string }> = [];
    const logger = {
      info: (fields: Record<string, unknown>, message: string) => logged.push({ level: 'info', fields, message }),
      warn: (fields: Record<string, unknown>, message: string) => logged.push({ level: 'warn', fields, message }),
    } as unknown as Pick<Logger, 'info' | 'warn'>;
    let clock = 1_000;
    let closing = false;
    const noteError = watchRedisConnection(client, logger, () => closing, () => clock);
    return {
      client,
      logged,
      noteError,
      advance: (ms: number) => (clock += ms),
      closeServer: () => (closing = true),
    };
  }

  it('logs one loss per disconnection, with the last error, and the reconnection with how long it was down', () => {
    const f = fake();
    f.client.emit('ready');
    expect(f.logged).toEqual([]);
    f.noteError(new Error('read ECONNRESET'));
    f.client.emit('close');
    f.noteError(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    f.client.emit('close'); // every failed attempt closes again
    f.client.emit('end');
    f.advance(2_500);
    f.client.emit('ready');
    expect(f.logged).toEqual([
      { level: 'warn', fields: { reason: 'read ECONNRESET' }, message: 'Redis connection lost' },
      { level: 'info', fields: { downMs: 2_500 }, message: 'Redis reconnected' },
    ]);
    f.client.emit('close');
    expect(f.logged[2]).toEqual({ level: 'warn', fields: { reason: 'the connection was closed' }, message: 'Redis connection lost' });
  });

  it('a client that never connected at startup: no loss, and a reconnection counted from startup', () => {
    const f = fake();
    f.advance(100);
    f.client.emit('close');
    f.advance(900);
    f.client.emit('ready');
    expect(f.logged).toEqual([{ level: 'info', fields: { downMs: 1_000 }, message: 'Redis reconnected' }]);
  });

  it('says nothing about a close the server makes itself on shutdown', () => {
    const f = fake();
    f.client.emit('ready');
    f.closeServer();
    f.client.emit('close');
    f.client.emit('end');
    expect(f.logged).toEqual([]);
  });
});
