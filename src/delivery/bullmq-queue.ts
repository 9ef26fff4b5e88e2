/**
 * The durable delivery queue, on BullMQ (a queue built on ioredis) in the same Redis as the
 * dialog store. Every process runs one `Queue` and one `Worker`: any live process sends, a delivery
 * survives the process that accepted it, and a delivery id is one BullMQ job id, so the same id
 * added twice is one job and is sent once.
 *
 * | call | BullMQ |
 * |---|---|
 * | `enqueue(d)` | `add` (job id from `d.id`), push `queued` (`SET NX EX`) |
 * | `prepare(d, guard)` | `add` delayed by `graceMs`, carrying the guard |
 * | `release(id)` | push `queued`, `promote` (due now) |
 * | `discard(id)` | `remove` (an active job is left to its guard, which cannot hold) |
 * | transient error | the processor throws: BullMQ retries after `backoffMs · 2^(n-1)` |
 * | guard not committed yet | `moveToDelayed(now + guardPollMs)` without using an attempt |
 *
 * Keys: BullMQ's under `<prefix>:deliveries:…` (`prefix` defaults to `<keyPrefix>bull`), push
 * statuses under `<keyPrefix>push:<id>`. On a Redis Cluster, BullMQ's scripts touch many keys of
 * one queue, so `prefix` must be a hash tag such as `{wechat-dialog}` (one slot).
 *
 * What is not exactly-once: a process that dies between WeChat's answer to a send and BullMQ's
 * completion of the job leaves the job locked; after its lock expires (30 s) another worker sends
 * it again. Everything else is sent once.
 *
 * @module
 */
import { DelayedError, Queue, Worker, type Job, type JobsOptions } from 'bullmq';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { PUSH_STATUS_TTL_SECONDS, type Delivery, type DeliveryGuard, type DeliveryQueue, type PushRef, type PushStatus } from './delivery-queue.js';
import { assertDeliveryId, DeliveryRunner, silentDeliveryLogger, type DeliveryLogger, type QueuedDelivery } from './delivery-runner.js';
import { RedisPushStatusBook } from './push-status.js';
import { nonce, resolveSettings, type DeliveryQueueOptions } from './queue-options.js';

/** The BullMQ queue's name: its keys are `<prefix>:deliveries:…`. */
export const DELIVERY_QUEUE_NAME = 'deliveries';

/** Options of {@link BullmqDeliveryQueue}. */
export interface BullmqDeliveryQueueOptions extends DeliveryQueueOptions {
  /**
   * The Redis: a URL (`redis://host:6379/0`), ioredis options, or an ioredis client (`Redis` or
   * `Cluster`). A client given must have `maxRetriesPerRequest: null` and no `commandTimeout`
   * (BullMQ's worker blocks on Redis); it is not closed by {@link BullmqDeliveryQueue.close} unless `closeConnection`. For
   * a URL or options, the queue makes (and closes) its own client. Not the dialog store's client:
   * that one fails fast, as a webhook needs.
   */
  readonly connection: string | RedisOptions | Redis | Cluster;
  /** Close a client given as `connection` when the queue closes (one made for the queue alone). @default false */
  readonly closeConnection?: boolean;
  /** Prefix of the push status keys (`<keyPrefix>push:<id>`): the store's `REDIS_KEY_PREFIX`. @default 'wechat-dialog:' */
  readonly keyPrefix?: string;
  /**
   * BullMQ's key prefix (its keys are `<prefix>:deliveries:…`). On a Redis Cluster it must hold a
   * hash tag, e.g. `{wechat-dialog}`, so that all of the queue's keys are in one slot.
   * @default `<keyPrefix>bull`
   */
  readonly prefix?: string;
  /** Jobs this process sends at the same time. @default 8 */
  readonly concurrency?: number;
}

/**
 * BullMQ refuses custom job ids that are integers or hold `:` (its key separator); delivery ids
 * may be either. `:` becomes `%3A` and an integer gets a leading `%`: `%` is not in a delivery id,
 * so distinct ids stay distinct.
 */
export function jobIdOf(deliveryId: string): string {
  const escaped = deliveryId.replaceAll(':', '%3A');
  return `${Number.parseInt(escaped, 10)}` === escaped ? `%${escaped}` : escaped;
}

function canBlock(client: Redis | Cluster): boolean {
  const options = client instanceof Cluster ? client.options.redisOptions : client.options;
  return options?.maxRetriesPerRequest === null && options.commandTimeout === undefined;
}

/** See the module doc. */
export class BullmqDeliveryQueue implements DeliveryQueue {
  private readonly redis: Redis | Cluster;
  private readonly ownsRedis: boolean;
  private readonly queue: Queue<QueuedDelivery>;
  private readonly worker: Worker<QueuedDelivery>;
  private readonly statuses: RedisPushStatusBook;
  private readonly runner: DeliveryRunner;
  private readonly logger: DeliveryLogger;
  private readonly graceMs: number;
  private readonly guardWaitMs: number;
  private closing: Promise<void> | undefined;

  /**
   * Starts the worker at once.
   * @throws {RangeError} for an invalid duration or `attempts`, a client without
   *   `maxRetriesPerRequest: null`, or a Cluster with a `prefix` that holds no hash tag.
   */
  constructor(options: BullmqDeliveryQueueOptions) {
    const settings = resolveSettings(options);
    this.graceMs = settings.graceMs;
    this.guardWaitMs = settings.guardWaitMs;
    this.logger = options.logger ?? silentDeliveryLogger;
    const keyPrefix = options.keyPrefix ?? 'wechat-dialog:';
    const prefix = options.prefix ?? `${keyPrefix}bull`;
    const { connection } = options;
    if (connection instanceof Redis || connection instanceof Cluster) {
      if (!canBlock(connection)) {
        throw new RangeError(
          'the delivery queue needs a Redis client with maxRetriesPerRequest: null and no commandTimeout (BullMQ blocks on Redis): pass a URL or options instead of the dialog store client',
        );
      }
      this.redis = connection;
      this.ownsRedis = options.closeConnection === true;
    } else {
      this.redis = typeof connection === 'string' ? new Redis(connection, { maxRetriesPerRequest: null }) : new Redis({ ...connection, maxRetriesPerRequest: null });
      this.ownsRedis = true;
    }
    if (this.redis instanceof Cluster && !/\{[^}]+\}/.test(prefix)) {
      throw new RangeError(`on a Redis Cluster the delivery queue's prefix must hold a hash tag, e.g. prefix: '{wechat-dialog}', got ${JSON.stringify(prefix)}`);
    }
    const keepFor = { age: options.keepFinishedSeconds ?? PUSH_STATUS_TTL_SECONDS };
    const defaultJobOptions: JobsOptions = {
      attempts: settings.attempts,
      backoff: { type: 'exponential', delay: settings.backoffMs },
      removeOnComplete: keepFor,
      removeOnFail: keepFor,
    };
    this.queue = new Queue<QueuedDelivery>(DELIVERY_QUEUE_NAME, { connection: this.redis, prefix, defaultJobOptions });
    this.queue.on('error', (err) => this.logger.error({ err: err.message }, 'delivery queue: Redis error'));
    this.statuses = new RedisPushStatusBook(async () => this.redis, keyPrefix);
    this.runner = new DeliveryRunner({
      sender: options.sender,
      store: options.store,
      statuses: this.statuses,
      logger: this.logger,
      backoffMs: settings.backoffMs,
      guardPollMs: settings.guardPollMs,
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
    this.worker = new Worker<QueuedDelivery>(DELIVERY_QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: this.redis,
      prefix,
      concurrency: options.concurrency ?? 8,
    });
    this.worker.on('error', (err) => this.logger.error({ err: err.message }, 'delivery worker: Redis error'));
  }

  /** @throws {RangeError} for an invalid delivery id; the client's error when Redis fails. */
  async enqueue(delivery: Delivery): Promise<{ readonly created: boolean }> {
    assertDeliveryId(delivery.id);
    const now = Date.now();
    // The job first: a status must never say `queued` for a push whose add failed (nothing would send it).
    // A worker that sends it before the next line wrote `sent`, which `queued` (NX) leaves alone.
    const added = await this.add({ delivery, acceptedAt: now, nonce: nonce() }, 0);
    if (delivery.push !== undefined) await this.statuses.queued(delivery.push, now);
    return added;
  }

  /** @throws {RangeError} for an invalid delivery id; the client's error when Redis fails. */
  async prepare(delivery: Delivery, guard: DeliveryGuard): Promise<void> {
    assertDeliveryId(delivery.id);
    const now = Date.now();
    await this.add({ delivery, guard, acceptedAt: now, guardUntil: now + this.graceMs + this.guardWaitMs, nonce: nonce() }, this.graceMs);
  }

  /**
   * Records the push `queued` and makes the job due now. A job that is no longer delayed (already
   * being sent, or sent) is left alone; an unknown id is logged.
   * @throws the client's error when Redis fails (the grace period still sends the delivery).
   */
  async release(id: string): Promise<void> {
    const job = await this.queue.getJob(jobIdOf(id));
    if (job === undefined) {
      this.logger.warn({ delivery: id }, 'release of a delivery that is not queued (never prepared, discarded, or long finished)');
      return;
    }
    const { push } = job.data.delivery;
    if (push !== undefined) await this.statuses.queued(push, job.data.acceptedAt);
    try {
      await job.promote();
    } catch (err) {
      if ((await job.getState()) === 'delayed') throw err;
      // Not delayed any more: the worker has it already, or it is done.
    }
  }

  /**
   * Removes the job. A job being attempted right now cannot be removed (BullMQ holds its lock):
   * it is left to its guard, which cannot hold since the commit did not name it.
   * @throws the client's error when Redis fails.
   */
  async discard(id: string): Promise<void> {
    await this.queue.remove(jobIdOf(id));
  }

  /** @throws the client's error when Redis fails. */
  async recordSent(push: PushRef): Promise<void> {
    await this.statuses.settle(push, Date.now(), { status: 'sent' });
  }

  async pushStatus(pushId: string): Promise<PushStatus | undefined> {
    return this.statuses.get(pushId);
  }

  /** Stops the worker (waiting for the sends in flight), then closes the queue and its own client. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // A queue closed right after it was made (a server that failed to start) must let BullMQ's
      // connection setup finish first: closing under it leaves a rejection nobody handles.
      await Promise.allSettled([this.worker.waitUntilReady(), this.queue.waitUntilReady()]);
      await this.worker.close();
      await this.queue.close();
      if (this.ownsRedis) await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    return this.closing;
  }

  /** Adds the job; `created` is whether this add made it (BullMQ answers a duplicate id with the existing job). */
  private async add(job: QueuedDelivery, delayMs: number): Promise<{ readonly created: boolean }> {
    const jobId = jobIdOf(job.delivery.id);
    await this.queue.add('delivery', job, { jobId, delay: delayMs });
    const raw = await (await this.queue.client).hget(this.queue.toKey(jobId), 'data');
    if (raw === null) return { created: true }; // finished and removed already: it was ours
    return { created: (JSON.parse(raw) as Partial<QueuedDelivery>).nonce === job.nonce };
  }

  private async process(job: Job<QueuedDelivery>, token: string | undefined): Promise<void> {
    const decision = await this.runner.run(job.data, job.attemptsMade, job.opts.attempts ?? 1);
    if (decision.action === 'wait') {
      await job.moveToDelayed(Date.now() + decision.delayMs, token);
      throw new DelayedError();
    }
    if (decision.action === 'retry') throw decision.error; // BullMQ waits backoffMs · 2^(n-1), then attempts again
  }
}
