/**
 * How the engine hands a reply to something that sends it later (a customer-service message, 客服消息),
 * without losing it or sending it twice: the reply is made durable *before* the commit that makes
 * it due, its id is stored in that commit (the handled-message record's `delivery`), and it is
 * released after the commit lands or discarded when it does not. The engine knows nothing of how
 * it is sent; `src/delivery/` implements this on its queue.
 *
 * @module
 */
import type { Reply } from '../wechat/replies.js';
import type { StateKey } from './store/store.js';

/** The push a reply belongs to (a dialog a push started), for its status. */
export interface OutboxPush {
  readonly id: string;
  readonly service: string;
}

/** Where the engine puts replies that do not go back as passive replies. */
export interface Outbox {
  /**
   * Makes `reply` to user `key` durable, to be sent only if the store comes to remember message
   * `identity` with this delivery's id. Called before the commit.
   * @returns the delivery id, to store in the commit (`HandledMessage.delivery`).
   */
  prepare(key: StateKey, identity: string, reply: Reply, push?: OutboxPush): Promise<string>;
  /** The commit landed: send it now. */
  release(id: string): Promise<void>;
  /** The commit did not land: never send it. */
  discard(id: string): Promise<void>;
}
