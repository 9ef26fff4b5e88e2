/**
 * Where the status of each push (`GET /push/<id>`) is kept for {@link PUSH_STATUS_TTL_SECONDS}:
 * one JSON value per push, in Redis (`<keyPrefix>push:<id>`) or in this process.
 *
 * @module
 */
import type { Cluster, Redis } from 'ioredis';
import { PUSH_STATUS_TTL_SECONDS, type PushRef, type PushState, type PushStatus } from './delivery-queue.js';

/** The end of a push: `sent`, or `failed` with WeChat's `errcode` and `errmsg` (or what failed). */
export type PushSettlement = { readonly status: 'sent' } | { readonly status: 'failed'; readonly errcode?: number; readonly errmsg: string };

/** Keeps push statuses. */
export interface PushStatusBook {
  /**
   * Records `push` as `queued`, unless a status for it exists already (the first one is kept).
   * @param createdAt - when the push was accepted, Unix **milliseconds**.
   */
  queued(push: PushRef, createdAt: number): Promise<void>;
  /** Records how `push` ended, replacing `queued`, kept 24 hours from now. */
  settle(push: PushRef, createdAt: number, settlement: PushSettlement): Promise<void>;
  /** The status of push `id`, `undefined` when unknown or expired. */
  get(id: string): Promise<PushStatus | undefined>;
}

function statusOf(push: PushRef, createdAt: number, status: PushState, settlement?: PushSettlement): PushStatus {
  const failure = settlement?.status === 'failed' ? settlement : undefined;
  return {
    id: push.id,
    service: push.service,
    status,
    ...(failure?.errcode === undefined ? {} : { errcode: failure.errcode }),
    ...(failure === undefined ? {} : { errmsg: failure.errmsg }),
    createdAt,
    updatedAt: Date.now(),
  };
}

/** Reads a stored status, `undefined` for anything that is not one (an older or corrupt value). */
function parseStatus(raw: string): PushStatus | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const ok =
    typeof v['id'] === 'string' &&
    typeof v['service'] === 'string' &&
    (v['status'] === 'queued' || v['status'] === 'sent' || v['status'] === 'failed') &&
    typeof v['createdAt'] === 'number' &&
    typeof v['updatedAt'] === 'number';
  return ok ? (value as PushStatus) : undefined;
}

/** A {@link PushStatusBook} in this process (with the in-process queue). */
export class MemoryPushStatusBook implements PushStatusBook {
  private readonly entries = new Map<string, { status: PushStatus; expiresAt: number }>();

  async queued(push: PushRef, createdAt: number): Promise<void> {
    if ((await this.get(push.id)) === undefined) this.put(statusOf(push, createdAt, 'queued'));
  }
  async settle(push: PushRef, createdAt: number, settlement: PushSettlement): Promise<void> {
    this.put(statusOf(push, createdAt, settlement.status, settlement));
  }
  async get(id: string): Promise<PushStatus | undefined> {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > Date.now()) return entry.status;
    this.entries.delete(id);
    return undefined;
  }
  /** Forgets expired statuses (the queue calls it now and then). */
  sweep(now = Date.now()): void {
    for (const [id, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(id);
  }
  private put(status: PushStatus): void {
    this.entries.set(status.id, { status, expiresAt: Date.now() + PUSH_STATUS_TTL_SECONDS * 1000 });
  }
}

/**
 * A {@link PushStatusBook} in Redis: `<keyPrefix>push:<id>` holds the status as JSON, written with
 * `SET … NX EX 86400` when queued and `SET … EX 86400` when it ends. One key per command, so it
 * works on a Redis Cluster with any prefix.
 */
export class RedisPushStatusBook implements PushStatusBook {
  constructor(
    private readonly redis: () => Promise<Redis | Cluster>,
    private readonly keyPrefix: string,
  ) {}

  /** @throws the client's error when Redis fails the command. */
  async queued(push: PushRef, createdAt: number): Promise<void> {
    const redis = await this.redis();
    await redis.set(this.key(push.id), JSON.stringify(statusOf(push, createdAt, 'queued')), 'EX', PUSH_STATUS_TTL_SECONDS, 'NX');
  }
  /** @throws the client's error when Redis fails the command. */
  async settle(push: PushRef, createdAt: number, settlement: PushSettlement): Promise<void> {
    const redis = await this.redis();
    await redis.set(this.key(push.id), JSON.stringify(statusOf(push, createdAt, settlement.status, settlement)), 'EX', PUSH_STATUS_TTL_SECONDS);
  }
  /** @throws the client's error when Redis fails the command. */
  async get(id: string): Promise<PushStatus | undefined> {
    const raw = await (await this.redis()).get(this.key(id));
    return raw === null ? undefined : parseStatus(raw);
  }
  private key(id: string): string {
    return `${this.keyPrefix}push:${id}`;
  }
}
