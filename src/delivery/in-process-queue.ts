/**
 * The delivery queue in this process's memory, for the in-memory store (no `REDIS_URL`): the same
 * behaviour as `BullmqDeliveryQueue` (ids sent once, guards, retries with backoff, push
 * statuses for 24 hours), on timers. Everything queued is **lost when the process exits**: the
 * wiring logs {@link IN_PROCESS_QUEUE_WARNING}.
 *
 * @module
 */
import { PUSH_STATUS_TTL_SECONDS, type Delivery, type DeliveryGuard, type DeliveryQueue, type PushRef, type PushStatus } from './delivery-queue.js';
import { assertDeliveryId, DeliveryRunner, silentDeliveryLogger, type QueuedDelivery } from './delivery-runner.js';
import { MemoryPushStatusBook } from './push-status.js';
import { nonce, resolveSettings, type DeliveryQueueOptions } from './queue-options.js';

/** What the wiring logs (at `warn`) when it picks the in-process queue. */
export const IN_PROCESS_QUEUE_WARNING =
  'deliveries (pushes, late replies) are queued in this process only: those not sent yet are lost when it exits; set REDIS_URL for a durable queue';

/** Options of {@link InProcessDeliveryQueue}. */
export interface InProcessDeliveryQueueOptions extends DeliveryQueueOptions {
  /** Log {@link IN_PROCESS_QUEUE_WARNING} at `warn` on `logger` when the queue is made. @default true */
  readonly warnOnStart?: boolean;
}

interface Entry {
  readonly job: QueuedDelivery;
  state: 'delayed' | 'active' | 'finished';
  /** Due: enqueued, or prepared and released (a prepared one waits for its release or its grace period). */
  due: boolean;
  attemptsMade: number;
  timer?: NodeJS.Timeout;
  /** Unix **milliseconds** after which a finished entry is forgotten. */
  forgetAt: number;
}

/** See the module doc. */
export class InProcessDeliveryQueue implements DeliveryQueue {
  private readonly entries = new Map<string, Entry>();
  private readonly statuses = new MemoryPushStatusBook();
  private readonly runner: DeliveryRunner;
  private readonly inflight = new Set<Promise<void>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly graceMs: number;
  private readonly guardWaitMs: number;
  private readonly attempts: number;
  private readonly keepMs: number;
  private closed = false;

  /**
   * @throws {RangeError} when a duration or `attempts` is not a non-negative number (attempts ≥ 1).
   */
  constructor(options: InProcessDeliveryQueueOptions) {
    const settings = resolveSettings(options);
    this.graceMs = settings.graceMs;
    this.guardWaitMs = settings.guardWaitMs;
    this.attempts = settings.attempts;
    this.keepMs = (options.keepFinishedSeconds ?? PUSH_STATUS_TTL_SECONDS) * 1000;
    this.runner = new DeliveryRunner({
      sender: options.sender,
      store: options.store,
      statuses: this.statuses,
      logger: options.logger ?? silentDeliveryLogger,
      backoffMs: settings.backoffMs,
      guardPollMs: settings.guardPollMs,
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
    this.sweeper = setInterval(() => this.sweep(), 60_000).unref();
    if (options.warnOnStart !== false) options.logger?.warn({}, IN_PROCESS_QUEUE_WARNING);
  }

  /** @throws {RangeError} for an invalid delivery id; {@link Error} after `close()`. */
  async enqueue(delivery: Delivery): Promise<{ readonly created: boolean }> {
    assertDeliveryId(delivery.id);
    this.assertOpen();
    const now = Date.now();
    if (delivery.push !== undefined) await this.statuses.queued(delivery.push, now);
    if (this.known(delivery.id)) return { created: false };
    this.schedule(this.add({ delivery, acceptedAt: now, nonce: nonce() }), 0);
    return { created: true };
  }

  /** @throws {RangeError} for an invalid delivery id; {@link Error} after `close()`. */
  async prepare(delivery: Delivery, guard: DeliveryGuard): Promise<void> {
    assertDeliveryId(delivery.id);
    this.assertOpen();
    if (this.known(delivery.id)) return;
    const now = Date.now();
    const job: QueuedDelivery = { delivery, guard, acceptedAt: now, guardUntil: now + this.graceMs + this.guardWaitMs, nonce: nonce() };
    this.schedule(this.add(job), this.graceMs);
  }

  async release(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    if (entry.job.delivery.push !== undefined) await this.statuses.queued(entry.job.delivery.push, entry.job.acceptedAt);
    entry.due = true;
    if (entry.state === 'delayed' && !this.closed) this.schedule(entry, 0);
  }

  /**
   * Forgets a delivery that waits; one being attempted right now is left to its guard (its turn
   * did not commit, so the guard does not hold and it is dropped).
   */
  async discard(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (entry === undefined || entry.state !== 'delayed') return;
    clearTimeout(entry.timer);
    this.entries.delete(id);
  }

  async recordSent(push: PushRef): Promise<void> {
    await this.statuses.settle(push, Date.now(), { status: 'sent' });
  }

  async pushStatus(pushId: string): Promise<PushStatus | undefined> {
    return this.statuses.get(pushId);
  }

  /** Stops the timers (what waits is lost, as the module doc says) and waits for attempts in flight. */
  /**
   * Stops taking work and drains: every due delivery (enqueued, or released) that waits, also one
   * waiting out a retry's backoff, gets one last attempt now, and the attempts in flight are waited
   * for; nothing is retried after that. A prepared delivery never released (its turn did not
   * commit) is dropped. What is still unsent then is lost with the process (logged as failed).
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const entry of this.entries.values()) {
      clearTimeout(entry.timer);
      if (entry.state === 'delayed' && entry.due) this.attempt(entry, true);
    }
    await Promise.allSettled([...this.inflight]);
  }

  private known(id: string): boolean {
    const entry = this.entries.get(id);
    return entry !== undefined && !(entry.state === 'finished' && entry.forgetAt <= Date.now());
  }

  private add(job: QueuedDelivery): Entry {
    const entry: Entry = { job, state: 'delayed', due: job.guard === undefined, attemptsMade: 0, forgetAt: Number.POSITIVE_INFINITY };
    this.entries.set(job.delivery.id, entry);
    return entry;
  }

  private schedule(entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    entry.state = 'delayed';
    entry.timer = setTimeout(() => this.attempt(entry), delayMs);
  }

  /** Runs one attempt of `entry`; `last`: the closing drain's, run although the queue is closed, and the final one. */
  private attempt(entry: Entry, last = false): void {
    if ((this.closed && !last) || entry.state !== 'delayed' || this.entries.get(entry.job.delivery.id) !== entry) return;
    if (last) entry.attemptsMade = Math.max(entry.attemptsMade, this.attempts - 1);
    entry.state = 'active';
    const work = this.runOnce(entry).finally(() => this.inflight.delete(work));
    this.inflight.add(work);
  }

  private async runOnce(entry: Entry): Promise<void> {
    let decision;
    try {
      decision = await this.runner.run(entry.job, entry.attemptsMade, this.attempts);
    } catch (err) {
      // Recording the outcome failed: attempt again, like BullMQ does with a job that threw.
      decision = { action: 'retry', delayMs: 1_000, error: err instanceof Error ? err : new Error(String(err)) } as const;
    }
    if (decision.action === 'done') {
      entry.state = 'finished';
      entry.forgetAt = Date.now() + this.keepMs;
      return;
    }
    if (decision.action === 'retry') entry.attemptsMade += 1;
    if (this.closed) return;
    this.schedule(entry, decision.delayMs);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, entry] of this.entries) if (entry.state === 'finished' && entry.forgetAt <= now) this.entries.delete(id);
    this.statuses.sweep(now);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the delivery queue is closed');
  }
}
