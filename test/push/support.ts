/**
 * Test doubles for the push API: a delivery queue that records enqueues and serves statuses, an
 * outbox that records the engine's prepare/release/discard (and marks the push queued on release,
 * as the real queue does), a logger that keeps its lines.
 */
import type { Delivery, DeliveryGuard, DeliveryQueue, PushStatus } from '../../src/delivery/delivery-queue.js';
import type { EngineLogger } from '../../src/dialog/engine.js';
import type { Outbox, OutboxPush } from '../../src/dialog/outbox.js';
import type { StateKey } from '../../src/dialog/store/store.js';
import type { Reply } from '../../src/wechat/replies.js';

/** A {@link DeliveryQueue} in a few maps: ids are sent once, statuses kept forever. */
export class FakeQueue implements DeliveryQueue {
  readonly enqueued: Delivery[] = [];
  readonly statuses = new Map<string, PushStatus>();
  /** When set, every call throws it (a queue whose Redis is down). */
  failure: Error | undefined;

  async enqueue(delivery: Delivery): Promise<{ readonly created: boolean }> {
    this.check();
    if (this.enqueued.some((d) => d.id === delivery.id)) return { created: false };
    this.enqueued.push(delivery);
    if (delivery.push !== undefined) this.record(delivery.push);
    return { created: true };
  }
  async prepare(_delivery: Delivery, _guard: DeliveryGuard): Promise<void> {
    this.check();
  }
  async release(_id: string): Promise<void> {}
  async discard(_id: string): Promise<void> {}
  async recordSent(push: OutboxPush): Promise<void> {
    this.check();
    const now = Date.now();
    this.statuses.set(push.id, { id: push.id, service: push.service, status: 'sent', createdAt: now, updatedAt: now });
  }
  async pushStatus(pushId: string): Promise<PushStatus | undefined> {
    this.check();
    return this.statuses.get(pushId);
  }
  async close(): Promise<void> {}

  /** Records push `push` as queued (unless known), as `enqueue` and `release` do. */
  record(push: OutboxPush): void {
    if (this.statuses.has(push.id)) return;
    const now = Date.now();
    this.statuses.set(push.id, { id: push.id, service: push.service, status: 'queued', createdAt: now, updatedAt: now });
  }
  /** Settles push `id` as the worker would. */
  settle(id: string, change: Pick<PushStatus, 'status' | 'errcode' | 'errmsg'>): void {
    const known = this.statuses.get(id);
    if (known === undefined) throw new Error(`no push ${id}`);
    this.statuses.set(id, { ...known, ...change, updatedAt: known.updatedAt + 1500 });
  }
  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** One prepared reply. */
export interface Prepared {
  readonly id: string;
  readonly key: StateKey;
  readonly identity: string;
  readonly reply: Reply;
  readonly push?: OutboxPush;
}

/** An {@link Outbox} that records what the engine asked, and marks a released push `queued` in `queue`. */
export class RecordingOutbox implements Outbox {
  readonly prepared: Prepared[] = [];
  readonly released: string[] = [];
  readonly discarded: string[] = [];
  #next = 0;
  constructor(private readonly queue: FakeQueue) {}
  async prepare(key: StateKey, identity: string, reply: Reply, push?: OutboxPush): Promise<string> {
    this.#next += 1;
    const id = `d.${this.#next}`;
    this.prepared.push(push === undefined ? { id, key, identity, reply } : { id, key, identity, reply, push });
    return id;
  }
  async release(id: string): Promise<void> {
    this.released.push(id);
    const push = this.prepared.find((p) => p.id === id)?.push;
    if (push !== undefined) this.queue.record(push);
  }
  async discard(id: string): Promise<void> {
    this.discarded.push(id);
  }
}

/** A logger that keeps every line (level, fields, message). */
export class RecordingLogger implements EngineLogger {
  readonly lines: { level: 'info' | 'warn' | 'error'; fields: Record<string, unknown>; message: string }[] = [];
  info(fields: object, message: string): void {
    this.lines.push({ level: 'info', fields: fields as Record<string, unknown>, message });
  }
  warn(fields: object, message: string): void {
    this.lines.push({ level: 'warn', fields: fields as Record<string, unknown>, message });
  }
  error(fields: object, message: string): void {
    this.lines.push({ level: 'error', fields: fields as Record<string, unknown>, message });
  }
  /** Every line as JSON text, to search for what must not be there. */
  text(): string {
    return this.lines.map((line) => JSON.stringify(line, (_k, v: unknown) => (v instanceof Error ? { message: v.message, stack: v.stack } : v))).join('\n');
  }
}
