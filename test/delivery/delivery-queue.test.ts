/**
 * The delivery queue contract (issue 13, item 3), for the in-process queue and — with `REDIS_URL` —
 * BullMQ on real Redis, against the fake WeChat API.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery, DeliveryGuard, DeliveryQueue } from '../../src/delivery/delivery-queue.js';
import type { StateKey } from '../../src/dialog/store/store.js';
import { text } from '../../src/wechat/replies.js';
import { startFakeWeChatApi, type FakeWeChatApi } from '../support/fake-wechat-api.js';
import { queueRigFactories, type QueueRig } from '../support/delivery-queues.js';

const OPENID = 'oUser000000000000000000000001';
const KEY: StateKey = { account: 'gh_0123456789ab', openid: OPENID };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let seq = 0;
/** A text delivery with a unique id and content. */
function textDelivery(extra: Partial<Delivery> = {}): Delivery {
  seq += 1;
  const id = `t.${Date.now().toString(36)}.${seq}`;
  return { id, openid: OPENID, message: { kind: 'reply', reply: text(`message ${id}`) }, ...extra };
}
const contentOf = (d: Delivery) => (d.message.kind === 'reply' && d.message.reply.MsgType === 'text' ? d.message.reply.Content : '');

let api: FakeWeChatApi;
beforeAll(async () => {
  api = await startFakeWeChatApi();
});
afterAll(() => api.close());

describe.each(queueRigFactories())('$name', (factory) => {
  let r: QueueRig;
  beforeEach(async () => {
    for (const list of [api.sent, api.sendErrors, api.templates, api.templateErrors, api.refused]) list.length = 0;
    r = await factory.create(api);
  });
  afterEach(() => r.cleanup());

  const sentOf = (d: Delivery) => api.sent.filter((m) => (m.body['text'] as { content?: string } | undefined)?.content === contentOf(d));
  /** Remembers `identity` as handled, naming `delivery` (what the engine's commit does). */
  const remember = async (identity: string, delivery?: string) => {
    await r.store.remember!(KEY, { id: identity, reply: null, createTime: Math.floor(Date.now() / 1000), ttlSeconds: 60, ...(delivery === undefined ? {} : { delivery }) });
  };
  const guardFor = (identity: string): DeliveryGuard => ({ account: KEY.account, openid: KEY.openid, identity });
  let identitySeq = 0;
  const newIdentity = () => `msg.${Date.now()}.${(identitySeq += 1)}`;

  it('a delivery is sent exactly once, as a customer-service message', async () => {
    const q = r.queue();
    const d = textDelivery();
    expect(await q.enqueue(d)).toEqual({ created: true });
    await api.waitForSent(1);
    await sleep(300);
    expect(sentOf(d)).toHaveLength(1);
    expect(sentOf(d)[0]!.body).toEqual({ touser: OPENID, msgtype: 'text', text: { content: contentOf(d) } });
    expect(r.events).toEqual([{ outcome: 'sent', kind: 'reply' }]);
  });

  it('the same id enqueued twice (also at once) sends once; the second gets created: false', async () => {
    const q = r.queue();
    const d = textDelivery();
    const results = await Promise.all([q.enqueue(d), q.enqueue(d)]);
    expect(results.map((x) => x.created).sort()).toEqual([false, true]);
    await api.waitForSent(1);
    expect(await q.enqueue(d)).toEqual({ created: false }); // after it was sent, too
    await sleep(300);
    expect(sentOf(d)).toHaveLength(1);
  });

  it('an id with ":" or all digits is accepted and kept apart from others', async () => {
    const q = r.queue();
    const a = { ...textDelivery(), id: '12345' };
    const b = { ...textDelivery(), id: 'push:abc:1' };
    const c = { ...textDelivery(), id: 'push.3Aabc.1' };
    for (const d of [a, b, c]) expect(await q.enqueue(d)).toEqual({ created: true });
    await api.waitForSent(3);
    await expect(q.enqueue({ ...textDelivery(), id: 'bad id' })).rejects.toThrow(RangeError);
  });

  it('a transient errcode (-1) is retried with backoff, then sent; the push says sent', async () => {
    const q = r.queue();
    api.sendErrors.push(-1, -1);
    const d = textDelivery({ push: { id: 'p.transient', service: 'orders' } });
    await q.enqueue(d);
    await api.waitForSent(1);
    await sleep(100);
    expect(api.refused.map((m) => m.errcode)).toEqual([-1, -1]);
    expect(sentOf(d)).toHaveLength(1);
    expect(r.events.map((e) => e.outcome)).toEqual(['retried', 'retried', 'sent']);
    expect(r.events[0]).toEqual({ outcome: 'retried', kind: 'reply', service: 'orders', errcode: -1 });
    expect(await q.pushStatus('p.transient')).toMatchObject({ id: 'p.transient', service: 'orders', status: 'sent' });
  });

  it('after the last transient attempt the push is failed with the last errcode and errmsg', async () => {
    const q = r.queue({ attempts: 3 });
    api.sendErrors.push(-1, -1, 45009);
    await q.enqueue(textDelivery({ push: { id: 'p.exhausted', service: 'orders' } }));
    await waitFor(async () => (await q.pushStatus('p.exhausted'))?.status === 'failed');
    expect(await q.pushStatus('p.exhausted')).toMatchObject({ status: 'failed', errcode: 45009, errmsg: 'fake error 45009' });
    expect(api.refused).toHaveLength(3);
    expect(r.events.map((e) => e.outcome)).toEqual(['retried', 'retried', 'failed']);
  });

  it('a permanent errcode (45015) is failed with errcode and errmsg, not retried', async () => {
    const q = r.queue();
    api.sendErrors.push(45015);
    await q.enqueue(textDelivery({ push: { id: 'p.window', service: 'orders' } }));
    await waitFor(async () => (await q.pushStatus('p.window'))?.status === 'failed');
    await sleep(300);
    expect(await q.pushStatus('p.window')).toMatchObject({ status: 'failed', errcode: 45015, errmsg: 'fake error 45015' });
    expect(api.refused).toHaveLength(1);
    expect(api.sent).toHaveLength(0);
    expect(r.events).toEqual([{ outcome: 'failed', kind: 'reply', service: 'orders', errcode: 45015 }]);
  });

  it('a template message is sent to /cgi-bin/message/template/send; 43004 (not following) is failed, not retried', async () => {
    const q = r.queue();
    const template = { id: 'TPL_ID', data: { first: '订单已发货', amount: { value: '¥9', color: '#173177' } }, url: 'https://example.com/o/1' };
    await q.enqueue({ id: 'tpl.ok', openid: OPENID, message: { kind: 'template', template }, push: { id: 'p.tpl.ok', service: 'orders' } });
    await api.waitForTemplates(1);
    expect(api.templates[0]!.body).toEqual({
      touser: OPENID,
      template_id: 'TPL_ID',
      url: 'https://example.com/o/1',
      data: { first: { value: '订单已发货' }, amount: { value: '¥9', color: '#173177' } },
    });
    api.templateErrors.push(43004);
    await q.enqueue({ id: 'tpl.refused', openid: OPENID, message: { kind: 'template', template }, push: { id: 'p.tpl.refused', service: 'orders' } });
    await waitFor(async () => (await q.pushStatus('p.tpl.refused'))?.status === 'failed');
    await sleep(200);
    expect(await q.pushStatus('p.tpl.refused')).toMatchObject({ status: 'failed', errcode: 43004, errmsg: 'fake error 43004' });
    expect(api.refused.map((m) => m.errcode)).toEqual([43004]);
    await waitFor(async () => (await q.pushStatus('p.tpl.ok'))?.status === 'sent');
  });

  it('a refused access_token (40001) is renewed and the send repeated at once, without using an attempt', async () => {
    const q = r.queue({ attempts: 1 });
    api.sendErrors.push(40001);
    const d = textDelivery();
    await q.enqueue(d);
    await api.waitForSent(1);
    expect(sentOf(d)).toHaveLength(1);
    expect(api.refused[0]!.accessToken).not.toBe(api.sent[0]!.accessToken);
    await waitFor(async () => r.events.length > 0);
    expect(r.events.map((e) => e.outcome)).toEqual(['sent']);
  });

  it('prepare then release sends at once, not after the grace period', async () => {
    const q = r.queue({ graceMs: 60_000 });
    const d = textDelivery({ push: { id: 'p.released', service: 'crm' } });
    const identity = newIdentity();
    await q.prepare(d, guardFor(identity));
    await sleep(100);
    expect(api.sent).toHaveLength(0);
    await remember(identity, d.id); // the commit
    await q.release(d.id);
    await api.waitForSent(1, 3_000);
    expect(sentOf(d)).toHaveLength(1);
    await waitFor(async () => (await q.pushStatus('p.released'))?.status === 'sent');
  });

  it('prepare then discard never sends, even if the guard would hold', async () => {
    const q = r.queue();
    const d = textDelivery();
    const identity = newIdentity();
    await q.prepare(d, guardFor(identity));
    await remember(identity, d.id);
    await q.discard(d.id);
    await sleep(FAST_WAIT);
    expect(api.sent).toHaveLength(0);
    await q.release(d.id); // a release after a discard finds nothing
    await sleep(200);
    expect(api.sent).toHaveLength(0);
  });

  it('the process died after the commit (no release): sent after the grace period, once', async () => {
    const q = r.queue();
    const d = textDelivery();
    const identity = newIdentity();
    const before = Date.now();
    await q.prepare(d, guardFor(identity));
    await remember(identity, d.id);
    await api.waitForSent(1, 3_000);
    expect(Date.now() - before).toBeGreaterThanOrEqual(250);
    await sleep(300);
    expect(sentOf(d)).toHaveLength(1);
  });

  it('a commit still in flight after the grace period: the guard is looked at again, then it is sent', async () => {
    const q = r.queue({ graceMs: 100, guardWaitMs: 2_000 });
    const d = textDelivery();
    const identity = newIdentity();
    await q.prepare(d, guardFor(identity));
    await sleep(400);
    expect(api.sent).toHaveLength(0);
    await remember(identity, d.id);
    await api.waitForSent(1, 3_000);
    await waitFor(async () => r.events.length > 0);
    expect(r.events.map((e) => e.outcome)).toEqual(['sent']);
  });

  it('a guard that never holds (the turn never committed) sends nothing and is dropped', async () => {
    const q = r.queue({ graceMs: 100, guardWaitMs: 300 });
    const d = textDelivery();
    await q.prepare(d, guardFor(newIdentity()));
    await waitFor(async () => r.events.length > 0);
    expect(r.events).toEqual([{ outcome: 'dropped', kind: 'reply' }]);
    await sleep(200);
    expect(api.sent).toHaveLength(0);
  });

  it('a guard naming another delivery (another turn won) sends nothing, without waiting', async () => {
    const q = r.queue({ graceMs: 100, guardWaitMs: 60_000 });
    const d = textDelivery();
    const identity = newIdentity();
    await remember(identity, 'r.someone-else');
    await q.prepare(d, guardFor(identity));
    await q.release(d.id);
    await waitFor(async () => r.events.length > 0, 2_000);
    expect(r.events).toEqual([{ outcome: 'dropped', kind: 'reply' }]);
    const other = textDelivery();
    const handledWithout = newIdentity();
    await remember(handledWithout); // handled with no delivery at all
    await q.prepare(other, guardFor(handledWithout));
    await waitFor(async () => r.events.length > 1, 2_000);
    expect(api.sent).toHaveLength(0);
  });

  it('push status: undefined when unknown; queued while retrying; then sent; createdAt kept', async () => {
    const q = r.queue({ backoffMs: 400, attempts: 2 });
    expect(await q.pushStatus('p.unknown')).toBeUndefined();
    api.sendErrors.push(-1);
    const before = Date.now();
    await q.enqueue(textDelivery({ push: { id: 'p.life', service: 'orders' } }));
    await waitFor(async () => api.refused.length === 1);
    const queued = await q.pushStatus('p.life');
    expect(queued).toMatchObject({ id: 'p.life', service: 'orders', status: 'queued' });
    expect(queued!.createdAt).toBeGreaterThanOrEqual(before);
    await waitFor(async () => (await q.pushStatus('p.life'))?.status === 'sent');
    const sent = (await q.pushStatus('p.life'))!;
    expect(sent.createdAt).toBe(queued!.createdAt);
    expect(sent.updatedAt).toBeGreaterThanOrEqual(queued!.updatedAt);
    expect(sent).not.toHaveProperty('errcode');
  });

  if (factory.name === 'bullmq') {
    it('two processes on one Redis: every delivery is sent once, whichever process takes it', async () => {
      const [a, b] = [r.queue(), r.queue()];
      const deliveries = Array.from({ length: 20 }, () => textDelivery());
      await Promise.all(deliveries.flatMap((d, i) => [a.enqueue(d), b.enqueue(d), (i % 2 ? a : b).enqueue(d)]));
      await api.waitForSent(20);
      await sleep(500);
      expect(api.sent).toHaveLength(20);
      for (const d of deliveries) expect(sentOf(d)).toHaveLength(1);
    });

    it('a process killed between commit and release: another process sends the reply, once', async () => {
      const [a, b] = [r.queue(), r.queue()];
      const d = textDelivery({ push: { id: 'p.orphan', service: 'crm' } });
      const identity = newIdentity();
      await a.prepare(d, guardFor(identity));
      await remember(identity, d.id);
      await a.close(); // dies before release
      await api.waitForSent(1, 3_000);
      await sleep(300);
      expect(sentOf(d)).toHaveLength(1);
      expect(await b.pushStatus('p.orphan')).toMatchObject({ status: 'sent' });
    });
  }
});

const FAST_WAIT = 900;

/** Polls `check` every 20 ms until it is true, or fails after `timeoutMs`. */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

// Keeps the type import used when the suite is filtered.
export type { DeliveryQueue };
