/**
 * What a user sees when Redis dies in the middle of a dialog, through the real HTTP app on a real
 * Redis this test starts and kills itself (it does not use `REDIS_URL`):
 *
 * 1. the demo accumulator runs on a throwaway `redis-server`;
 * 2. the server is killed: each message gets the apology, as a 200 text reply, well within
 *    WeChat's 5 s deadline, and the process keeps serving (the GET handshake still answers);
 * 3. Redis is started again on the same port (empty: it keeps nothing on disk): the same client
 *    reconnects by itself, and the dialogs work again without restarting our server;
 * 4. no unhandled rejection or uncaught exception happened along the way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELP_TEXT } from '../../dialogs/help.js';
import { router } from '../../dialogs/router.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { parseReply, serveDialogs, signedQuery, textXml, type TestServer } from '../support/http.js';
import { startRedisServer, type RedisServer, ownRedisSuitesRun } from '../support/redis-server.js';
import { uniqueKeyPrefix } from '../support/stores.js';

const APOLOGY = '抱歉，出了点问题，请稍后再试。';
/** WeChat gives up after 5 s; an apology must arrive well before that. */
const REPLY_DEADLINE_MS = 3000;
const OPENID = 'oFault000000000000000000001';

interface Answer {
  status: number;
  /** The reply's `Content`, or undefined when the body is not a text reply. */
  content: string | undefined;
  body: string;
  ms: number;
}

describe.runIf(ownRedisSuitesRun('Redis fault suite'))('Redis fails mid-dialog (real redis-server, killed and restarted)', () => {
  let redis: RedisServer | undefined;
  let store: RedisStore | undefined;
  let server: TestServer | undefined;
  const unhandled: unknown[] = [];
  const clientErrors: string[] = [];
  const onUnhandled = (reason: unknown) => {
    unhandled.push(reason);
  };

  const send = async (content: string): Promise<Answer> => {
    if (server === undefined) throw new Error('the test server is not running');
    const started = performance.now();
    const res = await fetch(`${server.url}/wechat${signedQuery(OPENID)}`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body: textXml(OPENID, content),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.text();
    const ms = performance.now() - started;
    const isXml = (res.headers.get('content-type') ?? '').startsWith('application/xml');
    const reply = isXml ? parseReply(body) : undefined;
    return { status: res.status, content: reply?.MsgType === 'text' ? reply.Content : undefined, body, ms };
  };

  /** Sends `content` and expects a 200 text reply that is exactly `expected`. */
  const expectReply = async (content: string, expected: string, step: string): Promise<Answer> => {
    const answer = await send(content);
    expect(answer.status, `${step}: HTTP status (body ${JSON.stringify(answer.body.slice(0, 200))})`).toBe(200);
    expect(answer.content, `${step}: reply to ${JSON.stringify(content)}`).toBe(expected);
    return answer;
  };

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    redis = await startRedisServer();
    const client = createRedisClient(redis.url, {
      commandTimeoutMs: 500,
      connectTimeoutMs: 500,
      onError: (err) => {
        clientErrors.push(err.message);
      },
    });
    store = new RedisStore({ redis: client, keyPrefix: uniqueKeyPrefix() });
    server = await serveDialogs(router, store, 60);
  });

  afterAll(async () => {
    try {
      await server?.close();
    } finally {
      try {
        await store?.close();
      } finally {
        await redis?.stop();
        // Let any late rejection (e.g. from the client's close) surface before checking.
        await new Promise((resolve) => setImmediate(resolve));
        process.off('unhandledRejection', onUnhandled);
        process.off('uncaughtException', onUnhandled);
      }
    }
    expect(unhandled, 'no unhandled rejection or uncaught exception, including during cleanup').toEqual([]);
  });

  it('apologises within the deadline while Redis is down, keeps serving, and recovers by itself', async () => {
    if (redis === undefined || server === undefined) throw new Error('setup did not complete');

    // 1. A dialog in progress, on a healthy Redis.
    await expectReply('累加器', '您需要累加几个数字？', 'healthy');
    await expectReply('3', '请输入第1个数字, 目前累加和:0', 'healthy');
    await expectReply('10', '请输入第2个数字, 目前累加和:10', 'healthy');

    // 2. Redis dies (SIGKILL: a crash) in the middle of the dialog.
    const { port } = redis;
    await redis.stop('SIGKILL');

    const first = await send('20');
    expect(first.status, 'Redis down: HTTP status').toBe(200);
    expect(first.content, `Redis down: reply to "20" (body ${JSON.stringify(first.body.slice(0, 200))})`).toBe(APOLOGY);
    expect(first.ms, `Redis down: the apology must beat WeChat's 5 s deadline (took ${first.ms.toFixed(0)} ms)`).toBeLessThan(
      REPLY_DEADLINE_MS,
    );

    const second = await send('30');
    expect(second.status, 'still down: HTTP status').toBe(200);
    expect(second.content, 'still down: reply to "30"').toBe(APOLOGY);
    expect(second.ms, `still down: apology time (took ${second.ms.toFixed(0)} ms)`).toBeLessThan(REPLY_DEADLINE_MS);

    // The process lives on: the GET handshake does not touch Redis and still answers.
    const handshake = await fetch(`${server.url}/wechat${signedQuery()}&echostr=fault-echo-123`, {
      signal: AbortSignal.timeout(5000),
    });
    expect(handshake.status, 'still down: GET handshake status').toBe(200);
    expect(await handshake.text(), 'still down: GET handshake body').toBe('fault-echo-123');

    // 3. Redis comes back on the same port, empty (no persistence). Our client must reconnect by
    // itself: poll until a message is answered with something other than the apology.
    redis = await startRedisServer({ port });
    const restartedAt = performance.now();
    let probe: Answer | undefined;
    let probes = 0;
    while (performance.now() - restartedAt < 10_000) {
      probes += 1;
      probe = await send('帮助');
      expect(probe.status, 'recovering: HTTP status').toBe(200);
      if (probe.content !== APOLOGY) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const recoveryMs = performance.now() - restartedAt;
    expect(
      probe?.content,
      `recovery: still the apology ${(recoveryMs / 1000).toFixed(1)} s after Redis restarted (${probes} probes); ` +
        `last client errors: ${JSON.stringify(clientErrors.slice(-3))}`,
    ).not.toBe(APOLOGY);
    // The old dialog state died with the old Redis, so `帮助` is routed afresh: the help text.
    expect(probe?.content, 'recovery: the first answered probe is routed afresh (the state is gone)').toBe(HELP_TEXT);

    // Service is fully back: a new dialog starts, keeps its state across turns and ends.
    await expectReply('累加器', '您需要累加几个数字？', 'recovered');
    await expectReply('1', '请输入第1个数字, 目前累加和:0', 'recovered');
    await expectReply('5', '累加结束，累加和: 5', 'recovered');

    if (process.env.LOG_TESTS) {
      console.log(
        `[redis-fault] apology #1 ${first.ms.toFixed(0)} ms, #2 ${second.ms.toFixed(0)} ms; ` +
          `recovered ${recoveryMs.toFixed(0)} ms after restart (${probes} probes); ` +
          `client errors: ${clientErrors.length} ${JSON.stringify([...new Set(clientErrors)])}`,
      );
    }

    // Let pending rejections surface, then check: nothing escaped as unhandled.
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled, 'no unhandled rejection or uncaught exception during the outage').toEqual([]);
  }, 30_000);
});
