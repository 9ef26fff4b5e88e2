/**
 * The stored form of a {@link DialogState}: one JSON string, wrapped in a versioned envelope.
 *
 * ```json
 * {"f":1,"dialog":"signup","version":"a1b2","messages":[{...}],"effects":[{"ok":3},{"error":"..."}],"ended":true,
 *  "recent":[{"id":"oUser…|m|7300000000000000001","reply":{"MsgType":"text","Content":"…"}}]}
 * ```
 *
 * `f` is the format version of this envelope (not the dialog's version). A value written in another
 * format, or anything that is not a well-formed state, decodes to `undefined`, so stores treat it as
 * absent instead of replaying garbage into a dialog. Every `InboundMessage` value is already a string
 * (`MsgId` included) except `CreateTime`, so JSON keeps it exactly.
 *
 * @module
 */
import type { DialogMessage } from '../dialog.js';
import { isReply, type Reply } from '../../wechat/replies.js';
import type { DialogState, HandledReply, JsonValue, RecentReply, RecordedEffect, Snapshot } from './store.js';

/** The envelope format version written by {@link encodeState}; {@link decodeState} accepts only this one. */
export const STATE_FORMAT_VERSION = 1;

/**
 * Serializes `state` as a JSON envelope `{"f":1,"dialog","version","messages","effects"[,"ended":true][,"recent"]}`.
 * Fields that are `undefined` are dropped (an effect `{ ok: undefined }` is stored as `{}`).
 * @throws {TypeError} only when `state` holds something JSON cannot represent (a cycle or a
 *   `bigint`), which the {@link DialogState} type does not allow.
 */
export function encodeState(state: DialogState): string {
  // The same text as JSON.stringify of { f, dialog, version, messages, effects, ended?, recent? },
  // with the messages' JSON built on the previous state's when the list was made by appendMessage.
  return (
    `{"f":${STATE_FORMAT_VERSION},"dialog":${JSON.stringify(state.dialog)},"version":${JSON.stringify(state.version)},` +
    `"messages":${encodeMessages(state.messages)},"effects":${JSON.stringify(state.effects)}` +
    `${state.ended === true ? ',"ended":true' : ''}` +
    `${state.recent === undefined || state.recent.length === 0 ? '' : `,"recent":${JSON.stringify(state.recent)}`}}`
  );
}

/** The JSON of message lists already encoded (held as long as the list is: the engine's cache keeps it). */
const messagesJson = new WeakMap<readonly DialogMessage[], string>();
/** How a list made by {@link appendMessage} was made: its predecessor and the message added. */
const appendedTo = new WeakMap<readonly DialogMessage[], { readonly previous: readonly DialogMessage[]; readonly message: DialogMessage }>();

/**
 * `[...messages, message]`, remembered as such: encoding it then reuses the JSON of `messages`
 * (encoded when the previous state was written) instead of serializing every message again, so
 * the work a turn does on the history does not grow with its length (the text written still does).
 */
export function appendMessage(messages: readonly DialogMessage[], message: DialogMessage): readonly DialogMessage[] {
  const next = [...messages, message];
  appendedTo.set(next, { previous: messages, message });
  return next;
}

function encodeMessages(messages: readonly DialogMessage[]): string {
  const known = messagesJson.get(messages);
  if (known !== undefined) return known;
  const link = appendedTo.get(messages);
  const json =
    link === undefined
      ? JSON.stringify(messages)
      : link.previous.length === 0
        ? `[${JSON.stringify(link.message)}]`
        : `${encodeMessages(link.previous).slice(0, -1)},${JSON.stringify(link.message)}]`;
  messagesJson.set(messages, json);
  return json;
}

/**
 * Parses what {@link encodeState} wrote. Returns `undefined`, never throws, when `raw` is not JSON,
 * has another format version `f`, or does not have the shape of a state: `dialog` and `version`
 * strings; `messages` a non-empty array of objects with string `MsgType`, `FromUserName`,
 * `ToUserName`, a finite number `CreateTime` and, when present, a string `MsgId`; `effects` an array
 * of objects holding either a string `error` or an optional `ok` (not both); `ended`, when present, `true`.
 * Unknown top-level fields and unknown effect fields are dropped. A `recent` list that is not an array
 * of `{ id: string, reply: null | a valid reply }` is dropped too, and the rest of the state kept.
 */
export function decodeState(raw: string): DialogState | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || parsed.f !== STATE_FORMAT_VERSION) return undefined;
  const { dialog, version, messages, effects, ended, recent } = parsed;
  if (ended !== undefined && ended !== true) return undefined;
  if (typeof dialog !== 'string' || typeof version !== 'string') return undefined;
  if (!Array.isArray(messages) || messages.length === 0 || !messages.every(isMessage)) return undefined;
  if (!Array.isArray(effects)) return undefined;
  const decodedEffects: RecordedEffect[] = [];
  for (const effect of effects) {
    const decoded = decodeEffect(effect);
    if (!decoded) return undefined;
    decodedEffects.push(decoded);
  }
  return {
    dialog,
    version,
    messages,
    effects: decodedEffects,
    ...(ended === true ? { ended: true } : {}),
    ...(Array.isArray(recent) && recent.length > 0 && recent.every(isRecentReply) ? { recent } : {}),
  };
}

function isRecentReply(value: unknown): value is RecentReply {
  return isObject(value) && typeof value.id === 'string' && (value.reply === null || isReply(value.reply));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The fields every message has; the rest is trusted to be what the parser produced. */
function isMessage(value: unknown): value is DialogMessage {
  return (
    isObject(value) &&
    typeof value.MsgType === 'string' &&
    typeof value.FromUserName === 'string' &&
    typeof value.ToUserName === 'string' &&
    typeof value.CreateTime === 'number' &&
    Number.isFinite(value.CreateTime) &&
    (value.MsgId === undefined || typeof value.MsgId === 'string')
  );
}

function decodeEffect(value: unknown): RecordedEffect | undefined {
  if (!isObject(value)) return undefined;
  if ('error' in value) {
    return typeof value.error === 'string' && !('ok' in value) ? { error: value.error } : undefined;
  }
  // Anything JSON.parse produced is a JsonValue.
  return 'ok' in value ? { ok: value.ok as JsonValue } : {};
}

/**
 * The {@link Snapshot} of a stored value: `''` (nothing stored) or what {@link encodeState} wrote;
 * `handledUpTo` in Unix **seconds** when the store knows it; `token` the value itself unless the
 * store keeps a version of its own; `written`, the state `raw` encodes when the caller just wrote it.
 */
export function snapshotOf(raw: string, handledUpTo?: number, token: string = raw, written?: DialogState): Snapshot {
  // What was just written needs no decoding: `raw` is its encoding, and decoding it gives back the same state.
  const state = raw === '' ? undefined : (written ?? decodeState(raw));
  const snapshot = { state, token, storedLength: raw.length };
  return handledUpTo === undefined ? snapshot : { ...snapshot, handledUpTo };
}

/**
 * The stored form of what a remembered message got (see `HandledMessage`): its reply as JSON, `null`
 * for none, or `{"delivery":"<id>"}` when the reply went out as a queued delivery (it is then
 * `null` for a retry: read by an older version, it still means "answer `success`").
 */
export function encodeHandled(handled: HandledReply): string {
  return handled.delivery === undefined ? JSON.stringify(handled.reply) : JSON.stringify({ delivery: handled.delivery });
}

/**
 * What a remembered message got, from {@link encodeHandled}'s form. A value that cannot be read
 * is still a message handled: it reads as "no reply" (`success`), never as a new message.
 */
export function decodeHandled(raw: string): HandledReply {
  try {
    const value: unknown = JSON.parse(raw);
    if (isReply(value)) return { reply: value };
    const delivery = typeof value === 'object' && value !== null && 'delivery' in value ? value.delivery : undefined;
    return typeof delivery === 'string' ? { reply: null, delivery } : { reply: null };
  } catch {
    return { reply: null };
  }
}
