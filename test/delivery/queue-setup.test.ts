/** How the queues are made: options checked, ids mapped for BullMQ, clients refused with a reason. */
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { BullmqDeliveryQueue, jobIdOf } from '../../src/delivery/bullmq-queue.js';
import { IN_PROCESS_QUEUE_WARNING, InProcessDeliveryQueue } from '../../src/delivery/in-process-queue.js';
import type { MessageSender } from '../../src/delivery/sender.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { createRedisClient } from '../../src/dialog/store/redis-client.js';
import { text } from '../../src/wechat/replies.js';
import { deleteRedisKeys } from '../support/processes.js';
import { uniqueKeyPrefix } from '../support/stores.js';

const sender: MessageSender = { send: async () => 'sent' };

describe('jobIdOf: delivery ids as BullMQ job ids (no ":" and no integers)', () => {
  it.each([
    ['r.abc_DEF-1', 'r.abc_DEF-1'],
    ['push:orders:17', 'push%3Aorders%3A17'],
    ['12345', '%12345'],
    ['-5', '%-5'],
    ['1.5', '1.5'],
    ['007', '007'],
  ])('%s → %s', (id, jobId) => {
    expect(jobIdOf(id)).toBe(jobId);
  });
});

describe('BullmqDeliveryQueue refuses a connection it cannot work with, saying why', () => {
  it('the dialog store’s fail-fast client (maxRetriesPerRequest 1, commandTimeout)', async () => {
    const client = createRedisClient('redis://127.0.0.1:1', { connectTimeoutMs: 50 });
    try {
      expect(() => new BullmqDeliveryQueue({ connection: client, sender, store: new MemoryStore() })).toThrow(/maxRetriesPerRequest: null/);
    } finally {
      client.disconnect();
    }
  });

  it('a Redis Cluster with a prefix that holds no hash tag', async () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true, redisOptions: { maxRetriesPerRequest: null } });
    try {
      expect(() => new BullmqDeliveryQueue({ connection: cluster, sender, store: new MemoryStore() })).toThrow(/hash tag, e.g. prefix: '\{wechat-dialog\}'/);
    } finally {
      cluster.disconnect();
    }
  });
});

describe.runIf(Boolean(process.env.REDIS_URL))('BullmqDeliveryQueue and a client it is given (real Redis)', () => {
  it.each([
    [true, 'end'],
    [false, 'ready'],
  ] as const)('closeConnection %s: after close() the client is %s', async (closeConnection, status) => {
    const client = new Redis(process.env.REDIS_URL ?? '', { maxRetriesPerRequest: null });
    const keyPrefix = uniqueKeyPrefix();
    const queue = new BullmqDeliveryQueue({ connection: client, closeConnection, keyPrefix, sender, store: new MemoryStore({ sweepIntervalMs: 0 }) });
    await queue.pushStatus('p_none');
    await queue.close();
    for (let i = 0; i < 50 && client.status !== status; i += 1) await new Promise((resolve) => setTimeout(resolve, 20)); // QUIT answered; the socket closes next
    try {
      expect(client.status).toBe(status);
    } finally {
      if (client.status !== 'end') client.disconnect();
      const admin = new Redis(process.env.REDIS_URL ?? '');
      await deleteRedisKeys(admin, keyPrefix); // what BullMQ wrote on start (its meta key)
      admin.disconnect();
    }
  });
});

describe('InProcessDeliveryQueue', () => {
  it('logs that deliveries are lost with the process, once, unless told not to', async () => {
    const warnings: string[] = [];
    const logger = { info() {}, warn: (_: object, message: string) => void warnings.push(message), error() {} };
    const a = new InProcessDeliveryQueue({ sender, store: new MemoryStore(), logger });
    const b = new InProcessDeliveryQueue({ sender, store: new MemoryStore(), logger, warnOnStart: false });
    expect(warnings).toEqual([IN_PROCESS_QUEUE_WARNING]);
    await Promise.all([a.close(), b.close()]);
  });

  it('checks its options and delivery ids', async () => {
    const store = new MemoryStore();
    expect(() => new InProcessDeliveryQueue({ sender, store, graceMs: -1 })).toThrow(/graceMs must be/);
    expect(() => new InProcessDeliveryQueue({ sender, store, attempts: 0 })).toThrow(/attempts must be an integer ≥ 1/);
    const q = new InProcessDeliveryQueue({ sender, store });
    const message = { kind: 'reply', reply: text('x') } as const;
    await expect(q.enqueue({ id: 'x'.repeat(201), openid: 'o', message })).rejects.toThrow(RangeError);
    await expect(q.enqueue({ id: 'a/b', openid: 'o', message })).rejects.toThrow(/\[A-Za-z0-9_.:-\]/);
    await q.close();
    await expect(q.enqueue({ id: 'after.close', openid: 'o', message })).rejects.toThrow(/closed/);
  });
});
