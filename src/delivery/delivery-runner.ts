/**
 * One attempt at one queued delivery, the same for every queue: check its guard, send it, and say
 * what comes next (done, retry with backoff, or look at the guard again later). Push statuses,
 * logs and metrics are written here, so the BullMQ and in-process queues behave alike.
 *
 * @module
 */
import { maskOpenid } from '../dialog/engine.js';
import type { DialogStore } from '../dialog/store/store.js';
import { WeChatApiError } from '../wechat/api.js';
import type { Delivery, DeliveryGuard } from './delivery-queue.js';
import type { PushSettlement, PushStatusBook } from './push-status.js';
import type { MessageSender } from './sender.js';

/** The longest delivery id (`Delivery.id`). */
export const MAX_DELIVERY_ID_LENGTH = 200;
const DELIVERY_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/**
 * Checks a delivery id: 1 to 200 characters of `[A-Za-z0-9_.:-]`.
 * @throws {RangeError} otherwise.
 */
export function assertDeliveryId(id: string): void {
  if (!DELIVERY_ID.test(id)) {
    throw new RangeError(`a delivery id must be 1 to ${MAX_DELIVERY_ID_LENGTH} characters of [A-Za-z0-9_.:-], got ${JSON.stringify(id.slice(0, 40))}`);
  }
}

/** A delivery as a queue keeps it (BullMQ's job data: JSON). */
export interface QueuedDelivery {
  readonly delivery: Delivery;
  /** Set for a prepared delivery: what must be committed before it is sent. */
  readonly guard?: DeliveryGuard;
  /** When it was enqueued or prepared, Unix **milliseconds** (the push's `createdAt`). */
  readonly acceptedAt: number;
  /**
   * A prepared delivery whose guard finds nothing remembered is looked at again until this time,
   * Unix **milliseconds** (prepare time + grace period + `guardWaitMs`), then dropped.
   */
  readonly guardUntil?: number;
  /** Random: tells the process that added it whether its add created the job. */
  readonly nonce: string;
}

/** A pino-like logger. Fields carry the delivery id, the push id and service, a masked openid: never a token. */
export interface DeliveryLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** What happened to a delivery, for metrics. */
export interface DeliveryEvent {
  /**
   * `sent`: WeChat accepted it; `failed`: given up (a permanent error, or the last attempt);
   * `retried`: a transient error, another attempt follows; `dropped`: its turn never committed,
   * nothing was sent (and nothing will be).
   */
  readonly outcome: 'sent' | 'failed' | 'retried' | 'dropped';
  /** `reply` (customer-service message) or `template`. */
  readonly kind: 'reply' | 'template';
  /** The calling service, for a push. */
  readonly service?: string;
  /** WeChat's errcode, for `failed` and `retried` when WeChat answered one. */
  readonly errcode?: number;
}

/** What the queue does next with a delivery after one attempt. */
export type RunDecision =
  /** Nothing more: sent, failed for good, or dropped. */
  | { readonly action: 'done' }
  /** A transient failure: attempt again after `delayMs` **milliseconds** (exponential backoff). */
  | { readonly action: 'retry'; readonly delayMs: number; readonly error: Error }
  /** The guard's turn has not committed yet: look again after `delayMs` **milliseconds** (no attempt used). */
  | { readonly action: 'wait'; readonly delayMs: number };

/** Options of {@link DeliveryRunner}, shared by the queues. */
export interface DeliveryRunnerOptions {
  readonly sender: MessageSender;
  /** Where guards are checked: the dialog store the engine commits to. */
  readonly store: DialogStore;
  readonly statuses: PushStatusBook;
  readonly logger: DeliveryLogger;
  readonly observer?: (event: DeliveryEvent) => void;
  /** First backoff delay, **milliseconds**; attempt n+1 waits `backoffMs · 2^(n-1)`. */
  readonly backoffMs: number;
  /** Pause between looks at a guard whose turn has not committed yet, **milliseconds**. */
  readonly guardPollMs: number;
}

type Guarded = { readonly holds: true } | { readonly holds: false; readonly pending: boolean; readonly why: string };

/** Runs attempts; see the module doc. */
export class DeliveryRunner {
  constructor(private readonly options: DeliveryRunnerOptions) {}

  /**
   * One attempt at `job`.
   * @param attemptsMade - failed send attempts so far (0 on the first).
   * @param maxAttempts - send attempts in all; the last transient failure makes the push `failed`.
   * @param now - Unix **milliseconds**.
   * @throws only when recording the outcome fails (Redis down): the queue attempts again.
   */
  async run(job: QueuedDelivery, attemptsMade: number, maxAttempts: number, now = Date.now()): Promise<RunDecision> {
    const { delivery } = job;
    const fields = this.fields(delivery);
    let outcome: Awaited<ReturnType<MessageSender['send']>>;
    try {
      if (job.guard !== undefined) {
        const guard = await this.checkGuard(delivery.id, job.guard);
        if (!guard.holds) {
          if (guard.pending && now < (job.guardUntil ?? 0)) return { action: 'wait', delayMs: this.options.guardPollMs };
          this.options.logger.info({ ...fields, why: guard.why }, 'delivery dropped unsent: the turn that would send it did not commit');
          this.emit(delivery, 'dropped');
          return { action: 'done' };
        }
      }
      outcome = await this.options.sender.send(delivery.openid, delivery.message, delivery.id);
    } catch (err) {
      return this.failure(job, err, attemptsMade, maxAttempts);
    }
    if (outcome === 'not-sendable') {
      const errmsg = 'a transfer_customer_service reply cannot be sent as a customer-service message';
      this.options.logger.warn(fields, `delivery failed: ${errmsg}`);
      await this.settle(job, { status: 'failed', errmsg });
      this.emit(delivery, 'failed');
      return { action: 'done' };
    }
    this.options.logger.info({ ...fields, attempts: attemptsMade + 1 }, 'delivery sent');
    this.emit(delivery, 'sent');
    try {
      await this.settle(job, { status: 'sent' });
    } catch (err) {
      // Never thrown on: the queue would attempt (and send) again.
      this.options.logger.error({ ...fields, err: err instanceof Error ? err.message : String(err) }, 'delivery sent, but its push status could not be recorded');
    }
    return { action: 'done' };
  }

  /** Retry (transient) or give up (permanent, or the last attempt). */
  private async failure(job: QueuedDelivery, err: unknown, attemptsMade: number, maxAttempts: number): Promise<RunDecision> {
    const { delivery } = job;
    const wechat = err instanceof WeChatApiError ? err : undefined;
    // A refused token was renewed and retried once by the sender: a second refusal is given up on.
    const permanent = wechat !== undefined && wechat.kind !== 'transient';
    const errcode = wechat?.errcode;
    const error = err instanceof Error ? err : new Error(String(err));
    const fields = { ...this.fields(delivery), errcode, errorKind: wechat?.kind ?? 'other', attempt: attemptsMade + 1, err: error.message };
    if (!permanent && attemptsMade + 1 < maxAttempts) {
      const delayMs = this.options.backoffMs * 2 ** attemptsMade;
      this.options.logger.warn({ ...fields, retryInMs: delayMs }, 'delivery attempt failed; retrying with backoff');
      this.emit(delivery, 'retried', errcode);
      return { action: 'retry', delayMs, error };
    }
    const errmsg = wechat?.errmsg ?? error.message;
    this.options.logger.warn(fields, permanent ? 'delivery failed: WeChat refused it (not retried)' : `delivery failed after ${attemptsMade + 1} attempts`);
    await this.settle(job, errcode === undefined ? { status: 'failed', errmsg } : { status: 'failed', errcode, errmsg });
    this.emit(delivery, 'failed', errcode);
    return { action: 'done' };
  }

  /**
   * Whether the turn that makes this delivery due committed: the store remembers the guard's
   * message with `delivery` equal to `id`. `pending` when nothing is remembered yet (the commit may
   * still be in flight).
   */
  private async checkGuard(id: string, guard: DeliveryGuard): Promise<Guarded> {
    const { handled } = await this.options.store.read({ account: guard.account, openid: guard.openid }, guard.identity);
    if (handled === undefined) return { holds: false, pending: true, why: 'the message is not remembered as handled' };
    if (handled.delivery === id) return { holds: true };
    const why = handled.delivery === undefined ? 'the message was handled without a delivery' : 'the message was handled by another delivery';
    return { holds: false, pending: false, why };
  }

  private async settle(job: QueuedDelivery, settlement: PushSettlement): Promise<void> {
    if (job.delivery.push !== undefined) await this.options.statuses.settle(job.delivery.push, job.acceptedAt, settlement);
  }

  private emit(delivery: Delivery, outcome: DeliveryEvent['outcome'], errcode?: number): void {
    const { observer } = this.options;
    if (observer === undefined) return;
    const event: DeliveryEvent = {
      outcome,
      kind: delivery.message.kind,
      ...(delivery.push === undefined ? {} : { service: delivery.push.service }),
      ...(errcode === undefined ? {} : { errcode }),
    };
    try {
      observer(event);
    } catch (err) {
      this.options.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'the delivery observer threw');
    }
  }

  private fields(delivery: Delivery): Record<string, unknown> {
    return {
      delivery: delivery.id,
      kind: delivery.message.kind,
      openid: maskOpenid(delivery.openid),
      ...(delivery.push === undefined ? {} : { push: delivery.push.id, service: delivery.push.service }),
    };
  }
}

/** A logger that drops everything. */
export const silentDeliveryLogger: DeliveryLogger = { info() {}, warn() {}, error() {} };
