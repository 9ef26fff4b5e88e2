/**
 * Test a dialog in seconds: a conversation with the real engine and router, in memory, without
 * HTTP or XML. Each call sends one message as a user would and returns the reply.
 *
 * ```ts
 * const chat = createConversation({ router });
 * expect(await chat.say('累加器')).toEqual(text('您需要累加几个数字？'));
 * expect(await chat.say('2')).toEqual(text('请输入第1个数字, 目前累加和:0'));
 * await chat.close();
 * ```
 *
 * A dialog that throws makes the call reject with that error (the server would log it and send the
 * apology), so a test shows the real failure.
 *
 * @module
 */
import { validatePushInput } from '../dialog/dialog.js';
import { DialogEngine, type EngineLogger, type TurnResult } from '../dialog/engine.js';
import type { Outbox } from '../dialog/outbox.js';
import type { Router } from '../dialog/router.js';
import { MemoryStore } from '../dialog/store/memory-store.js';
import type { ClickEvent, InboundMessage, SubscribeEvent, TextMessage } from '../wechat/messages.js';
import { replyLimitWarnings, type Reply } from '../wechat/replies.js';

/** Options of {@link createConversation}. */
export interface ConversationOptions {
  /** The router table under test, e.g. `dialogs/router.ts`'s `router`. */
  readonly router: Router;
  /** The user's openid. @default 'oTestUser0000000000000000001' */
  readonly openid?: string;
  /** The account's original id (`ToUserName`). @default 'gh_test0000000' */
  readonly account?: string;
  /** How long a dialog waits for the next message, **seconds**. @default 60 */
  readonly ttlSeconds?: number;
  /** The clock for `CreateTime`, in **milliseconds**. @default Date.now */
  readonly now?: () => number;
  /**
   * How long a `record()` effect may take, in **milliseconds**, unless its call sets `timeoutMs`
   * (the engine's `effectTimeoutMs`). Set it low to test a dialog's handling of a slow effect.
   * @default 30_000
   */
  readonly effectTimeoutMs?: number;
}

/** A message to send, without the fields every push has (ids, `CreateTime`, `MsgId`): they are filled in. */
export type OutgoingMessage = InboundMessage extends infer M
  ? M extends InboundMessage
    ? Omit<M, 'ToUserName' | 'FromUserName' | 'CreateTime' | 'MsgId'> & { readonly MsgId?: string }
    : never
  : never;

/** One user talking to the router under test. */
export interface Conversation {
  readonly openid: string;
  /** Sends a text message; resolves to the reply (`undefined`: no reply, WeChat would get `success`). */
  say(content: string): Promise<Reply | undefined>;
  /** A menu click (`CLICK` with `EventKey`). */
  click(eventKey: string): Promise<Reply | undefined>;
  /** A follow; with a scene, as through a parametric QR code (`EventKey` `qrscene_<scene>`). */
  subscribe(scene?: string): Promise<Reply | undefined>;
  /** Any message or event, e.g. `send({ MsgType: 'image', PicUrl: 'http://…', MediaId: 'm' })`. */
  send(message: OutgoingMessage): Promise<Reply | undefined>;
  /** Like {@link send}, with the engine's whole result (`outcome`, `dialog`). */
  turn(message: OutgoingMessage): Promise<TurnResult>;
  /**
   * Starts push dialog `dialog` (from the router's `pushed` list) for this user, as `POST /push`
   * with `"dialog"` does, and returns its first reply (the customer-service message the user would
   * get), or `undefined` when it gave none.
   * @throws {ConversationError} for an unknown dialog, an input the dialog's schema refuses (the
   *   message names the fields), a user in another dialog with `ifActive: 'refuse'` (the default),
   *   or a dialog that threw.
   */
  push(dialog: string, input: unknown, options?: { readonly ifActive?: 'refuse' | 'interrupt' }): Promise<Reply | undefined>;
  /** The same push again, as WeChat retries it (same `MsgId` or `CreateTime`): resolves to the reply the retry gets. */
  retryLast(): Promise<Reply | undefined>;
  /**
   * What WeChat might do to the replies so far that a dialog author would not expect (a text over
   * 2048 bytes, several news articles in answer to a message): see `replyLimitWarnings`. The
   * server logs these; a test can assert there are none.
   */
  readonly warnings: readonly string[];
  /** The name of the dialog the user is in, if any. */
  activeDialog(): Promise<string | undefined>;
  /** Releases the in-memory store. */
  close(): Promise<void>;
}

/** Thrown by a {@link Conversation} when a turn failed; `cause` is the dialog's own error when it threw. */
export class ConversationError extends Error {
  override readonly name = 'ConversationError';
  readonly code = 'TURN_FAILED';
}

let lastMsgId = 9_007_199_254_740_993n; // above 2^53, as real MsgIds are

/**
 * Starts a conversation between one user and `options.router`, on the real engine and an
 * in-memory store.
 */
export function createConversation(options: ConversationOptions): Conversation {
  const openid = options.openid ?? 'oTestUser0000000000000000001';
  const account = options.account ?? 'gh_test0000000';
  const now = options.now ?? Date.now;
  const store = new MemoryStore({ sweepIntervalMs: 0 });
  /** What the engine logged as errors during the current turn (a dialog that threw, a store failure). */
  const failures: { message: string; err: unknown }[] = [];
  const logger: EngineLogger = {
    info: () => undefined,
    warn: () => undefined,
    error: (fields, message) => {
      failures.push({ message, err: (fields as { err?: unknown }).err });
    },
  };
  const released = new Map<string, Reply>();
  const prepared = new Map<string, Reply>();
  let nextDelivery = 0;
  const outbox: Outbox = {
    async prepare(_key, _identity, reply) {
      nextDelivery += 1;
      prepared.set(`c.${nextDelivery}`, reply);
      return `c.${nextDelivery}`;
    },
    async release(id) {
      const reply = prepared.get(id);
      if (reply !== undefined) released.set(id, reply);
    },
    async discard(id) {
      prepared.delete(id);
    },
  };
  let pushes = 0;
  const engine = new DialogEngine({
    router: options.router,
    store,
    outbox,
    ttlSeconds: options.ttlSeconds ?? 60,
    logger,
    ...(options.effectTimeoutMs === undefined ? {} : { effectTimeoutMs: options.effectTimeoutMs }),
  });
  let last: InboundMessage | undefined;
  const warnings: string[] = [];
  let lastTime = 0;

  const handle = async (message: InboundMessage): Promise<TurnResult> => {
    last = message;
    failures.length = 0;
    const result = await engine.handle(message);
    const [failure] = failures;
    if (failure !== undefined) {
      const { message: what, err } = failure;
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConversationError(`${what}: ${reason}`, { cause: err });
    }
    if (result.reply !== undefined) warnings.push(...replyLimitWarnings(result.reply, message.MsgType === 'event'));
    return result;
  };
  const turn = (message: OutgoingMessage): Promise<TurnResult> => {
    // Distinct seconds per event, so two events are never taken for a retry of one push.
    lastTime = Math.max(lastTime + (message.MsgType === 'event' ? 1 : 0), Math.floor(now() / 1000));
    const head = { ToUserName: account, FromUserName: openid, CreateTime: lastTime };
    if (message.MsgType === 'event') return handle({ ...head, ...message } as InboundMessage);
    lastMsgId += 1n;
    return handle({ ...head, MsgId: String(lastMsgId), ...message } as InboundMessage);
  };
  const send = async (message: OutgoingMessage): Promise<Reply | undefined> => (await turn(message)).reply;

  return {
    openid,
    warnings,
    say: (content) => send({ MsgType: 'text', Content: content } satisfies Omit<TextMessage, 'ToUserName' | 'FromUserName' | 'CreateTime' | 'MsgId'>),
    click: (eventKey) => send({ MsgType: 'event', Event: 'CLICK', EventKey: eventKey } satisfies Omit<ClickEvent, 'ToUserName' | 'FromUserName' | 'CreateTime'>),
    subscribe: (scene) =>
      send(
        (scene === undefined
          ? { MsgType: 'event', Event: 'subscribe' }
          : { MsgType: 'event', Event: 'subscribe', EventKey: `qrscene_${scene}` }) satisfies Omit<SubscribeEvent, 'ToUserName' | 'FromUserName' | 'CreateTime'>,
      ),
    send,
    turn,
    async push(name, input, pushOptions = {}) {
      const dialog = options.router.pushDialog(name);
      if (dialog === undefined) throw new ConversationError(`push(): no push dialog named ${JSON.stringify(name)} in the router's pushed list`);
      const checked = await validatePushInput(dialog, input);
      if ('issues' in checked) {
        throw new ConversationError(`push(): the input was refused: ${checked.issues.map((i) => `${i.path || '(input)'}: ${i.message}`).join('; ')}`);
      }
      pushes += 1;
      failures.length = 0;
      lastTime = Math.max(lastTime, Math.floor(now() / 1000));
      const result = await engine.startPushed({
        account,
        openid,
        dialog,
        input: checked.value,
        push: { id: `p_test${pushes}`, service: 'test' },
        ifActive: pushOptions.ifActive ?? 'refuse',
        createTime: lastTime,
      });
      if (result.outcome === 'active') throw new ConversationError(`push(): the user is in dialog ${result.dialog}; pass { ifActive: 'interrupt' } to end it`);
      if (result.outcome === 'failed') {
        const [failure] = failures;
        const reason = failure?.err instanceof Error ? failure.err.message : result.reason;
        throw new ConversationError(`push(): the dialog could not start: ${reason}`, { cause: failure?.err });
      }
      if (result.outcome === 'repeated' || result.delivery === undefined) return undefined;
      return released.get(result.delivery);
    },
    async retryLast() {
      if (last === undefined) throw new ConversationError('retryLast(): nothing was sent yet');
      return (await handle(last)).reply;
    },
    async activeDialog() {
      const state = await store.load({ account, openid });
      return state === undefined || state.ended === true ? undefined : state.dialog;
    },
    close: () => store.close(),
  };
}
