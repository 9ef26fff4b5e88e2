/**
 * The delivery queue: messages the server sends on its own initiative (pushes, late replies, the
 * first reply of a dialog a push started) go through it, so that they survive the process that
 * accepted them and are sent once, by whichever process is alive (issue 13).
 *
 * Two implementations: `BullmqDeliveryQueue` (durable, on the same Redis as the dialog store) and
 * `InProcessDeliveryQueue` (with the in-memory store: same behaviour, lost with the process).
 *
 * @module
 */
import type { Reply } from '../wechat/replies.js';
import type { TemplateMessage } from '../wechat/template-message.js';

/** What a delivery sends to one user. */
export type OutboundMessage =
  /** A customer-service message (客服消息) carrying a reply value (text, image, voice, video, music, news). */
  | { readonly kind: 'reply'; readonly reply: Reply }
  /** A template message (模板消息), for users outside the 48-hour customer-service window. */
  | { readonly kind: 'template'; readonly template: TemplateMessage };

/** The push a delivery belongs to: its status is kept under `id` for 24 hours, readable by `service` only. */
export interface PushRef {
  /** The push id returned to the calling service (`GET /push/<id>`). */
  readonly id: string;
  /** The calling service's name (from `PUSH_API_KEYS`). */
  readonly service: string;
}

/** One message to one user. */
export interface Delivery {
  /**
   * Unique id of this delivery (at most 200 characters of `[A-Za-z0-9_.:-]`). Enqueuing the same id
   * twice sends once.
   */
  readonly id: string;
  /** The recipient's `openid`. */
  readonly openid: string;
  readonly message: OutboundMessage;
  /** Set when the delivery is (part of) a push. */
  readonly push?: PushRef;
}

/**
 * Which committed turn makes a prepared delivery due: the dialog store must remember the message
 * `identity` of user (`account`, `openid`) with `delivery` equal to the delivery's id
 * (`HandledReply.delivery`). Until it does, the delivery waits; if it never does (the turn lost a
 * race or its process died before the commit), nothing is sent.
 */
export interface DeliveryGuard {
  /** The Official Account's original id (`ToUserName`, `gh_…`). */
  readonly account: string;
  readonly openid: string;
  /** The message identity whose handled record names this delivery. */
  readonly identity: string;
}

/** A push's state, as `GET /push/<id>` reports it. */
export type PushState = 'queued' | 'sent' | 'failed';

/** The status of a push. */
export interface PushStatus {
  readonly id: string;
  readonly service: string;
  readonly status: PushState;
  /** WeChat's `errcode` when `failed` by WeChat (absent for a failure without one, e.g. no answer). */
  readonly errcode?: number;
  /** WeChat's `errmsg`, or what failed, when `failed`. */
  readonly errmsg?: string;
  /** When the push was accepted, Unix time in **milliseconds**. */
  readonly createdAt: number;
  /** When the status last changed, Unix time in **milliseconds**. */
  readonly updatedAt: number;
}

/** How long a push's status (and its idempotency) is kept, in **seconds**: 24 hours. */
export const PUSH_STATUS_TTL_SECONDS = 86_400;

/** The queue every server-initiated message goes through. */
export interface DeliveryQueue {
  /**
   * Queues `delivery` to be sent as soon as possible, with retries for transient WeChat errors.
   * With `delivery.push`, records the push as `queued` (unless a status for it exists already).
   * A finished delivery's id is remembered for 24 hours (`keepFinishedSeconds`): enqueuing it
   * again meanwhile sends nothing.
   * @returns `created: false` when a delivery with this id was queued before (nothing new is sent).
   * @throws {RangeError} when `delivery.id` is not 1 to 200 characters of `[A-Za-z0-9_.:-]`; the
   *   backend's error when Redis fails (nothing was queued, or it was: enqueue again, it is sent once).
   */
  enqueue(delivery: Delivery): Promise<{ readonly created: boolean }>;
  /**
   * Makes `delivery` durable *before* the commit that makes it due. It is sent when
   * {@link release}d, or after a grace period (the process died between commit and release) if
   * `guard` holds then; it is dropped, unsent, when {@link discard}ed or when the guard never holds.
   * Before every send the queue reads the guard: the store remembers the message with this
   * delivery's id → send; with another delivery or none → drop at once; not yet → look again
   * (every `guardPollMs`) for up to `guardWaitMs` after the grace period, then drop.
   * @throws {RangeError} for an invalid id (as {@link enqueue}); the backend's error when Redis
   *   fails: the caller must not commit.
   */
  prepare(delivery: Delivery, guard: DeliveryGuard): Promise<void>;
  /** The commit landed: send the prepared delivery `id` now (and record its push as `queued`). */
  release(id: string): Promise<void>;
  /**
   * The commit did not land: never send the prepared delivery `id`. One being attempted at this
   * very moment is left to its guard, which cannot hold since no commit named it.
   */
  discard(id: string): Promise<void>;
  /**
   * Records push `push` as `sent` although nothing went through the queue: a push dialog whose
   * first step sent nothing (there is nothing left to send). Kept 24 hours, like every status, so
   * `GET <path>/<id>` and a repeated `Idempotency-Key` find it.
   */
  recordSent(push: PushRef): Promise<void>;
  /** The status of push `pushId`, or `undefined` when unknown or older than 24 hours. */

  pushStatus(pushId: string): Promise<PushStatus | undefined>;
  /** Stops taking work, waits for sends in flight, closes connections. */
  close(): Promise<void>;
}
