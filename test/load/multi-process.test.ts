/**
 * Several server processes on one real Redis, as a deployment behind a load balancer runs them:
 * WeChat retries (same FromUserName + MsgId) that land on another process, or arrive while the
 * first delivery is still being handled, get the same reply and take effect once; and many users
 * walking the accumulator at once over randomly chosen processes all get exactly the right replies.
 *
 * Needs REDIS_URL (CI: redis://127.0.0.1:6379/15). Every key lives under a random prefix that is
 * deleted afterwards. LOAD_SEED=<n> replays the random choices of a run (the seed is printed).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReply, signedQuery, textXml } from '../support/http.js';
import { deleteRedisKeys, ServerGroup, type ServerProcess } from '../support/processes.js';

const PROCESSES = 4;
const USERS = 200;
/** How many users talk at the same time (all of them: USERS). */
const CONCURRENT_USERS = 200;
/** Share of messages delivered twice; half of those concurrently with the first delivery. */
const DUPLICATE_SHARE = 0.3;

const APOLOGY = '抱歉，出了点问题，请稍后再试。';
const REDIS_URL = process.env.REDIS_URL ?? '';
const RUN = randomBytes(6).toString('hex');
const TOKEN = `load${RUN}`;
const KEY_PREFIX = `test:load:${RUN}:`;

/** What one delivery of a message got back. */
interface Answer {
  readonly status: number;
  /** The reply's Content, or a description of what came instead. */
  readonly content: string;
  readonly ms: number;
}

/** POSTs `xml` from `openid` to `server`. Never throws: a failed request is status 0. */
async function deliver(server: ServerProcess, openid: string, xml: string): Promise<Answer> {
  const started = performance.now();
  try {
    const response = await fetch(`${server.url}${signedQuery(openid, TOKEN)}`, {
      method: 'POST',
      body: xml,
      signal: AbortSignal.timeout(15_000),
    });
    const body = await response.text();
    let content: string;
    try {
      content = response.status === 200 ? (parseReply(body).Content ?? `(no Content) ${body}`) : body;
    } catch {
      content = `(not a reply) ${body.slice(0, 200)}`;
    }
    return { status: response.status, content, ms: performance.now() - started };
  } catch (err) {
    return { status: 0, content: `request failed: ${String(err)}`, ms: performance.now() - started };
  }
}


/** mulberry32: a small seeded PRNG, so a failing run can be replayed with LOAD_SEED. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.runIf(Boolean(process.env.REDIS_URL))('several server processes on one Redis', () => {
  const group = new ServerGroup();
  let servers: readonly ServerProcess[] = [];

  beforeAll(async () => {
    servers = await group.start(PROCESSES, {
      env: { WECHAT_TOKEN: TOKEN, REDIS_URL, REDIS_KEY_PREFIX: KEY_PREFIX, LOG_LEVEL: 'warn' },
    });
  }, 90_000);

  afterAll(async () => {
    await group.stop();
    const redis = new Redis(REDIS_URL);
    try {
      await deleteRedisKeys(redis, KEY_PREFIX);
    } finally {
      await redis.quit().catch(() => redis.disconnect());
    }
  }, 30_000);

  it('retries across two server processes', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const openid = `oRetry${RUN}`;
    const ok = (content: string) => ({ status: 200, content });
    const say = async (server: ServerProcess, xml: string) => {
      const { status, content } = await deliver(server, openid, xml);
      return { status, content };
    };

    expect(await say(a, textXml(openid, '累加器'))).toEqual(ok('您需要累加几个数字？'));

    // A retry that lands on another process, and back: the same reply, counted once.
    const three = textXml(openid, '3');
    const sequential = [await say(a, three), await say(b, three), await say(a, three)];
    expect(sequential).toEqual(Array(3).fill(ok('请输入第1个数字, 目前累加和:0')));

    // Three deliveries at once, on two processes (two of them queued in the same process).
    const ten = textXml(openid, '10');
    const concurrent = await Promise.all([say(a, ten), say(b, ten), say(b, ten)]);
    expect(concurrent).toEqual(Array(3).fill(ok('请输入第2个数字, 目前累加和:10')));

    // Had 3 or 10 counted twice, these sums would be off.
    expect(await say(b, textXml(openid, '20'))).toEqual(ok('请输入第3个数字, 目前累加和:30'));
    const thirty = textXml(openid, '30');
    expect(await say(a, thirty)).toEqual(ok('累加结束，累加和: 60'));
    // A retry of the message that ended the dialog, on the other process: the same last reply.
    expect(await say(b, thirty)).toEqual(ok('累加结束，累加和: 60'));
  }, 30_000);

  it('load', async () => {
    const seed = process.env.LOAD_SEED ? Number(process.env.LOAD_SEED) : randomBytes(4).readUInt32BE();
    const random = seededRandom(seed);
    const pick = (n: number) => Math.floor(random() * n);

    type Duplicate = 'none' | 'concurrent' | 'sequential';
    interface Step {
      readonly content: string;
      readonly expected: string;
      readonly target: number;
      readonly duplicate: Duplicate;
      readonly duplicateTarget: number;
    }
    interface User {
      readonly openid: string;
      readonly steps: readonly Step[];
      readonly finalText: string;
    }

    // Every random choice is made here, before anything is sent, so a seed replays the same run.
    const users: User[] = [];
    for (let u = 0; u < USERS; u += 1) {
      const step = (content: string, expected: string): Step => {
        const r = random();
        const duplicate: Duplicate = r < DUPLICATE_SHARE / 2 ? 'concurrent' : r < DUPLICATE_SHARE ? 'sequential' : 'none';
        return { content, expected, target: pick(PROCESSES), duplicate, duplicateTarget: pick(PROCESSES) };
      };
      const count = 1 + pick(5);
      const steps = [step('累加器', '您需要累加几个数字？'), step(String(count), '请输入第1个数字, 目前累加和:0')];
      let sum = 0;
      for (let i = 1; i <= count; i += 1) {
        const value = pick(101) - 50;
        sum += value;
        steps.push(step(String(value), i < count ? `请输入第${i + 1}个数字, 目前累加和:${sum}` : `累加结束，累加和: ${sum}`));
      }
      users.push({ openid: `oLoad${RUN}${String(u).padStart(4, '0')}`, steps, finalText: `累加结束，累加和: ${sum}` });
    }

    interface Failure {
      user: string;
      step: number;
      sent: string;
      delivery: string;
      process: number;
      expected: string;
      got: string;
    }
    const failures: Failure[] = [];
    const statuses = new Map<number, number>();
    const latencies: number[] = [];
    let messages = 0;
    let duplicates = 0;
    let concurrentDuplicates = 0;
    let wrong = 0;
    let apologies = 0;
    let finalsRight = 0;

    const check = (user: User, index: number, delivery: string, target: number, answer: Answer): boolean => {
      const step = user.steps[index] as Step;
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      latencies.push(answer.ms);
      if (answer.content === APOLOGY) apologies += 1;
      if (answer.status === 200 && answer.content === step.expected) return true;
      wrong += 1;
      if (failures.length < 10) {
        failures.push({
          user: user.openid,
          step: index,
          sent: step.content,
          delivery,
          process: target,
          expected: step.expected,
          got: answer.status === 200 ? answer.content : `HTTP ${answer.status}: ${answer.content}`,
        });
      }
      return false;
    };

    /** One user, one message after another as a person sends them; stops at the first wrong reply. */
    const talk = async (user: User): Promise<void> => {
      for (const [index, step] of user.steps.entries()) {
        const xml = textXml(user.openid, step.content);
        const first = servers[step.target] as ServerProcess;
        const second = servers[step.duplicateTarget] as ServerProcess;
        messages += 1;
        let right: boolean;
        if (step.duplicate === 'concurrent') {
          duplicates += 1;
          concurrentDuplicates += 1;
          const [a, b] = await Promise.all([deliver(first, user.openid, xml), deliver(second, user.openid, xml)]);
          right = check(user, index, 'first (with a concurrent duplicate)', step.target, a);
          right = check(user, index, 'concurrent duplicate', step.duplicateTarget, b) && right;
        } else {
          right = check(user, index, 'first', step.target, await deliver(first, user.openid, xml));
          if (step.duplicate === 'sequential') {
            duplicates += 1;
            right = check(user, index, 'sequential duplicate', step.duplicateTarget, await deliver(second, user.openid, xml)) && right;
          }
        }
        if (!right) return;
        if (index === user.steps.length - 1 && step.expected === user.finalText) finalsRight += 1;
      }
    };

    const started = performance.now();
    const queue = [...users];
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENT_USERS, USERS) }, async () => {
        for (let user = queue.shift(); user !== undefined; user = queue.shift()) await talk(user);
      }),
    );
    const seconds = (performance.now() - started) / 1000;

    latencies.sort((x, y) => x - y);
    const percentile = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0);
    const statusText = [...statuses].sort(([x], [y]) => x - y).map(([s, n]) => `${s}×${n}`).join(' ');
    console.log(
      `[load] ${PROCESSES} processes, ${USERS} users, ${messages} messages, ${duplicates} duplicate deliveries ` +
        `(${concurrentDuplicates} concurrent), ${wrong} wrong replies (${apologies} apologies), ` +
        `${finalsRight}/${USERS} final sums right; HTTP ${statusText}; ${seconds.toFixed(1)} s, ` +
        `latency p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms, max ${percentile(1)} ms; seed ${seed}`,
    );

    const report = failures.length === 0 ? '' : `\nseed ${seed}; first failures:\n${failures.map((f) => JSON.stringify(f)).join('\n')}`;
    expect([...statuses.keys()].filter((status) => status !== 200), `HTTP statuses other than 200: ${statusText}${report}`).toEqual([]);
    expect(wrong, `wrong replies${report}`).toBe(0);
    expect(finalsRight, `users whose final sum was right${report}`).toBe(USERS);
  }, 120_000);
});
