/**
 * The dialog engine: one turn per inbound message. Load the user's state, let the router decide,
 * replay the dialog, save or clear the state, and return the reply. Knows nothing of HTTP or XML.
 *
 * @module
 */
import { messageIdentity } from '../wechat/message-identity.js';
import type { InboundMessage } from '../wechat/messages.js';
import { text, type Reply } from '../wechat/replies.js';
import { dialogMessageIdentity, hasDialogMessageIdentity, isValidTimeoutMs, MAX_TIMEOUT_MS, type Dialog, type DialogContext, type DialogMessage, type AnyPushDialog, type PushMessage } from './dialog.js';
import type { Outbox, OutboxPush } from './outbox.js';
import { KeyedQueue } from './keyed-queue.js';
import { appendMessage } from './store/state-codec.js';
import { notify, type EngineObserver } from './observer.js';
import { DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, SnapshotCache } from './snapshot-cache.js';
import { DEFAULT_EFFECT_TIMEOUT_MS, replay } from './replay.js';
import type { Router } from './router.js';
import {
  assertTtlSeconds,
  StoreUnavailableError,
  type DialogState,
  type DialogStore,
  type CommitResult,
  type HandledMessage,
  type JsonValue,
  type Snapshot,
  type StateKey,
} from './store/store.js';

/** The subset of a pino logger the engine uses. */
export interface EngineLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Options of {@link DialogEngine}. */
export interface EngineOptions {
  /** The router table. */
  readonly router: Router;
  /** Where states live. */
  readonly store: DialogStore;
  /** Time to live of a state, in **seconds**, renewed on every turn. @default 60 */
  readonly ttlSeconds?: number;
  /** The reply when a dialog throws or the store fails. @default text('抱歉，出了点问题，请稍后再试。') */
  readonly apology?: Reply;
  /** Where to log. @default no logging */
  readonly logger?: EngineLogger;
  /**
   * Most messages one dialog may receive. A dialog that has them all and gets one more ends with
   * `tooLongReply` instead (every turn replays the whole history, so it must stay bounded).
   * @default 100
   */
  readonly maxMessages?: number;
  /** The reply when a dialog reaches `maxMessages`. @default text('这段对话太长了，已自动结束。请重新开始。') */
  readonly tooLongReply?: Reply;
  /**
   * How long each handled message's identity and reply are remembered, in **seconds**: a WeChat
   * retry or a replayed request with the same identity within it gets the first reply and never
   * runs a dialog, also after the user's dialog ended or expired. Keep it at least twice the HTTP
   * layer's freshness window (a request is accepted up to that far from its `timestamp` either way).
   * @default 600
   */
  readonly handledTtlSeconds?: number;
  /** Told about every turn (outcome, duration, replay length) and store error: metrics and turn logs. @default none */
  readonly observer?: EngineObserver;
  /**
   * How many users' last committed states this process remembers, so that a continuing turn
   * costs one store round trip (the commit) instead of two (read, commit). `0` disables it.
   * Correctness does not depend on it: a stale entry only makes the commit fail and retry.
   * @default 10_000
   */
  readonly cacheSize?: number;
  /**
   * Most **bytes** that cache may take, as estimated from the stored JSON's length (4 bytes per
   * character plus 512 per user: see `snapshotBytes` in snapshot-cache.ts). When full, the least
   * recently used users are dropped first; a state larger than this on its own is not cached
   * (its turns read it first). `0` disables the cache. Per engine, so per process.
   * @default 67_108_864 (64 MiB)
   */
  readonly cacheBytes?: number;
  /**
   * How long the work of one `record()` effect may take, in **milliseconds**, unless its call sets
   * `record(work, { timeoutMs })`. Past it the dialog gets a `RecordedEffectError` (`record() timed
   * out after <n> ms`), recorded like a failed effect, and the work's `AbortSignal` is aborted, so
   * an effect that never settles cannot hold up the user's later messages. A positive integer of
   * at most 2 147 483 647 (the longest a timer can wait).
   * @default 30_000
   */
  readonly effectTimeoutMs?: number;
  /**
   * Where replies that do not go back as passive replies are made durable (a late turn's reply,
   * the first reply of a dialog a push started): each is prepared before the commit that makes it
   * due, its id stored in that commit, and released once the commit landed, so a process that
   * dies in between loses no reply and none is sent twice. Needed by {@link DialogEngine.startPushed}.
   * @default none: a late turn's reply is only returned (the caller sends it)
   */
  readonly outbox?: Outbox;
}

/** What a push asks {@link DialogEngine.startPushed} to start. */
export interface PushStart {
  /** The Official Account's original id (`gh_…`): the `ToUserName` of the user's messages. */
  readonly account: string;
  /** The user's `openid`. */
  readonly openid: string;
  /** The dialog to start (from the router's `pushed` list). */
  readonly dialog: AnyPushDialog;
  /** The push's input, already validated by `dialog.input` (its output). */
  readonly input: JsonValue;
  /** The push (its id and the calling service). */
  readonly push: OutboxPush;
  /** What to do when the user is in another dialog: `refuse` it, or `interrupt` (end) that dialog. */
  readonly ifActive: 'refuse' | 'interrupt';
  /** When the push was accepted, Unix **seconds**. @default now */
  readonly createTime?: number;
}

/** What {@link DialogEngine.startPushed} did. */
export type PushStartResult =
  /**
   * The dialog started (`started`: it waits for the user's answer; `ended`: it ended on its first
   * reply). `delivery`: the id of the queued customer-service message carrying its first reply
   * (absent when the dialog gave none).
   */
  | { readonly outcome: 'started' | 'ended'; readonly dialog: string; readonly delivery?: string }
  /** This push was handled before (a repeated call): nothing was done again. */
  | { readonly outcome: 'repeated' }
  /** The user is in another dialog and the push said `refuse`: nothing was done. */
  | { readonly outcome: 'active'; readonly dialog: string }
  /** The dialog threw on its first message (`dialog`), or the store failed (`store`): nothing was sent. */
  | { readonly outcome: 'failed'; readonly reason: 'dialog' | 'store' };

/** How a turn ended; for logs and tests. */
/**
 * How a turn ended: a dialog `started`, `continued` or `ended`; `repeated`: a WeChat retry of a
 * message already handled, answered with the same reply; `no-reply`; `failed`: the apology.
 */
export type TurnOutcome = 'started' | 'continued' | 'ended' | 'repeated' | 'no-reply' | 'failed';

/** The result of {@link DialogEngine.handle}. */
export interface TurnResult {
  /** The passive reply, or `undefined` for none (WeChat is answered `success`). */
  readonly reply: Reply | undefined;
  readonly outcome: TurnOutcome;
  /** The dialog that produced the reply, if any. */
  readonly dialog?: string;
  /**
   * Set when the turn was late and its reply was handed to the engine's outbox (it is sent from
   * there, also if this process dies): the id of that delivery. The caller must not send it.
   */
  readonly delivery?: string;
}

/** The default reply when a dialog reaches its message limit. */
export const DEFAULT_TOO_LONG_REPLY: Reply = text('这段对话太长了，已自动结束。请重新开始。');

/**
 * How many recent messages (with their replies) a state remembers across dialogs for WeChat
 * retries (`DialogState.recent`). WeChat retries within about 15 s, 3 attempts in all.
 */
export const RECENT_REPLIES = 5;

/** How many times a turn starts over when another process changed the state meanwhile. */
export const MAX_TURN_ATTEMPTS = 5;

/** How long handled messages are remembered by default, in **seconds**: twice the default freshness window of 300 s. */
export const DEFAULT_HANDLED_TTL_SECONDS = 600;

/** The default apology, sent when a dialog throws or the store fails. */
export const DEFAULT_APOLOGY: Reply = text('抱歉，出了点问题，请稍后再试。');

const silentLogger: EngineLogger = { info() {}, warn() {}, error() {} };

/** Shortens an openid for logs: enough to correlate, not enough to identify (`oUser0…0001`). */
export function maskOpenid(openid: string): string {
  return openid.length <= 10 ? `${openid.slice(0, 2)}…` : `${openid.slice(0, 6)}…${openid.slice(-4)}`;
}

function messageId(message: InboundMessage): string | undefined {
  return 'MsgId' in message ? message.MsgId : undefined;
}

/**
 * Runs dialogs. Turns of one user are serialized within this process; see the README
 * ("Correctness") for what holds across processes.
 */
export class DialogEngine {
  private readonly router: Router;
  private readonly store: DialogStore;
  private readonly ttlSeconds: number;
  private readonly apology: Reply;
  private readonly logger: EngineLogger;
  private readonly maxMessages: number;
  private readonly effectTimeoutMs: number;
  private readonly tooLongReply: Reply;
  private readonly handledTtlSeconds: number;
  private readonly observer: EngineObserver | undefined;
  private readonly queue = new KeyedQueue();
  private readonly cache: SnapshotCache;
  private readonly outbox: Outbox | undefined;

  constructor(options: EngineOptions) {
    this.router = options.router;
    this.store = options.store;
    this.ttlSeconds = options.ttlSeconds ?? 60;
    this.apology = options.apology ?? DEFAULT_APOLOGY;
    this.logger = options.logger ?? silentLogger;
    this.maxMessages = options.maxMessages ?? 100;
    this.tooLongReply = options.tooLongReply ?? DEFAULT_TOO_LONG_REPLY;
    this.cache = new SnapshotCache({ maxEntries: options.cacheSize ?? DEFAULT_CACHE_ENTRIES, maxBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES });
    assertTtlSeconds(this.ttlSeconds);
    this.handledTtlSeconds = options.handledTtlSeconds ?? DEFAULT_HANDLED_TTL_SECONDS;
    this.observer = options.observer;
    this.outbox = options.outbox;
    assertTtlSeconds(this.handledTtlSeconds);
    if (!Number.isInteger(this.maxMessages) || this.maxMessages < 1) {
      throw new RangeError(`maxMessages must be a positive integer, got ${this.maxMessages}`);
    }
    this.effectTimeoutMs = options.effectTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS;
    if (!isValidTimeoutMs(this.effectTimeoutMs)) {
      throw new RangeError(`effectTimeoutMs must be a positive integer of milliseconds, at most ${MAX_TIMEOUT_MS}; got ${this.effectTimeoutMs}`);
    }
  }

  /**
   * Handles one inbound message and returns the reply. Never throws: a dialog that throws, or a
   * store that fails, gives the apology; the error is logged with the (masked) openid and `MsgId`.
   *
   * A turn reads the state, works out the reply and the new state, and commits it only if the
   * state did not change in between (compare-and-set); otherwise it starts over on the new state,
   * up to {@link MAX_TURN_ATTEMPTS} times. A WeChat retry of a message the dialog already has gets
   * the reply it got the first time, computed by replaying up to it, and changes nothing.
   *
   * @param options.lateAfter - Unix time in **milliseconds** after which the caller no longer sends
   *   the reply passively (it answers `success` and delivers the reply another way, e.g. as a
   *   customer-service message). A turn that commits after it records "no passive reply" for the
   *   message, so a WeChat retry of it gets `success` rather than the reply a second time. The
   *   returned result still carries the reply.
   */
  handle(message: InboundMessage, options: { readonly lateAfter?: number } = {}): Promise<TurnResult> {
    const key: StateKey = { account: message.ToUserName, openid: message.FromUserName };
    const id = userId(key);
    return this.queue.run(id, async () => {
      const startedAt = performance.now();
      const log: TurnLog = { openid: maskOpenid(key.openid), MsgId: messageId(message), MsgType: message.MsgType };
      const stats: TurnStats = { replayLength: 0, conflicts: 0, repeatedFrom: undefined };
      const result = await this.turn(key, id, message, options.lateAfter, stats, log);
      const dialog = result.dialog ?? log.dialog;
      notify(this.observer?.turnEnded, {
        openid: log.openid,
        msgId: log.MsgId,
        msgType: log.MsgType,
        dialog,
        outcome: result.outcome,
        ...(result.outcome === 'repeated' && stats.repeatedFrom !== undefined ? { repeatedFrom: stats.repeatedFrom } : {}),
        replayLength: stats.replayLength,
        durationMs: performance.now() - startedAt,
        conflicts: stats.conflicts,
      });
      return result;
    });
  }

  /**
   * Starts `start.dialog` for a user on behalf of a push: replays it on a {@link PushMessage}
   * carrying the push's input, commits its state like any turn (the user's next message continues
   * it), and hands its first reply to the outbox as a customer-service message, prepared before the
   * commit and released after it. A push id handled before (within `handledTtlSeconds`) is
   * `repeated` and does nothing. Serialized with the user's turns in this process; compare-and-set
   * across processes.
   * @throws {Error} when the engine has no `outbox`.
   */
  startPushed(start: PushStart): Promise<PushStartResult> {
    const outbox = this.outbox;
    if (outbox === undefined) throw new Error('startPushed needs the engine option outbox (a delivery queue)');
    const key: StateKey = { account: start.account, openid: start.openid };
    const id = userId(key);
    return this.queue.run(id, async () => {
      const startedAt = performance.now();
      const message: PushMessage = {
        MsgType: 'push',
        ToUserName: start.account,
        FromUserName: start.openid,
        CreateTime: start.createTime ?? Math.floor(Date.now() / 1000),
        PushId: start.push.id,
        Service: start.push.service,
        Input: start.input,
      };
      const identity = dialogMessageIdentity(message);
      const log: TurnLog = { openid: maskOpenid(key.openid), MsgId: start.push.id, MsgType: 'push', dialog: start.dialog.name };
      const stats: TurnStats = { replayLength: 1, conflicts: 0, repeatedFrom: undefined };
      const result = await this.pushTurn(key, id, message, identity, start, outbox, stats, log);
      notify(this.observer?.turnEnded, {
        openid: log.openid,
        msgId: log.MsgId,
        msgType: 'push',
        dialog: start.dialog.name,
        outcome: result.outcome === 'active' ? 'no-reply' : result.outcome,
        replayLength: stats.replayLength,
        durationMs: performance.now() - startedAt,
        conflicts: stats.conflicts,
      });
      return result;
    });
  }

  private async pushTurn(
    key: StateKey,
    id: string,
    message: PushMessage,
    identity: string,
    start: PushStart,
    outbox: Outbox,
    stats: TurnStats,
    log: TurnLog,
  ): Promise<PushStartResult> {
    this.cache.delete(id);
    try {
      let snapshot: Snapshot = await this.store.read(key, identity);
      for (let attempt = 1; ; attempt += 1) {
        if (snapshot.handled !== undefined) return { outcome: 'repeated' };
        const stored = snapshot.state;
        const active = stored === undefined || stored.ended === true ? undefined : this.resume(stored, log);
        if (active !== undefined && start.ifActive === 'refuse') return { outcome: 'active', dialog: active.name };
        const plan = await this.start(start.dialog as unknown as Dialog, message, stored !== undefined, log, stats);
        const { reply } = plan.result;
        const delivery = reply === undefined ? undefined : await prepareIn(outbox, key, identity, reply, start.push);
        const handled = this.handledOf(message, identity, null, delivery);
        // A state kept for its memory of recent replies keeps it (WeChat retries of earlier messages).
        const next = 'next' in plan ? withRecent(plan.next, stored) : undefined;
        const ttlSeconds = this.ttlOf('next' in plan ? next : stored);
        const current = snapshot;
        const write: Promise<CommitResult> =
          'next' in plan
            ? this.store.commit(key, current, next, ttlSeconds, handled)
            : this.store.remember === undefined
              ? this.store.commit(key, current, stored, ttlSeconds, handled)
              : this.store.remember(key, handled).then((earlier) => (earlier === undefined ? { committed: true, snapshot: current } : { committed: false, snapshot: current, handled: earlier }));
        const commit: CommitResult = await this.settle(delivery, write, (got) => got.committed);
        if (commit.handled !== undefined) return { outcome: 'repeated' };
        if (commit.committed) {
          if ('next' in plan) this.cache.set(id, commit.snapshot, ttlSeconds);
          const outcome = plan.result.outcome === 'started' ? 'started' : 'ended';
          this.logger.info({ ...log, service: start.push.service, outcome }, 'a push started a dialog');
          return delivery === undefined ? { outcome, dialog: start.dialog.name } : { outcome, dialog: start.dialog.name, delivery };
        }
        snapshot = commit.snapshot;
        stats.conflicts += 1;
        if (attempt >= MAX_TURN_ATTEMPTS) {
          throw new StoreUnavailableError(`the state changed under ${MAX_TURN_ATTEMPTS} attempts in a row: too many messages of one user at once`);
        }
      }
    } catch (err) {
      this.cache.delete(id);
      this.logger.error({ ...log, err }, 'a push could not start its dialog; nothing was sent');
      if (err instanceof StoreUnavailableError) {
        notify(this.observer?.storeError);
        return { outcome: 'failed', reason: 'store' };
      }
      return { outcome: 'failed', reason: 'dialog' };
    }
  }

  private async turn(key: StateKey, id: string, message: InboundMessage, lateAfter: number | undefined, stats: TurnStats, log: TurnLog): Promise<TurnResult> {
    const identity = messageIdentity(message);
    let snapshot = this.cache.get(id);
    // A cached view plans without a read only for a message newer than every one remembered (it
    // cannot have been handled); an older one may be a retry or a replay, so it is looked up.
    if (snapshot !== undefined && !(message.CreateTime >= (snapshot.handledUpTo ?? Number.POSITIVE_INFINITY))) snapshot = undefined;
    let cached = snapshot !== undefined;
    try {
      snapshot ??= await this.store.read(key, identity);
      if (snapshot.handled !== undefined) return this.repeated(snapshot.handled.reply, log, stats);
      const isLate = (): boolean => lateAfter !== undefined && Date.now() >= lateAfter;
      for (let attempt = 1; ; attempt += 1) {
        stats.replayLength = 0;
        const plan = await this.plan(snapshot.state, message, identity, log, stats);
        if (!('next' in plan)) {
          // Writing nothing is only safe to decide on a fresh read, except for a retry: its reply
          // was fixed when the message was first handled.
          if (cached && plan.result.outcome !== 'repeated') {
            snapshot = await this.store.read(key, identity);
            cached = false;
            if (snapshot.handled !== undefined) return this.repeated(snapshot.handled.reply, log, stats);
            continue;
          }
          if (plan.result.outcome === 'repeated' || this.store.remember === undefined) return plan.result;
          const late = isLate();
          const delivery = late ? await this.prepareLate(key, identity, plan.result) : undefined;
          const handled = this.handledOf(message, identity, late ? null : plan.result.reply, delivery);
          const earlier = await this.settle(delivery, this.store.remember(key, handled), (got) => got === undefined);
          if (earlier !== undefined) return this.repeated(earlier.reply, log, stats);
          return delivery === undefined ? plan.result : { ...plan.result, delivery };
        }
        const late = isLate();
        const next = late ? deliveredLate(plan.next) : plan.next;
        const delivery = late && plan.result.outcome !== 'repeated' ? await this.prepareLate(key, identity, plan.result) : undefined;
        const handled = plan.result.outcome === 'repeated' ? undefined : this.handledOf(message, identity, late ? null : plan.result.reply, delivery);
        const ttlSeconds = this.ttlOf(next);
        const commit: CommitResult = await this.settle(delivery, this.store.commit(key, snapshot, next, ttlSeconds, handled), (got) => got.committed);
        if (commit.handled !== undefined) {
          // Another turn handled this message meanwhile (a WeChat retry on another process).
          this.cache.delete(id);
          return this.repeated(commit.handled.reply, log, stats);
        }
        this.cache.set(id, commit.snapshot, ttlSeconds);
        if (commit.committed) return delivery === undefined ? plan.result : { ...plan.result, delivery };
        snapshot = commit.snapshot;
        cached = false;
        stats.conflicts += 1;
        if (attempt >= MAX_TURN_ATTEMPTS) {
          throw new StoreUnavailableError(
            `the state changed under ${MAX_TURN_ATTEMPTS} attempts in a row: too many messages of one user at once`,
          );
        }
        this.logger.info({ ...log, attempt }, 'the state changed during the turn (another process); starting over');
      }
    } catch (err) {
      this.cache.delete(id);
      // A failure planned from this process's memory may be an artefact of a stale view: decide on
      // a fresh read before apologising (the cache entry is gone, so this recurses once at most).
      if (cached && !(err instanceof StoreUnavailableError)) return this.turn(key, id, message, lateAfter, stats, log);
      return this.fail(key, err, log, snapshot);
    }
  }

  /**
   * How long `state` waits for the user's next message, in **seconds**: its dialog's own
   * `ttlSeconds`, else the engine's (also for an ended state, kept only for its memory of replies).
   */
  private ttlOf(state: DialogState | undefined): number {
    if (state === undefined || state.ended === true) return this.ttlSeconds;
    return this.router.dialog(state.dialog)?.ttlSeconds ?? this.ttlSeconds;
  }

  /** The record of `message` handled with `reply` (`null`: answered `success`), to remember. */
  private handledOf(message: DialogMessage, identity: string, reply: Reply | undefined | null, delivery?: string): HandledMessage {
    const handled = { id: identity, reply: reply ?? null, createTime: message.CreateTime, ttlSeconds: this.handledTtlSeconds };
    return delivery === undefined ? handled : { ...handled, reply: null, delivery };
  }

  /** A late turn's reply, made durable in the outbox before its commit; `undefined` without an outbox or a reply. */
  private async prepareLate(key: StateKey, identity: string, result: TurnResult): Promise<string | undefined> {
    if (this.outbox === undefined || result.reply === undefined) return undefined;
    return prepareIn(this.outbox, key, identity, result.reply);
  }

  /**
   * Awaits a store write that carries the prepared `delivery` (if any), then releases the delivery
   * when `landed` says the write made it due, and discards it otherwise (also when the write threw).
   */
  private async settle<T>(delivery: string | undefined, write: Promise<T>, landed: (got: T) => boolean): Promise<T> {
    if (delivery === undefined) return write;
    const outbox = this.outbox as Outbox;
    let got: T;
    try {
      got = await write;
    } catch (err) {
      // An ambiguous write may still have landed: the delivery's guard decides then, not this discard.
      if (!(err instanceof StoreUnavailableError)) await outbox.discard(delivery).catch(() => undefined);
      throw err;
    }
    if (landed(got)) await outbox.release(delivery);
    else await outbox.discard(delivery);
    return got;
  }

  /** The answer to a message handled already (a WeChat retry, or a replayed request): what it got then. */
  private repeated(reply: Reply | null, log: TurnLog, stats: TurnStats): TurnResult {
    stats.repeatedFrom = 'memory';
    stats.replayLength = 0;
    this.logger.info(log, 'a message handled already (a WeChat retry or a replayed request): same reply, no dialog run');
    return { reply: reply ?? undefined, outcome: 'repeated' };
  }

  /**
   * Works out the reply and the state to commit (`next`; absent: commit nothing) for `message`.
   * Every state it commits remembers the message and its reply in `recent`, and a state that would
   * be deleted is kept, ended, for that memory: a WeChat retry that arrives after the user moved on
   * to another dialog still gets its own reply.
   */
  private async plan(stored: DialogState | undefined, message: InboundMessage, identity: string, log: TurnLog, stats: TurnStats): Promise<Plan> {
    const seen = stored?.recent?.find((r) => r.id === identity);
    if (seen !== undefined) {
      this.logger.info({ ...log, dialog: stored?.dialog }, 'a retry of a message already handled: same reply, no change');
      stats.repeatedFrom = 'state';
      return { result: { reply: seen.reply ?? undefined, outcome: 'repeated' } };
    }
    const plan = await this.planNew(stored, message, identity, log, stats);
    if (!('next' in plan) || (stored === undefined && plan.next === undefined)) return plan;
    const recent = [...(stored?.recent ?? []), { id: identity, reply: plan.result.reply ?? null }].slice(-RECENT_REPLIES);
    if (plan.next !== undefined) return { result: plan.result, next: { ...plan.next, recent } };
    // Instead of deleting: the old state, ended (never resumed), keeps the memory until its TTL.
    return stored === undefined ? plan : { result: plan.result, next: { ...stored, ended: true, recent } };
  }

  /** {@link plan} for a message that is not in `recent`. */
  private async planNew(stored: DialogState | undefined, message: InboundMessage, identity: string, log: TurnLog, stats: TurnStats): Promise<Plan> {
    log.dialog = stored?.dialog;
    const retried = stored === undefined ? undefined : await this.replayRetry(stored, identity, message.CreateTime, stats);
    if (retried !== undefined) {
      this.logger.info({ ...log, dialog: stored?.dialog }, 'a retry of a message already handled: same reply, no change');
      return { result: retried };
    }
    const active = stored === undefined || stored.ended === true ? undefined : this.resume(stored, log);
    const decision = this.router.decide(message, active !== undefined);
    if (decision.kind === 'continue' && active !== undefined && stored !== undefined) {
      log.dialog = active.name;
      if (stored.messages.length >= this.maxMessages) {
        this.logger.warn({ ...log, limit: this.maxMessages }, `dialog ${active.name} reached ${this.maxMessages} messages and was ended`);
        return { result: { reply: this.tooLongReply, outcome: 'ended', dialog: active.name }, next: undefined };
      }
      const messages = appendMessage(stored.messages, message);
      stats.replayLength = messages.length;
      const outcome = await replay(active, messages, stored.effects, contextOf(messages), { effectTimeoutMs: this.effectTimeoutMs });
      if (outcome.kind === 'waiting') {
        const next = { dialog: active.name, version: active.version, messages, effects: outcome.effects };
        return { result: { reply: outcome.reply, outcome: 'continued', dialog: active.name }, next };
      }
      if (outcome.kind === 'ended') {
        const next = { dialog: active.name, version: active.version, messages, effects: outcome.effects, ended: true };
        return { result: { reply: outcome.reply, outcome: 'ended', dialog: active.name }, next };
      }
      this.logger.info({ ...log, dialog: active.name }, 'dialog handed the message back to the router');
      const afresh = this.router.decide(message, false);
      if (afresh.kind === 'start') return this.start(afresh.dialog, message, true, log, stats);
      return { result: { reply: undefined, outcome: 'no-reply' }, next: undefined };
    }
    if (decision.kind === 'start') return this.start(decision.dialog, message, stored !== undefined, log, stats);
    // No reply. A state that cannot be resumed (unknown dialog, changed version) goes; an
    // interrupting route ends the active dialog; otherwise the state stays as it is.
    const drop = stored !== undefined && stored.ended !== true && (active === undefined || (decision.kind === 'no-reply' && decision.endsActive));
    const result: TurnResult = { reply: undefined, outcome: 'no-reply' };
    return drop ? { result, next: undefined } : { result };
  }

  /**
   * If the message with `identity` is one `stored` already has (a WeChat retry), the reply it got: the dialog
   * replayed up to it. `undefined` when it is a new message, or the state cannot be replayed.
   */
  private async replayRetry(stored: DialogState, identity: string, createTime: number, stats: TurnStats): Promise<TurnResult | undefined> {
    // A retry carries its message's CreateTime: compare identities (a string each) only for those.
    const index = stored.messages.findIndex((m) => m.CreateTime === createTime && hasDialogMessageIdentity(m, identity));
    if (index === -1) return undefined;
    const dialog = this.router.dialog(stored.dialog);
    if (dialog === undefined || dialog.version !== stored.version) return undefined;
    const messages = stored.messages.slice(0, index + 1);
    stats.replayLength = messages.length;
    stats.repeatedFrom = 'state';
    const outcome = await replay(dialog, messages, stored.effects, contextOf(messages), { prefix: true, effectTimeoutMs: this.effectTimeoutMs });
    if (outcome.kind === 'handed-back') return { reply: undefined, outcome: 'no-reply', dialog: dialog.name };
    return { reply: outcome.reply, outcome: 'repeated', dialog: dialog.name };
  }

  /** The dialog a stored state belongs to, or undefined when it cannot be resumed (unknown, or code changed). */
  private resume(stored: DialogState, log: object): Dialog | undefined {
    const dialog = this.router.dialog(stored.dialog);
    if (dialog === undefined) {
      this.logger.warn({ ...log, dialog: stored.dialog }, `dialog ${stored.dialog} is no longer in the router table; its state was dropped`);
      return undefined;
    }
    if (dialog.version !== stored.version) {
      this.logger.info(
        { ...log, dialog: dialog.name, from: stored.version, to: dialog.version },
        `dialog ${dialog.name} changed (version ${stored.version} -> ${dialog.version}) while the user was in it; it starts afresh`,
      );
      return undefined;
    }
    return dialog;
  }

  /** Starts `dialog` with `message`; `replacing`: a state exists and is to be replaced or removed. */
  private async start(dialog: Dialog, message: DialogMessage, replacing: boolean, log: TurnLog, stats: TurnStats): Promise<Plan> {
    log.dialog = dialog.name;
    const messages: readonly DialogMessage[] = [message];
    stats.replayLength = 1;
    const outcome = await replay(dialog, messages, [], contextOf(messages), { effectTimeoutMs: this.effectTimeoutMs });
    if (outcome.kind === 'handed-back') {
      this.logger.warn(
        { ...log, dialog: dialog.name },
        `dialog ${dialog.name} handed back its opening message; not routed again, so dialogs cannot loop`,
      );
      const result: TurnResult = { reply: undefined, outcome: 'no-reply', dialog: dialog.name };
      return replacing ? { result, next: undefined } : { result };
    }
    const state = { dialog: dialog.name, version: dialog.version, messages, effects: outcome.effects };
    if (outcome.kind === 'waiting') {
      return { result: { reply: outcome.reply, outcome: 'started', dialog: dialog.name }, next: state };
    }
    // A dialog that ended on its first message keeps no state, unless it recorded effects: then a
    // retry must replay them rather than run them again.
    const result: TurnResult = { reply: outcome.reply, outcome: 'ended', dialog: dialog.name };
    if (outcome.effects.length > 0) return { result, next: { ...state, ended: true } };
    return replacing ? { result, next: undefined } : { result };
  }

  private async fail(key: StateKey, err: unknown, log: object, snapshot: Snapshot | undefined): Promise<TurnResult> {
    this.logger.error({ ...log, err }, 'turn failed; the user gets the apology');
    if (err instanceof StoreUnavailableError) notify(this.observer?.storeError);
    // A dialog that threw loses its state (unless another turn changed it meanwhile); a store
    // failure leaves the state as it was.
    if (snapshot?.state !== undefined && !(err instanceof StoreUnavailableError)) {
      try {
        await this.store.commit(key, snapshot, undefined, this.ttlSeconds);
      } catch (clearError) {
        this.logger.error({ ...log, err: clearError }, 'could not clear the state after a failed turn');
      }
    }
    return { reply: this.apology, outcome: 'failed' };
  }
}

/** The fields every log line of a turn carries; `dialog` is the one running (when known). */
interface TurnLog {
  openid: string;
  MsgId: string | undefined;
  MsgType: string;
  dialog?: string | undefined;
}

/** What a turn measured about itself, for the observer. */
interface TurnStats {
  replayLength: number;
  conflicts: number;
  repeatedFrom: 'state' | 'memory' | undefined;
}

/** What a turn will answer, and the state to commit: `next` absent means "write nothing". */
type Plan = { readonly result: TurnResult } | { readonly result: TurnResult; readonly next: DialogState | undefined };

/**
 * `next` with its newest `recent` entry (the message of this turn) set to "no passive reply": the
 * reply goes to the user another way, so a retry must not get it passively as well.
 */
function deliveredLate(next: DialogState | undefined): DialogState | undefined {
  const recent = next?.recent;
  if (next === undefined || recent === undefined || recent.length === 0) return next;
  return { ...next, recent: [...recent.slice(0, -1), { id: recent[recent.length - 1]!.id, reply: null }] };
}

/**
 * `outbox.prepare(...)`, its failure reported as the store's: the outbox lives beside the state
 * (the same Redis), and a turn that cannot make its reply durable must not commit.
 * @throws {StoreUnavailableError} when the outbox fails.
 */
async function prepareIn(outbox: Outbox, key: StateKey, identity: string, reply: Reply, push?: OutboxPush): Promise<string> {
  try {
    return await outbox.prepare(key, identity, reply, push);
  } catch (err) {
    throw new StoreUnavailableError('the outbox (delivery queue) could not take the reply', { cause: err });
  }
}

/** `next` with the `recent` replies of the state it replaces (retries of earlier messages still get theirs). */
function withRecent(next: DialogState | undefined, stored: DialogState | undefined): DialogState | undefined {
  if (next === undefined || stored?.recent === undefined || stored.recent.length === 0) return next;
  return { ...next, recent: stored.recent };
}

/** One user's id in this process: the turn queue's key and the state cache's. */
function userId(key: StateKey): string {
  return `${key.account}\u0000${key.openid}`;
}

function contextOf(messages: readonly DialogMessage[]): DialogContext {
  const first = messages[0] as DialogMessage;
  return { openid: first.FromUserName, account: first.ToUserName, time: first.CreateTime };
}
