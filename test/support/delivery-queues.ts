/**
 * The delivery queues every delivery test runs against: the in-process queue on the memory store,
 * and — only when `REDIS_URL` is set — the BullMQ queue on that real Redis, beside a Redis store
 * (a Redis that does not answer fails the suite, it does not skip it). Each rig has its own key
 * prefix; `cleanup()` closes its queues and deletes every key under the prefix (SCAN + DEL).
 */
import { MemoryAccessTokenCache, SharedAccessToken } from '../../src/delivery/access-token.js';
import { BullmqDeliveryQueue } from '../../src/delivery/bullmq-queue.js';
import type { DeliveryQueue } from '../../src/delivery/delivery-queue.js';
import type { DeliveryEvent } from '../../src/delivery/delivery-runner.js';
import { InProcessDeliveryQueue } from '../../src/delivery/in-process-queue.js';
import type { DeliveryQueueOptions } from '../../src/delivery/queue-options.js';
import { WeChatMessageSender } from '../../src/delivery/sender.js';
import { RedisStore } from '../../src/dialog/store/redis-store.js';
import type { DialogStore } from '../../src/dialog/store/store.js';
import { fetchStableAccessToken } from '../../src/wechat/customer-service.js';
import type { FakeWeChatApi } from './fake-wechat-api.js';
import { storeFactories, type StoreUnderTest } from './stores.js';

/** Test-sized timings: each test takes at most a few seconds. */
export const FAST = { graceMs: 300, guardWaitMs: 400, guardPollMs: 50, attempts: 4, backoffMs: 50 } as const;

export type QueueOverrides = Partial<Omit<DeliveryQueueOptions, 'sender' | 'store'>>;

/** One store, and queues ("processes") on it. */
export interface QueueRig {
  readonly store: DialogStore;
  /** Every observer event of every queue of this rig, in order. */
  readonly events: DeliveryEvent[];
  /** A new queue (another "process" for BullMQ; the in-process queue has only one). */
  queue(overrides?: QueueOverrides): DeliveryQueue;
  cleanup(): Promise<void>;
}

export interface QueueRigFactory {
  readonly name: 'in-process' | 'bullmq';
  create(api: FakeWeChatApi): Promise<QueueRig>;
}

function senderFor(api: FakeWeChatApi): WeChatMessageSender {
  const apiOptions = { baseUrl: api.url };
  const token = new SharedAccessToken({ cache: new MemoryAccessTokenCache(), fetchToken: () => fetchStableAccessToken('wx0123456789abcdef', 'SECRET', apiOptions) });
  return new WeChatMessageSender({ token, api: apiOptions });
}

function rig(stored: StoreUnderTest, api: FakeWeChatApi, make: (options: DeliveryQueueOptions) => DeliveryQueue): QueueRig {
  const queues: DeliveryQueue[] = [];
  const events: DeliveryEvent[] = [];
  return {
    store: stored.store,
    events,
    queue(overrides = {}) {
      const q = make({ ...FAST, ...overrides, sender: senderFor(api), store: stored.store, observer: (e) => events.push(e) });
      queues.push(q);
      return q;
    },
    async cleanup() {
      try {
        await Promise.all(queues.map((q) => q.close()));
      } finally {
        await stored.cleanup();
      }
    },
  };
}

/** `in-process`, and `bullmq` when `process.env.REDIS_URL` is set. */
export function queueRigFactories(): QueueRigFactory[] {
  const stores = storeFactories();
  const memory = stores.find((f) => f.name === 'memory')!;
  const factories: QueueRigFactory[] = [
    { name: 'in-process', create: async (api) => rig(await memory.create(), api, (options) => new InProcessDeliveryQueue(options)) },
  ];
  const url = process.env.REDIS_URL;
  const real = stores.find((f) => f.name === 'redis (real)');
  if (url && real) {
    factories.push({
      name: 'bullmq',
      async create(api) {
        const stored = await real.create(); // throws when REDIS_URL does not answer
        const keyPrefix = (stored.store as RedisStore).keyPrefix; // the store's cleanup deletes the queue's keys too
        return rig(stored, api, (options) => new BullmqDeliveryQueue({ ...options, connection: url, keyPrefix }));
      },
    });
  }
  return factories;
}
