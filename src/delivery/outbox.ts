/**
 * The engine's {@link Outbox} on a {@link DeliveryQueue}: a reply the engine hands over becomes a
 * prepared delivery, guarded by the handled-message record of the turn that produces it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Outbox, OutboxPush } from '../dialog/outbox.js';
import type { StateKey } from '../dialog/store/store.js';
import type { Reply } from '../wechat/replies.js';
import type { DeliveryQueue } from './delivery-queue.js';

/** A fresh delivery id for a reply: `r.` and 16 random bytes in base64url (24 characters). */
export function newReplyDeliveryId(): string {
  return `r.${randomBytes(16).toString('base64url')}`;
}

/**
 * An {@link Outbox} whose `prepare` queues the reply with {@link DeliveryQueue.prepare} under a new
 * id, guarded by (`key`, `identity`), and returns that id for the commit to store; `release` and
 * `discard` are the queue's.
 */
export function outboxOf(queue: DeliveryQueue): Outbox {
  return {
    /** @throws what {@link DeliveryQueue.prepare} throws (Redis unavailable): the turn must not commit. */
    async prepare(key: StateKey, identity: string, reply: Reply, push?: OutboxPush): Promise<string> {
      const id = newReplyDeliveryId();
      const message = { kind: 'reply', reply } as const;
      const delivery = push === undefined ? { id, openid: key.openid, message } : { id, openid: key.openid, message, push: { id: push.id, service: push.service } };
      await queue.prepare(delivery, { account: key.account, openid: key.openid, identity });
      return id;
    },
    release: (id) => queue.release(id),
    discard: (id) => queue.discard(id),
  };
}
