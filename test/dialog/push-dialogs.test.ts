/**
 * Dialogs a push starts, and late turns through the outbox (issue 13), at the engine level: the
 * reply is prepared in the outbox before the commit, named in the commit's handled record, and
 * released after it (or discarded when the commit does not land). Runs on every store.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineDialog, definePushDialog, record } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import type { Outbox, OutboxPush } from '../../src/dialog/outbox.js';
import { createRouter } from '../../src/dialog/router.js';
import type { DialogStore, HandledMessage, StateKey } from '../../src/dialog/store/store.js';
import { text, type Reply } from '../../src/wechat/replies.js';
import { ACCOUNT, textFrom } from '../support/messages.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

const Order = z.object({ orderId: z.string(), total: z.number() });
const confirm = definePushDialog('confirm-order', Order, function* (first) {
  const answer = yield text(`确认订单 #${first.Input.orderId}（${first.Input.total} 元）？回复 1 确认，2 取消`);
  const content = answer.MsgType === 'text' ? answer.Content : '';
  return text(content === '1' ? `订单 #${first.Input.orderId} 已确认` : `订单 #${first.Input.orderId} 已取消`);
});
const reminder = definePushDialog(
  'reminder',
  z.object({ when: z.string() }),
  function* (first) {
    yield text(`明天 ${first.Input.when} 还是 14 点？`);
    return text('好的');
  },
  { ttlSeconds: 3_600 },
);
const notice = definePushDialog('notice', z.object({ what: z.string() }), function* (first) {
  return text(`通知：${first.Input.what}`);
});
const chat = defineDialog('chat', function* () {
  const next = yield text('chat started');
  return text(`chat got ${next.MsgType === 'text' ? next.Content : next.MsgType}`);
});
const slow = defineDialog('slow', function* () {
  const n = yield* record(() => 42);
  return text(`slow ${n}`);
});
const router = createRouter({
  routes: [
    { match: { text: 'chat' }, dialog: chat },
    { match: { text: 'slow' }, dialog: slow },
  ],
  fallback: null,
  pushed: [confirm, notice, reminder],
});

/** An outbox that records what the engine asked of it. */
class RecordingOutbox implements Outbox {
  readonly prepared: { id: string; key: StateKey; identity: string; reply: Reply; push?: OutboxPush }[] = [];
  readonly released: string[] = [];
  readonly discarded: string[] = [];
  #next = 0;
  async prepare(key: StateKey, identity: string, reply: Reply, push?: OutboxPush): Promise<string> {
    this.#next += 1;
    const id = `r.${this.#next}`;
    this.prepared.push(push === undefined ? { id, key, identity, reply } : { id, key, identity, reply, push });
    return id;
  }
  async release(id: string): Promise<void> {
    this.released.push(id);
  }
  async discard(id: string): Promise<void> {
    this.discarded.push(id);
  }
}

describe.each(storeFactories())('push dialogs and the outbox on $name', (factory) => {
  let s: StoreUnderTest;
  let outbox: RecordingOutbox;
  let processA: DialogEngine;
  let processB: DialogEngine;
  const openid = 'oPushDialog00000000000001';
  const key: StateKey = { account: ACCOUNT, openid };
  const push = (id: string, ifActive: 'refuse' | 'interrupt' = 'refuse') =>
    ({ account: ACCOUNT, openid, dialog: confirm, input: { orderId: '123', total: 88 }, push: { id, service: 'orders' }, ifActive }) as const;

  beforeEach(async () => {
    s = await factory.create();
    outbox = new RecordingOutbox();
    processA = new DialogEngine({ router, store: s.store, outbox });
    processB = new DialogEngine({ router, store: s.store, outbox });
  });
  afterEach(async () => {
    await s.cleanup();
  });

  it('a push starts its dialog: the first reply goes to the outbox, released after the commit, and the next message (on another process) continues it', async () => {
    const started = await processA.startPushed(push('p_1'));
    expect(started).toEqual({ outcome: 'started', dialog: 'confirm-order', delivery: 'r.1' });
    expect(outbox.prepared).toEqual([
      { id: 'r.1', key, identity: `${openid}|p|p_1`, reply: text('确认订单 #123（88 元）？回复 1 确认，2 取消'), push: { id: 'p_1', service: 'orders' } },
    ]);
    expect(outbox.released).toEqual(['r.1']);
    expect((await s.store.read(key, `${openid}|p|p_1`)).handled).toEqual({ reply: null, delivery: 'r.1' });
    const answered = await processB.handle(textFrom(openid, '1', 1_700_000_100));
    expect(answered).toMatchObject({ reply: text('订单 #123 已确认'), outcome: 'ended', dialog: 'confirm-order' });
  });

  it("a dialog's own ttlSeconds is its state's TTL (a push dialog waits longer than a chat); others keep the engine's", async () => {
    await processA.startPushed({ account: ACCOUNT, openid, dialog: reminder, input: { when: '10 点' }, push: { id: 'p_ttl', service: 'calendar' }, ifActive: 'refuse' });
    if (s.rawTtlSeconds !== undefined) expect(await s.rawTtlSeconds(key)).toBeGreaterThan(3_500);
    expect((await processB.handle(textFrom(openid, '10 点', 1_700_000_100))).reply).toEqual(text('好的'));
    await processA.handle(textFrom(openid, 'chat', 1_700_000_200));
    if (s.rawTtlSeconds !== undefined) expect(await s.rawTtlSeconds(key)).toBeLessThanOrEqual(60);
    expect(() => definePushDialog('bad', z.object({}), function* () {}, { ttlSeconds: 0 })).toThrow(/ttlSeconds/);
  });

  it('the same push id again does nothing (a retried call): no second reply', async () => {
    await processA.startPushed(push('p_2'));
    expect(await processB.startPushed(push('p_2'))).toEqual({ outcome: 'repeated' });
    expect(outbox.prepared).toHaveLength(1);
  });

  it('a user in another dialog: refused by default (nothing prepared, the dialog untouched); interrupt ends it', async () => {
    await processA.handle(textFrom(openid, 'chat', 1_700_000_000));
    expect(await processA.startPushed(push('p_3'))).toEqual({ outcome: 'active', dialog: 'chat' });
    expect(outbox.prepared).toEqual([]);
    expect((await s.store.load(key))?.dialog).toBe('chat');
    expect(await processB.startPushed(push('p_4', 'interrupt'))).toMatchObject({ outcome: 'started', dialog: 'confirm-order' });
    expect((await s.store.load(key))?.dialog).toBe('confirm-order');
  });

  it('a one-shot push dialog ends on its first reply and still remembers the push', async () => {
    const start = { account: ACCOUNT, openid, dialog: notice, input: { what: '维护' }, push: { id: 'p_5', service: 'ops' }, ifActive: 'refuse' } as const;
    expect(await processA.startPushed(start)).toEqual({ outcome: 'ended', dialog: 'notice', delivery: 'r.1' });
    expect(outbox.released).toEqual(['r.1']);
    expect(await processB.startPushed(start)).toEqual({ outcome: 'repeated' });
  });

  it('an outbox that fails is a store failure: nothing committed, nothing sent, the push can be tried again', async () => {
    const broken: Outbox = { prepare: () => Promise.reject(new Error('queue down')), release: async () => {}, discard: async () => {} };
    const engine = new DialogEngine({ router, store: s.store, outbox: broken });
    expect(await engine.startPushed(push('p_6'))).toEqual({ outcome: 'failed', reason: 'store' });
    expect(await s.store.load(key)).toBeUndefined();
    expect(await processA.startPushed(push('p_6'))).toMatchObject({ outcome: 'started' });
  });

  it('a late turn hands its reply to the outbox before the commit; a retry of it gets success, not a second copy', async () => {
    const asked = textFrom(openid, 'slow', 1_700_000_000);
    const late = await processA.handle(asked, { lateAfter: Date.now() - 1 });
    expect(late).toMatchObject({ reply: text('slow 42'), delivery: 'r.1' });
    expect(outbox.prepared[0]).toMatchObject({ id: 'r.1', identity: `${openid}|m|${asked.MsgId}`, reply: text('slow 42') });
    expect(outbox.released).toEqual(['r.1']);
    expect((await s.store.read(key, `${openid}|m|${asked.MsgId}`)).handled).toEqual({ reply: null, delivery: 'r.1' });
    expect(await processB.handle(asked)).toEqual({ reply: undefined, outcome: 'repeated' });
    expect(outbox.prepared).toHaveLength(1);
  });

  it('a late turn that loses the race to a retry on another process discards its prepared reply', async () => {
    const asked = textFrom(openid, 'chat', 1_700_000_000);
    // Process A's commit waits until process B (a WeChat retry, answered in time) handled the message.
    let interleave: (() => Promise<unknown>) | undefined = () => processB.handle(asked);
    const store = s.store;
    const racing: DialogStore = {
      load: (k) => store.load(k),
      save: (k, state, ttl) => store.save(k, state, ttl),
      read: (k, identity) => store.read(k, identity),
      async commit(k, expected, next, ttl, handled) {
        const first = interleave;
        interleave = undefined;
        await first?.();
        return store.commit(k, expected, next, ttl, handled);
      },
      ...(store.remember === undefined ? {} : { remember: (k: StateKey, h: HandledMessage) => store.remember!(k, h) }),
      delete: (k) => store.delete(k),
      close: async () => {},
    };
    const racer = new DialogEngine({ router, store: racing, outbox });
    const late = await racer.handle(asked, { lateAfter: Date.now() - 1 });
    expect(late).toEqual({ reply: text('chat started'), outcome: 'repeated' });
    expect(outbox.prepared).toHaveLength(1);
    expect(outbox.discarded).toEqual(['r.1']);
    expect(outbox.released).toEqual([]);
  });
});
