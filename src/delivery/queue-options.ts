/**
 * The options both delivery queues take, and their defaults.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { DialogStore } from '../dialog/store/store.js';
import type { DeliveryEvent, DeliveryLogger } from './delivery-runner.js';
import type { MessageSender } from './sender.js';

/** Options shared by both queues. */
export interface DeliveryQueueOptions {
  /** Sends each message (`WeChatMessageSender`, or a test double). */
  readonly sender: MessageSender;
  /** The dialog store the engine commits to: where a prepared delivery's guard is checked. */
  readonly store: DialogStore;
  /** How long a prepared delivery waits for its `release` before it is sent anyway if its guard holds, **milliseconds**. @default 10000 */
  readonly graceMs?: number;
  /**
   * After the grace period, how long a prepared delivery whose message is not remembered as handled
   * yet (its commit may still be in flight) keeps being looked at before it is dropped,
   * **milliseconds**. @default 60000
   */
  readonly guardWaitMs?: number;
  /** Pause between those looks, **milliseconds**. @default 1000 */
  readonly guardPollMs?: number;
  /** Send attempts in all for transient errors (-1 busy, 45009/45011 quotas, no answer, HTTP 5xx). @default 8 */
  readonly attempts?: number;
  /**
   * First retry delay, **milliseconds**; each next one doubles (1, 2, 4 … 64 s by default: about
   * 2 minutes over 8 attempts). @default 1000
   */
  readonly backoffMs?: number;
  /**
   * How long a finished delivery's id is remembered, **seconds**: enqueuing it again meanwhile sends
   * nothing. @default 86400 (as long as a push status, `PUSH_STATUS_TTL_SECONDS`)
   */
  readonly keepFinishedSeconds?: number;
  /** Log lines carry the delivery id, push id and service, a masked openid; never a token. @default silent */
  readonly logger?: DeliveryLogger;
  /** Called with each outcome (sent, failed, retried, dropped), for metrics. Must not throw. */
  readonly observer?: (event: DeliveryEvent) => void;
}

/** The defaults of {@link DeliveryQueueOptions}: durations in **milliseconds**, `attempts` a count. */
export const DELIVERY_QUEUE_DEFAULTS = { graceMs: 10_000, guardWaitMs: 60_000, guardPollMs: 1_000, attempts: 8, backoffMs: 1_000 } as const;

/** Random part of a job (tells duplicate adds apart). */
export function nonce(): string {
  return randomBytes(9).toString('base64url');
}

/**
 * The options with their defaults, checked.
 * @throws {RangeError} naming the option that is not a finite number ≥ 0 (`attempts`: an integer ≥ 1).
 */
export function resolveSettings(
  options: DeliveryQueueOptions): Required<Pick<DeliveryQueueOptions, 'graceMs' | 'guardWaitMs' | 'guardPollMs' | 'attempts' | 'backoffMs'>> {
  const settings = {
    graceMs: options.graceMs ?? DELIVERY_QUEUE_DEFAULTS.graceMs,
    guardWaitMs: options.guardWaitMs ?? DELIVERY_QUEUE_DEFAULTS.guardWaitMs,
    guardPollMs: options.guardPollMs ?? DELIVERY_QUEUE_DEFAULTS.guardPollMs,
    attempts: options.attempts ?? DELIVERY_QUEUE_DEFAULTS.attempts,
    backoffMs: options.backoffMs ?? DELIVERY_QUEUE_DEFAULTS.backoffMs,
  };
  for (const [name, value] of Object.entries(settings)) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a number of milliseconds ≥ 0, got ${value}`);
  }
  if (!Number.isInteger(settings.attempts) || settings.attempts < 1) throw new RangeError(`attempts must be an integer ≥ 1, got ${settings.attempts}`);
  return settings;
}
