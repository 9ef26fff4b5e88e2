/**
 * The dialog contract and the helpers dialog authors use: {@link defineDialog}, {@link record},
 * {@link handBack}.
 *
 * A dialog is a generator function (sync or async). It receives the message that opened it and a
 * {@link DialogContext}; each `yield <reply>` sends a reply and evaluates to the user's next
 * message; `return <reply>` ends the dialog with a last reply. The engine replays a dialog from the
 * start on every message, so a dialog must be deterministic given its messages: work with side
 * effects or varying results goes through {@link record}.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { messageIdentity } from '../wechat/message-identity.js';
import type { InboundMessage } from '../wechat/messages.js';
import type { Reply } from '../wechat/replies.js';
import type { JsonValue } from './store/store.js';

/**
 * The message that opens a dialog a push started (`POST /push` with `"dialog"`): not a WeChat
 * message, but stored and replayed like one. `Input` is the push's `input` as the dialog's input
 * schema returned it (JSON: it is stored). Source of the fields' names: WeChat's common fields.
 */
export interface PushMessage<I = JsonValue> {
  readonly MsgType: 'push';
  /** The Official Account's original id (`gh_…`), as in the user's own messages. */
  readonly ToUserName: string;
  /** The user's `openid`. */
  readonly FromUserName: string;
  /** When the push was accepted: Unix time in **seconds**. */
  readonly CreateTime: number;
  /** The push id the calling service got back (`GET /push/<id>`). */
  readonly PushId: string;
  /** The calling service's name (from `PUSH_API_KEYS`). */
  readonly Service: string;
  /** The push's `input`, validated by the dialog's input schema. */
  readonly Input: I;
}

/** Any message a dialog's history holds: a WeChat message, or the {@link PushMessage} that opened it. */
export type DialogMessage = InboundMessage | PushMessage;

/**
 * The identity of a history message: {@link messageIdentity} for WeChat's messages (what its
 * retries share), `<openid>|p|<PushId>` for a {@link PushMessage} (what a repeated push shares).
 */
export function dialogMessageIdentity(message: DialogMessage): string {
  return message.MsgType === 'push' ? `${message.FromUserName}|p|${message.PushId}` : messageIdentity(message);
}

/**
 * Whether `dialogMessageIdentity(message) === identity`, building the identity only when it can
 * be: a message with a `MsgId` has the identity `<FromUserName>|m|<MsgId>`, which `identity` cannot
 * be unless it is that long and ends with that `MsgId`. Looking a retry up in a history asks this
 * of every message sent within the same second.
 */
export function hasDialogMessageIdentity(message: DialogMessage, identity: string): boolean {
  if (message.MsgType !== 'push' && message.MsgType !== 'event' && message.MsgId !== undefined) {
    const id = message.MsgId;
    if (identity.length !== message.FromUserName.length + 3 + id.length || !identity.endsWith(id)) return false;
  }
  return dialogMessageIdentity(message) === identity;
}

/**
 * A schema as the Standard Schema spec defines it (https://standardschema.dev, v1): zod (≥ 3.24),
 * valibot and arktype schemas all are one. Only what this project calls is declared.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** What a {@link StandardSchemaV1} validation returns: the value, or the issues with their paths. */
export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | {
      readonly issues: readonly {
        readonly message: string;
        readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined;
      }[];
    };

/** The output type of a {@link StandardSchemaV1}. */
export type SchemaOutput<S extends StandardSchemaV1> = NonNullable<S['~standard']['types']>['output'];

/** What a dialog knows besides its messages. Every field is the same on every replay. */
export interface DialogContext {
  /** The user's `openid` (`FromUserName`). */
  readonly openid: string;
  /** The Official Account's original id (`ToUserName`, `gh_…`). */
  readonly account: string;
  /** `CreateTime` of the message that opened the dialog: Unix time in **seconds**. */
  readonly time: number;
}

/**
 * A reply, given by `yield` or `return`: a {@link Reply} value (`text()`, `news()`), a string (short
 * for `text(string)`), or `undefined` for no reply (WeChat gets `success`).
 */
export type DialogReply = Reply | string | undefined;

/** Everything a dialog may yield: a reply, or (through `yield* record(...)`) an {@link EffectRequest}. */
export type DialogYield = DialogReply | EffectRequest;

/** Everything a dialog may return: a last reply, or {@link handBack}'s marker. */
export type DialogReturn = DialogReply | HandBack | void;

/** The generator a dialog function returns; `yield` evaluates to the user's next message. */
export type DialogGenerator =
  | Generator<DialogYield, DialogReturn, InboundMessage>
  | AsyncGenerator<DialogYield, DialogReturn, InboundMessage>;

/**
 * A dialog's code: a (sync or async) generator function. `M` is the type of the opening message:
 * {@link InboundMessage} unless the dialog is only started by routes that narrow it (see `route()`).
 */
export type DialogFunction<M extends DialogMessage = InboundMessage> = (first: M, context: DialogContext) => DialogGenerator;

/**
 * A named, versioned dialog, as the router and the engine know it. Create it with {@link defineDialog}.
 * `M` is the type of the message that opens it (the messages after it are always {@link InboundMessage}).
 */
export interface Dialog<M extends DialogMessage = InboundMessage> {
  /** Unique name, stored in the user's state to find the dialog again on the next message. */
  readonly name: string;
  /**
   * Stored with the state; when the code's version differs from the stored one, the old state is
   * dropped instead of being replayed into different code.
   */
  readonly version: string;
  /** The generator function. */
  readonly run: DialogFunction<M>;
  /** How long it waits for the user's next message, in **seconds**, when not the engine's `ttlSeconds`. */
  readonly ttlSeconds?: number;
}

/**
 * A dialog a push can start (see {@link definePushDialog}): it opens with a {@link PushMessage}
 * whose `Input` the schema `input` produced.
 */
export interface PushDialog<I extends JsonValue = JsonValue> extends Dialog<PushMessage<I>> {
  /** Validates a push's `input`; a push whose input fails gets 400 naming the field. */
  readonly input: StandardSchemaV1<unknown, I>;
}

/** A {@link PushDialog} of any input type, as the router and the engine hold it. */
export interface AnyPushDialog extends Dialog<PushMessage<never>> {
  readonly input: StandardSchemaV1<unknown, JsonValue>;
}

/** Options of {@link defineDialog}. */
export interface DialogOptions {
  /**
   * The dialog's version. Change it when a change to the code must not be replayed over states
   * started with the old code.
   * @default the first 12 hex digits of the SHA-256 of the function's source text
   */
  readonly version?: string;
  /**
   * How long this dialog waits for the user's next message, in **seconds** (a positive integer,
   * at most 2 592 000 = 30 days), renewed on every turn. A dialog a push starts usually needs
   * longer than a chat (the user reads the question later); the handled-message memory is not
   * affected.
   * @default the engine's `ttlSeconds` (`DIALOG_TTL_SECONDS`, 60)
   */
  readonly ttlSeconds?: number;
}

/** Thrown when a dialog is defined or used wrongly; the message says how to fix it. */
export class DialogDefinitionError extends Error {
  override readonly name = 'DialogDefinitionError';
  readonly code = 'INVALID_DIALOG';
}

const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The longest a dialog may wait for the user's next message, in **seconds**: 30 days. */
export const MAX_DIALOG_TTL_SECONDS = 2_592_000;

/**
 * Names a dialog so the router can start it and the engine can find it again.
 * @param name - 1 to 64 characters of `A-Z a-z 0-9 _ . : -`, unique within a router.
 * @param run - the generator function. Annotate its first parameter (e.g. `first: ClickEvent`) for a
 *   dialog that only menu clicks start; the router's `route()` then checks that only such a route
 *   starts it.
 * @param options - see {@link DialogOptions}.
 * @throws {DialogDefinitionError} for an invalid name, a `run` that is not a function, or a
 *   `ttlSeconds` that is not a whole number of seconds from 1 to {@link MAX_DIALOG_TTL_SECONDS}.
 * @example
 * export const accumulator = defineDialog('accumulator', function* (first) {
 *   const answer = yield text('您需要累加几个数字？');
 *   ...
 * });
 */
export function defineDialog<M extends DialogMessage = InboundMessage>(
  name: string,
  run: DialogFunction<M>,
  options: DialogOptions = {},
): Dialog<M> {
  if (!NAME_PATTERN.test(name)) {
    throw new DialogDefinitionError(
      `dialog name ${JSON.stringify(name)} is invalid: use 1 to 64 characters of A-Z a-z 0-9 _ . : -`,
    );
  }
  if (typeof run !== 'function') {
    throw new DialogDefinitionError(`dialog ${name}: the second argument must be a generator function`);
  }
  const version = options.version ?? createHash('sha256').update(run.toString()).digest('hex').slice(0, 12);
  const { ttlSeconds } = options;
  if (ttlSeconds !== undefined && !(Number.isSafeInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= MAX_DIALOG_TTL_SECONDS)) {
    throw new DialogDefinitionError(`dialog ${name}: ttlSeconds must be a whole number of seconds from 1 to ${MAX_DIALOG_TTL_SECONDS}, got ${String(ttlSeconds)}`);
  }
  return Object.freeze(ttlSeconds === undefined ? { name, version, run } : { name, version, run, ttlSeconds });
}

/**
 * Defines a dialog that a push (`POST /push` with `"dialog": name`) starts for a user, with typed
 * input: `input` validates the push's `input` (a push that fails it gets 400 naming the field), and
 * the dialog opens with a {@link PushMessage} carrying the validated value as `Input`. Its first
 * reply goes to the user as a customer-service message (客服消息); the user's next message
 * continues it like any dialog. List it in the router's `pushed` dialogs.
 * @param name - as for {@link defineDialog}.
 * @param input - a Standard Schema (a zod schema, for instance) whose output is JSON: it is stored.
 * @param run - the generator function; `first.Input` is the validated input.
 * @throws {DialogDefinitionError} for an invalid name, a `run` that is not a function, or an
 *   `input` that is not a Standard Schema.
 * @example
 * const Order = z.object({ orderId: z.string(), total: z.number() });
 * export const confirmOrder = definePushDialog('confirm-order', Order, function* (first) {
 *   const answer = yield `确认订单 #${first.Input.orderId}？回复 1 确认，2 取消`;
 *   ...
 * });
 */
export function definePushDialog<S extends StandardSchemaV1<unknown, JsonValue>>(
  name: string,
  input: S,
  run: DialogFunction<PushMessage<SchemaOutput<S>>>,
  options: DialogOptions = {},
): PushDialog<SchemaOutput<S>> {
  const schema: unknown = input;
  if (typeof schema !== 'object' || schema === null || !('~standard' in schema)) {
    throw new DialogDefinitionError(`dialog ${name}: the input must be a Standard Schema (a zod schema, for instance)`);
  }
  const dialog = defineDialog<PushMessage<SchemaOutput<S>>>(name, run, options);
  return Object.freeze({ ...dialog, input: input as StandardSchemaV1<unknown, SchemaOutput<S>> });
}

/** One reason a push's input was refused: where (`orderId`, `items.0.sku`; `''` for the whole input) and why. */
export interface InputIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * Validates a push's `input` with `dialog`'s schema.
 * @returns the schema's output (what the dialog gets as `first.Input`), or the issues with their
 *   dotted paths. Never throws for bad input; a schema that throws is the dialog author's bug and
 *   its error propagates.
 */
export async function validatePushInput(
  dialog: AnyPushDialog,
  input: unknown,
): Promise<{ readonly value: JsonValue } | { readonly issues: readonly InputIssue[] }> {
  const result = await dialog.input['~standard'].validate(input);
  if (result.issues === undefined) return { value: result.value };
  return {
    issues: result.issues.map((issue) => ({
      path: (issue.path ?? []).map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.'),
      message: issue.message,
    })),
  };
}

/**
 * The work {@link record} runs: a function of an `AbortSignal`, sync or async. The signal is aborted
 * when the work runs past its timeout (its `reason` is a `DOMException` named `TimeoutError`); pass
 * it on (`fetch(url, { signal })`) so the work stops instead of running on unobserved. Work that
 * does not need it simply takes no parameter: `record(() => Date.now())`.
 */
export type EffectWork<T> = (signal: AbortSignal) => T | Promise<T>;

/** Options of {@link record}. */
export interface RecordOptions {
  /**
   * How long the work may take, in **milliseconds** (a positive integer, at most 2 147 483 647):
   * past it the dialog gets a {@link RecordedEffectError} (`record() timed out after <n> ms`),
   * recorded like any failure, and the work's `AbortSignal` is aborted.
   * @default the engine's `effectTimeoutMs` (30 000 ms unless configured)
   */
  readonly timeoutMs?: number;
}

/** The largest delay a Node.js timer can hold, in **milliseconds** (2^31 - 1); longer ones fire at once. */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * `true` when `ms` is a usable timeout in **milliseconds**: a positive integer no larger than
 * {@link MAX_TIMEOUT_MS}.
 */
export function isValidTimeoutMs(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isInteger(ms) && ms >= 1 && ms <= MAX_TIMEOUT_MS;
}

/**
 * What {@link record} yields to the engine: run `work` once, keep its result in the state, and on
 * every replay give back the kept result instead of running it again. Dialog code never builds one
 * directly.
 */
export class EffectRequest {
  /**
   * @param work - the work to run, given an `AbortSignal` aborted on timeout.
   * @param timeoutMs - this effect's timeout in **milliseconds**; `undefined`: the engine's default.
   */
  constructor(
    readonly work: EffectWork<unknown>,
    readonly timeoutMs?: number,
  ) {}
}

/**
 * The error a dialog sees, at `yield* record(...)`, when the recorded work threw or timed out. It
 * is recorded too, so replay throws the same error (same `message`) at the same place.
 */
export class RecordedEffectError extends Error {
  override readonly name = 'RecordedEffectError';
  readonly code = 'EFFECT_FAILED';
}

/**
 * Runs non-deterministic work once and records its result in the dialog state; on replay (every
 * later message, in any process) it returns the recorded result without running the work again.
 * Use it for the clock, random numbers, HTTP calls: anything whose result could differ on replay.
 *
 * The result is stored as JSON, and the dialog gets the JSON round trip of it even the first time,
 * so what the dialog sees never changes between the first run and a replay. The type only accepts
 * JSON values (a `Date` must be turned into a number or string first).
 *
 * The work has a timeout (`options.timeoutMs`, else the engine's `effectTimeoutMs`, 30 000 ms by
 * default), so an effect that never settles cannot hold up the user's later messages. Past it
 * the dialog gets a {@link RecordedEffectError} (`record() timed out after 30000 ms`), recorded
 * like any failure, and the `AbortSignal` the work was given is aborted. The timeout only stops
 * waiting: synchronous work that never returns (a busy loop) cannot be interrupted.
 *
 * Use with `yield*`, in sync and async dialogs alike; `work` may be async:
 * ```ts
 * const startedAt = yield* record(() => Date.now());
 * const weather = yield* record(async (signal) => (await fetch(url, { signal })).json() as Promise<Weather>, { timeoutMs: 3000 });
 * ```
 * @throws {RecordedEffectError} (inside the dialog, at the `yield*`) when `work` threw, rejected or
 *   timed out, with the original error's message (or the timeout's); or when its result is not JSON
 *   (a function, a symbol, a BigInt).
 * @throws {DialogDefinitionError} (inside the dialog, at the `yield*`) when `options.timeoutMs` is
 *   not a positive integer of at most {@link MAX_TIMEOUT_MS}.
 */
export function* record<T extends JsonValue | undefined>(
  work: EffectWork<T>,
  options: RecordOptions = {},
): Generator<EffectRequest, T, unknown> {
  const { timeoutMs } = options;
  if (timeoutMs !== undefined && !isValidTimeoutMs(timeoutMs)) {
    throw new DialogDefinitionError(
      `record(): timeoutMs must be a positive integer of milliseconds, at most ${MAX_TIMEOUT_MS}; got ${String(timeoutMs)}`,
    );
  }
  const value: unknown = yield new EffectRequest(work, timeoutMs);
  return value as T;
}

/**
 * The marker {@link handBack} returns. The engine ends the dialog and routes the current message as
 * if no dialog were active.
 */
export class HandBack {
  static readonly instance = new HandBack();
  private constructor() {}
}

/**
 * Ends the dialog and hands the current message back to the router (the original project's
 * "unexpected answer", `UnexpectAnswer`): the message then starts whatever dialog it routes to, as if
 * no dialog had been active. Use it as `return handBack();`.
 *
 * The message is handed back once: a dialog that hands back its own opening message gets no reply
 * (WeChat is answered `success`) and a warning is logged, so two dialogs can never loop.
 */
export function handBack(): HandBack {
  return HandBack.instance;
}
