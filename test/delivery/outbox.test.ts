import { describe, expect, it } from 'vitest';
import type { Delivery, DeliveryGuard, DeliveryQueue } from '../../src/delivery/delivery-queue.js';
import { InProcessDeliveryQueue } from '../../src/delivery/in-process-queue.js';
import { newReplyDeliveryId, outboxOf } from '../../src/delivery/outbox.js';
import type { MessageSender } from '../../src/delivery/sender.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { text } from '../../src/wechat/replies.js';

const KEY = { account: 'gh_0123456789ab', openid: 'oUser000000000000000000000001' };

function recordingQueue(): DeliveryQueue & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    enqueue: async () => ({ created: true }),
    prepare: async (delivery: Delivery, guard: DeliveryGuard) => void calls.push(['prepare', delivery, guard]),
    release: async (id: string) => void calls.push(['release', id]),
    discard: async (id: string) => void calls.push(['discard', id]),
    recordSent: async () => {},
    pushStatus: async () => undefined,
    close: async () => {},
  };
}

describe('outboxOf: the engine’s outbox on a delivery queue', () => {
  it('new reply ids are r. and 22 base64url characters, and differ', () => {
    const ids = new Set(Array.from({ length: 100 }, () => newReplyDeliveryId()));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^r\.[A-Za-z0-9_-]{22}$/);
  });

  it('prepare queues a guarded reply under a fresh id and returns it; release and discard pass the id on', async () => {
    const queue = recordingQueue();
    const outbox = outboxOf(queue);
    const id = await outbox.prepare(KEY, 'msg-1', text('你好'), { id: 'p.1', service: 'crm' });
    const other = await outbox.prepare(KEY, 'msg-2', text('x'));
    expect(other).not.toBe(id);
    expect(queue.calls[0]).toEqual([
      'prepare',
      { id, openid: KEY.openid, message: { kind: 'reply', reply: text('你好') }, push: { id: 'p.1', service: 'crm' } },
      { account: KEY.account, openid: KEY.openid, identity: 'msg-1' },
    ]);
    expect(queue.calls[1]![1]).not.toHaveProperty('push');
    await outbox.release(id);
    await outbox.discard(other);
    expect(queue.calls.slice(2)).toEqual([
      ['release', id],
      ['discard', other],
    ]);
  });

  it('with the in-process queue: the reply is sent once the commit names it and it is released', async () => {
    const sent: string[] = [];
    const sender: MessageSender = {
      send: async (_openid, message) => {
        if (message.kind === 'reply' && message.reply.MsgType === 'text') sent.push(message.reply.Content);
        return 'sent';
      },
    };
    const store = new MemoryStore();
    const queue = new InProcessDeliveryQueue({ sender, store, graceMs: 60_000 });
    try {
      const outbox = outboxOf(queue);
      const id = await outbox.prepare(KEY, 'msg-1', text('late reply'));
      const snapshot = await store.read(KEY, 'msg-1');
      await store.commit(KEY, snapshot, undefined, 60, { id: 'msg-1', reply: null, createTime: 1_700_000_000, ttlSeconds: 60, delivery: id });
      await outbox.release(id);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(sent).toEqual(['late reply']);
    } finally {
      await queue.close();
      await store.close();
    }
  });
});
