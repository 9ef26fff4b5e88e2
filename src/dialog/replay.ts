/**
 * Replay: runs a dialog's generator from the start over the messages it has received, feeding
 * recorded effect results back in, and returns what it does with the last message.
 *
 * @module
 */
import type { InboundMessage } from '../wechat/messages.js';
import { isReply, MAX_NEWS_ARTICLES, text, type Reply } from '../wechat/replies.js';
import {
  EffectRequest,
  HandBack,
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

async function runEffect(work: () => unknown): Promise<RecordedEffect> {
  let value: unknown;
  try {
    value = await work();
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
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

/**
 * Replays `dialog` over `messages` (the opening message first; never empty) with the effects
 * recorded so far, and reports what the dialog does with the last message. Effects the dialog asks
 * for past the recorded ones run now and are returned with the outcome.
 *
 * With `prefix: true`, `messages` is a prefix of the dialog's history (to answer a WeChat retry of
 * an earlier message): effects recorded for later messages are then left unused, not an error.
 *
 * @throws {DialogRuntimeError} when the dialog is not deterministic (it ends, or asks for an
 *   effect that was never recorded, before the last message), or gives something that is not a reply.
 * @throws whatever the dialog itself throws.
 */
export async function replay(
  dialog: Dialog,
  messages: readonly InboundMessage[],
  recorded: readonly RecordedEffect[],
  context: DialogContext,
  options: { readonly prefix?: boolean } = {},
): Promise<ReplayOutcome> {
  const prefix = options.prefix === true;
  const [first] = messages;
  if (first === undefined) throw new DialogRuntimeError(`dialog ${dialog.name}: replay needs at least one message`);
  const last = messages.length - 1;
  const effects = [...recorded];
  const notDeterministic = (what: string, at: number): DialogRuntimeError =>
    new DialogRuntimeError(
      `dialog ${dialog.name} is not deterministic: ${what} while replaying message ${at + 1} of ${messages.length}; ` +
        'route clocks, random numbers and I/O through record()',
    );

  const generator = dialog.run(first, context);
  let current = 0;
  let usedEffects = 0;
  let step = await generator.next(undefined as unknown as InboundMessage);
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
        effect = await runEffect(yielded.work);
        effects.push(effect);
      }
      usedEffects += 1;
      step =
        'error' in effect
          ? await generator.throw(new RecordedEffectError(effect.error))
          : await generator.next(effect.ok as unknown as InboundMessage);
      continue;
    }
    const reply: DialogReply = yielded;
    if (current === last) {
      if (!prefix && usedEffects < effects.length) throw notDeterministic('it skipped recorded effects', current);
      return { kind: 'waiting', reply: toReply(dialog, reply), effects };
    }
    current += 1;
    step = await generator.next(messages[current] as InboundMessage);
  }
}
