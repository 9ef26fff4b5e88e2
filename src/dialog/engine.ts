/**
 * The dialog engine: one turn per inbound message. Load the user's state, let the router decide,
 * replay the dialog, save or clear the state, and return the reply. Knows nothing of HTTP or XML.
 *
 * @module
 */
import type { InboundMessage } from '../wechat/messages.js';
import { text, type Reply } from '../wechat/replies.js';
import type { Dialog, DialogContext } from './dialog.js';
import { KeyedQueue } from './keyed-queue.js';
import { replay, type ReplayOutcome } from './replay.js';
import type { Router } from './router.js';
import { StoreUnavailableError, type DialogState, type DialogStore, type StateKey } from './store/store.js';

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
}

/** How a turn ended; for logs and tests. */
export type TurnOutcome = 'started' | 'continued' | 'ended' | 'no-reply' | 'failed';

/** The result of {@link DialogEngine.handle}. */
export interface TurnResult {
  /** The passive reply, or `undefined` for none (WeChat is answered `success`). */
  readonly reply: Reply | undefined;
  readonly outcome: TurnOutcome;
  /** The dialog that produced the reply, if any. */
  readonly dialog?: string;
}

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
  private readonly queue = new KeyedQueue();

  constructor(options: EngineOptions) {
    this.router = options.router;
    this.store = options.store;
    this.ttlSeconds = options.ttlSeconds ?? 60;
    this.apology = options.apology ?? DEFAULT_APOLOGY;
    this.logger = options.logger ?? silentLogger;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new RangeError(`ttlSeconds must be a positive integer number of seconds, got ${this.ttlSeconds}`);
    }
  }

  /**
   * Handles one inbound message and returns the reply. Never throws: a dialog that throws, or a
   * store that fails, gives the apology; the error is logged with the (masked) openid and `MsgId`.
   */
  handle(message: InboundMessage): Promise<TurnResult> {
    const key: StateKey = { account: message.ToUserName, openid: message.FromUserName };
    return this.queue.run(`${key.account}\u0000${key.openid}`, () => this.turn(key, message));
  }

  private async turn(key: StateKey, message: InboundMessage): Promise<TurnResult> {
    const log = { openid: maskOpenid(key.openid), MsgId: messageId(message), MsgType: message.MsgType };
    let stored: DialogState | undefined;
    let dialogName: string | undefined;
    try {
      stored = await this.store.load(key);
      const active = stored === undefined ? undefined : this.resume(stored, log);
      const decision = this.router.decide(message, active !== undefined);
      if (decision.kind === 'continue' && active !== undefined && stored !== undefined) {
        dialogName = active.name;
        const messages = [...stored.messages, message];
        const outcome = await replay(active, messages, stored.effects, contextOf(messages));
        if (outcome.kind !== 'handed-back') return await this.settle(key, active, messages, outcome, 'continued');
        await this.store.delete(key);
        stored = undefined;
        this.logger.info({ ...log, dialog: active.name }, 'dialog handed the message back to the router');
        const next = this.router.decide(message, false);
        if (next.kind === 'start') return await this.start(key, next.dialog, message, false, log);
        return { reply: undefined, outcome: 'no-reply' };
      }
      if (decision.kind === 'start') {
        return await this.start(key, decision.dialog, message, stored !== undefined, log);
      }
      // no-reply, or a state that cannot be resumed with nothing to start
      if (stored !== undefined && (active === undefined || (decision.kind === 'no-reply' && decision.endsActive))) {
        await this.store.delete(key);
      }
      return { reply: undefined, outcome: 'no-reply' };
    } catch (err) {
      // A dialog that threw loses its state; a store failure leaves the state as it was.
      const clear = stored !== undefined && !(err instanceof StoreUnavailableError);
      return this.fail(key, err, { ...log, dialog: dialogName }, clear);
    }
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

  private async start(
    key: StateKey,
    dialog: Dialog,
    message: InboundMessage,
    hasState: boolean,
    log: object,
  ): Promise<TurnResult> {
    const messages = [message];
    const outcome = await replay(dialog, messages, [], contextOf(messages));
    if (outcome.kind === 'handed-back') {
      this.logger.warn(
        { ...log, dialog: dialog.name },
        `dialog ${dialog.name} handed back its opening message; not routed again, so dialogs cannot loop`,
      );
      if (hasState) await this.store.delete(key);
      return { reply: undefined, outcome: 'no-reply', dialog: dialog.name };
    }
    if (outcome.kind === 'ended' && hasState) await this.store.delete(key);
    return this.settle(key, dialog, messages, outcome, 'started');
  }

  private async settle(
    key: StateKey,
    dialog: Dialog,
    messages: readonly InboundMessage[],
    outcome: Exclude<ReplayOutcome, { kind: 'handed-back' }>,
    whenWaiting: 'started' | 'continued',
  ): Promise<TurnResult> {
    if (outcome.kind === 'waiting') {
      const state: DialogState = { dialog: dialog.name, version: dialog.version, messages, effects: outcome.effects };
      await this.store.save(key, state, this.ttlSeconds);
      return { reply: outcome.reply, outcome: whenWaiting, dialog: dialog.name };
    }
    if (whenWaiting === 'continued') await this.store.delete(key);
    return { reply: outcome.reply, outcome: 'ended', dialog: dialog.name };
  }

  private async fail(key: StateKey, err: unknown, log: object, clearState: boolean): Promise<TurnResult> {
    this.logger.error({ ...log, err }, 'turn failed; the user gets the apology');
    if (clearState) {
      try {
        await this.store.delete(key);
      } catch (deleteError) {
        this.logger.error({ ...log, err: deleteError }, 'could not clear the state after a failed turn');
      }
    }
    return { reply: this.apology, outcome: 'failed' };
  }
}

function contextOf(messages: readonly InboundMessage[]): DialogContext {
  const first = messages[0] as InboundMessage;
  return { openid: first.FromUserName, account: first.ToUserName, time: first.CreateTime };
}
