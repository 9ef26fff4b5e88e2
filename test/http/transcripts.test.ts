/**
 * Every scenario of ../shared/transcripts/demo-dialogs.json, over HTTP, through the real app and
 * the demo router, on every store (memory, ioredis-mock, and real Redis when REDIS_URL is set).
 * Waits written for the default TTL of 60 s are scaled to a short TTL, as the file allows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { ACCOUNT, messageXml, nextMsgId, parseReply, serveDialogs, signedQuery, type TestServer } from '../support/http.js';
import { readSharedJson } from '../support/shared.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

type Expect =
  | 'success'
  | { MsgType: 'text'; Content: string }
  | { MsgType: 'text'; ContentRegex: string }
  | { MsgType: 'news'; ArticleCount: number; Articles: Array<Record<string, string>> };

interface Step {
  send: Record<string, string>;
  expect: Expect;
  wait_before_s?: number;
  redis_after?: { key: string; value: null; ttl: number };
}
interface Scenario {
  name: string;
  description: string;
  steps: Step[];
  ttl_s?: number;
}

const transcripts = readSharedJson<{ scenarios: Scenario[] }>('transcripts/demo-dialogs.json');

/** The TTL the tests run with, in seconds; the file's waits (written for 60 s) are scaled by TTL/60. */
const TEST_TTL_SECONDS = 2;

describe.each(storeFactories())('demo transcripts over HTTP on $name', (factory) => {
  let store: StoreUnderTest;
  let server: TestServer;
  beforeAll(async () => {
    store = await factory.create();
    server = await serveDialogs(router, store.store, TEST_TTL_SECONDS);
  });
  afterAll(async () => {
    await server?.close();
    await store?.cleanup();
  });

  it('has scenarios to run', () => {
    expect(transcripts.scenarios.length).toBeGreaterThanOrEqual(17);
  });

  it.concurrent.each(transcripts.scenarios.map((s) => [s.name, s] as const))('%s', async (_name, scenario) => {
    const openid = `o_${scenario.name.replaceAll('-', '_')}_A`;
    const captured: Record<string, string> = {};
    for (const [index, step] of scenario.steps.entries()) {
      const where = `${scenario.name} step ${index + 1} (${JSON.stringify(step.send)})`;
      if (step.wait_before_s !== undefined) {
        const ttl = scenario.ttl_s ?? 60;
        await new Promise((resolve) => setTimeout(resolve, (step.wait_before_s! * TEST_TTL_SECONDS * 1000) / ttl));
      }
      const isEvent = step.send.MsgType === 'event';
      const xml = messageXml({
        ToUserName: ACCOUNT,
        FromUserName: openid,
        CreateTime: Math.floor(Date.now() / 1000),
        ...step.send,
        ...(isEvent ? {} : { MsgId: nextMsgId() }),
      });
      const response = await fetch(`${server.url}/wechat${signedQuery(openid)}`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: xml,
      });
      const body = await response.text();
      expect(response.status, where).toBe(200);

      if (step.expect === 'success') {
        expect(['success', ''], where).toContain(body);
      } else {
        expect(response.headers.get('content-type'), where).toMatch(/xml/);
        const reply = parseReply(body);
        expect(reply.ToUserName, where).toBe(openid);
        expect(reply.FromUserName, where).toBe(ACCOUNT);
        expect(reply.CreateTime, where).toMatch(/^\d{10}$/);
        expect(reply.MsgType, where).toBe(step.expect.MsgType);
        if ('Content' in step.expect) {
          expect(reply.Content, where).toBe(step.expect.Content);
        } else if ('ContentRegex' in step.expect) {
          const pattern = step.expect.ContentRegex.replace(/\{\{(\w+)\}\}/g, (_m, name: string) =>
            (captured[name] ?? '(?!)').replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
          );
          const match = new RegExp(pattern).exec(reply.Content ?? '');
          expect(match, `${where}: ${JSON.stringify(reply.Content)} !~ ${pattern}`).not.toBeNull();
          Object.assign(captured, match?.groups ?? {});
        } else {
          expect(reply.ArticleCount, where).toBe(String(step.expect.ArticleCount));
          expect(reply.Articles?.item, where).toEqual(step.expect.Articles);
        }
      }

      if (step.redis_after !== undefined) {
        // The transcript's key names the original project's layout; what it asserts is "no state for this user".
        expect(step.redis_after.value).toBeNull();
        const key = { account: ACCOUNT, openid };
        expect(await store.store.load(key), where).toBeUndefined();
        if (store.rawTtlSeconds) expect(await store.rawTtlSeconds(key), where).toBe(step.redis_after.ttl);
      }
    }
  });
});
