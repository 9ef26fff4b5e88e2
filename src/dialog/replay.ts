/**
 * Replay: runs a dialog's generator from the start over the messages it has received, feeding
 * recorded effect results back in, and returns what it does with the last message.
 *
 * @module
 */
import type { InboundMessage } from '../wechat/messages.js';
import type { DialogFunction, DialogMessage } from './dialog.js';
import { isReply, MAX_NEWS_ARTICLES, text, type Reply } from '../wechat/replies.js';
import {
  EffectRequest,
  HandBack,
  isValidTimeoutMs,
  MAX_TIMEOUT_MS,
  RecordedEffectError,
  type Dialog,
  type DialogContext,
  type DialogReply,
} from './dialog.js';
import type { JsonValue, RecordedEffect } from './store/store.js';

/** What a dialog did with its last message. */
export type ReplayOutcome =
  /** It yielded `reply` and waits for the next message; `effects` includes any recorded this turn. */
  | { readonly kind: 'waiting'; readonly reply: Reply | undefined; readonly effects: readonly RecordedEffect[] }
  /** It returned: the dialog is over. `effects` includes any recorded this turn. */
  | { readonly kind: 'ended'; readonly reply: Reply | undefined; readonly effects: readonly RecordedEffect[] }
  /** It returned `handBack()`: the message goes back to the router. */
  | { readonly kind: 'handed-back' };

/**
 * A dialog broke the rules of replay or of replies. The engine treats it like a dialog that threw:
 * apology, state cleared, error logged.
 */
export class DialogRuntimeError extends Error {
  override readonly name = 'DialogRuntimeError';
  readonly code = 'DIALOG_RUNTIME';
}

function toReply(dialog: Dialog, value: unknown): Reply | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return text(value);
  if (isReply(value)) return value;
  throw new DialogRuntimeError(
    `dialog ${dialog.name} gave ${describe(value)} as a reply: yield or return a string, a reply built with text(), image(), voice(), video(), music(), news() (1 to ${MAX_NEWS_ARTICLES} articles) or transferCustomerService(), or nothing`,
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${JSON.stringify(value)?.slice(0, 80) ?? '?'})`;
  return `a ${typeof value}`;
}

/** How long a `record()` effect may take unless told otherwise, in **milliseconds**. */
export const DEFAULT_EFFECT_TIMEOUT_MS = 30_000;

/** The message a dialog sees (and the state keeps) for an effect that ran past `timeoutMs`. */
function timeoutMessage(timeoutMs: number): string {
  return `record() timed out after ${timeoutMs} ms`;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** {@link isPromiseLike}, keeping the type of what it settles to. */
function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return isPromiseLike(value);
}

/**
 * Runs an effect's work with a timeout and turns the outcome into what the state keeps. Never
 * throws: a failure, a timeout or a result that is not JSON is recorded as `{ error }`.
 */
async function runEffect(request: EffectRequest, timeoutMs: number): Promise<RecordedEffect> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let value: unknown;
  try {
    const result = request.work(controller.signal);
    if (isPromiseLike(result)) {
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const message = timeoutMessage(timeoutMs);
          // Reject before aborting, so the timeout wins the race over whatever the abort makes
          // the work reject with (fetch: "This operation was aborted").
          reject(new RecordedEffectError(message));
          controller.abort(new DOMException(message, 'TimeoutError'));
        }, timeoutMs);
      });
      value = await Promise.race([result, timedOut]);
    } else {
      value = result;
    }
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
  if (value === undefined) return {};
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    return { error: `record(): the result cannot be stored as JSON (${String(err)}); return plain data` };
  }
  if (json === undefined) {
    return { error: `record(): the result (${typeof value}) cannot be stored as JSON; return plain data` };
  }
  return { ok: JSON.parse(json) as JsonValue };
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  /**
   * `messages` is a prefix of the dialog's history (to answer a WeChat retry of an earlier
   * message): effects recorded for later messages are then left unused, not an error.
   * @default false
   */
  readonly prefix?: boolean;
  /**
   * How long an effect run now (not one replayed from `recorded`) may take, in **milliseconds**,
   * unless its `record()` call sets its own `timeoutMs`. A positive integer of at most 2^31 - 1.
   * @default DEFAULT_EFFECT_TIMEOUT_MS (30 000)
   */
  readonly effectTimeoutMs?: number;
}

/**
 * Replays `dialog` over `messages` (the opening message first; never empty) with the effects
 * recorded so far, and reports what the dialog does with the last message. Effects the dialog asks
 * for past the recorded ones run now and are returned with the outcome.
 *
 * With `prefix: true`, `messages` is a prefix of the dialog's history (to answer a WeChat retry of
 * an earlier message): effects recorded for later messages are then left unused, not an error.
 *
 * An effect run now that does not settle within its timeout (`record(work, { timeoutMs })`, else
 * `options.effectTimeoutMs`) is recorded as the error `record() timed out after <n> ms`, exactly
 * like a failed effect, and its work's `AbortSignal` is aborted. Recorded effects, timed out or
 * not, are never run again.
 *
 * @throws {DialogRuntimeError} when the dialog is not deterministic (it ends, or asks for an
 *   effect that was never recorded, before the last message), or gives something that is not a reply.
 * @throws {RangeError} when `options.effectTimeoutMs` is not a positive integer of at most 2^31 - 1.
 * @throws whatever the dialog itself throws.
 */
export async function replay(
  dialog: Dialog,
  messages: readonly DialogMessage[],
  recorded: readonly RecordedEffect[],
  context: DialogContext,
  options: ReplayOptions = {},
): Promise<ReplayOutcome> {
  const prefix = options.prefix === true;
  const effectTimeoutMs = options.effectTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS;
  if (!isValidTimeoutMs(effectTimeoutMs)) {
    throw new RangeError(`effectTimeoutMs must be a positive integer of milliseconds, at most ${MAX_TIMEOUT_MS}; got ${effectTimeoutMs}`);
  }
  const [first] = messages;
  if (first === undefined) throw new DialogRuntimeError(`dialog ${dialog.name}: replay needs at least one message`);
  const last = messages.length - 1;
  const effects = [...recorded];
  const notDeterministic = (what: string, at: number): DialogRuntimeError =>
    new DialogRuntimeError(
      `dialog ${dialog.name} is not deterministic: ${what} while replaying message ${at + 1} of ${messages.length}; ` +
        'route clocks, random numbers and I/O through record()',
    );

  // Sound: a history opens with the message its dialog was started with (a routed message the
  // route's matcher checked, or a PushMessage for a push dialog), and the rest are InboundMessages.
  const generator = (dialog.run as DialogFunction<DialogMessage>)(first, context);
  let current = 0;
  let usedEffects = 0;
  // A sync generator's steps are used as they are: awaiting one would only cost a microtask each.
  let pending = generator.next(undefined as unknown as InboundMessage);
  let step = isThenable(pending) ? await pending : pending;
  for (;;) {
    if (step.done === true) {
      if (current < last) throw notDeterministic('it ended', current);
      if (!prefix && usedEffects < effects.length) throw notDeterministic('it skipped recorded effects', current);
      if (step.value instanceof HandBack) return { kind: 'handed-back' };
      return { kind: 'ended', reply: toReply(dialog, step.value), effects };
    }
    const yielded = step.value;
    if (yielded instanceof EffectRequest) {
      let effect = effects[usedEffects];
      if (effect === undefined) {
        if (current < last) throw notDeterministic('it asked for an effect that was never recorded', current);
        effect = await runEffect(yielded, yielded.timeoutMs ?? effectTimeoutMs);
        effects.push(effect);
      }
      usedEffects += 1;
      pending = 'error' in effect ? generator.throw(new RecordedEffectError(effect.error)) : generator.next(effect.ok as unknown as InboundMessage);
      step = isThenable(pending) ? await pending : pending;
      continue;
    }
    const reply: DialogReply = yielded;
    if (current === last) {
      if (!prefix && usedEffects < effects.length) throw notDeterministic('it skipped recorded effects', current);
      return { kind: 'waiting', reply: toReply(dialog, reply), effects };
    }
    current += 1;
    pending = generator.next(messages[current] as InboundMessage);
    step = isThenable(pending) ? await pending : pending;
  }
}
