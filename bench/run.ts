/**
 * `npm run bench`: prints throughput and latency; asserts nothing.
 *
 * 1. Engine turns (no HTTP): users walking the accumulator, on the in-memory store and, when
 *    REDIS_URL is set, on Redis. Turns per second and per-turn latency.
 * 2. HTTP: autocannon against the real app on 127.0.0.1 (a text message that gets the help reply:
 *    signature check, raw body, XML parse, routing, reply XML), for a few seconds.
 */
import autocannon from 'autocannon';
import { Redis } from 'ioredis';

import { router } from '../dialogs/router.js';
import { DialogEngine } from '../src/dialog/engine.js';
import { SnapshotCache } from '../src/dialog/snapshot-cache.js';
import { MemoryStore } from '../src/dialog/store/memory-store.js';
import { RedisStore } from '../src/dialog/store/redis-store.js';
import { createRedisClient } from '../src/dialog/store/redis-client.js';
import type { DialogStore } from '../src/dialog/store/store.js';
import { textFrom } from '../test/support/messages.js';
import { serveDialogs, signedQuery, textXml } from '../test/support/http.js';
import { deleteRedisKeys } from '../test/support/processes.js';

const USERS = 200;
const NUMBERS_PER_USER = 8;
const HTTP_SECONDS = 5;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function engineBench(name: string, store: DialogStore): Promise<void> {
  const engine = new DialogEngine({ router, store, ttlSeconds: 60 });
  const latencies: number[] = [];
  const timed = async (message: ReturnType<typeof textFrom>) => {
    const started = performance.now();
    await engine.handle(message);
    latencies.push(performance.now() - started);
  };
  const started = performance.now();
  await Promise.all(
    Array.from({ length: USERS }, async (_, u) => {
      const openid = `oBench${u}`;
      await timed(textFrom(openid, '累加器'));
      await timed(textFrom(openid, String(NUMBERS_PER_USER)));
      for (let i = 0; i < NUMBERS_PER_USER; i += 1) await timed(textFrom(openid, String(i)));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  // The engine's cache is private; the bench peeks at it to show what the run left in memory.
  const cache: unknown = (engine as unknown as { cache?: unknown }).cache;
  const cached =
    cache instanceof SnapshotCache
      ? `; snapshot cache ${cache.size} users, ${(cache.bytes / 1024).toFixed(0)} KiB estimated (budget ${cache.maxBytes / 1024 / 1024} MiB)`
      : '';
  console.log(
    `engine on ${name}: ${latencies.length} turns (${USERS} users at once, ${NUMBERS_PER_USER + 2} turns each) in ${seconds.toFixed(2)} s = ` +
      `${Math.round(latencies.length / seconds)} turns/s; latency p50 ${percentile(latencies, 50).toFixed(2)} ms, ` +
      `p99 ${percentile(latencies, 99).toFixed(2)} ms${cached}`,
  );
}

async function httpBench(): Promise<void> {
  const store = new MemoryStore();
  const server = await serveDialogs(router, store, 60);
  const openid = 'oBenchHttp';
  const result = await autocannon({
    url: `${server.url}/wechat${signedQuery(openid)}`,
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: textXml(openid, 'hello'),
    connections: 20,
    duration: HTTP_SECONDS,
  });
  await server.close();
  await store.close();
  console.log(
    `http (help reply, in-memory store, 20 connections, ${HTTP_SECONDS} s): ${Math.round(result.requests.average)} req/s; ` +
      `latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms; non-2xx ${result.non2xx}, errors ${result.errors}`,
  );
}

const memory = new MemoryStore();
await engineBench('memory', memory);
await memory.close();

const url = process.env.REDIS_URL;
if (url) {
  const prefix = `bench:${process.pid}:`;
  const store = new RedisStore({ redis: createRedisClient(url), keyPrefix: prefix });
  await engineBench(`Redis (${url})`, store);
  await store.close();
  const admin = new Redis(url);
  await deleteRedisKeys(admin, prefix);
  admin.disconnect();
} else {
  console.log('engine on Redis: skipped (set REDIS_URL to include it)');
}

await httpBench();
