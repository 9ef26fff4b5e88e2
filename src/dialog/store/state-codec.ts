/**
 * The stored forms of a {@link DialogState}.
 *
 * **Format 1, one value** ({@link encodeState}, {@link decodeState}): one JSON string, a versioned
 * envelope. The in-memory store keeps states in it; the Redis store wrote it before format 2 and
 * still reads it (and rewrites it as format 2 at the next commit).
 *
 * ```json
 * {"f":1,"dialog":"signup","version":"a1b2","messages":[{...}],"effects":[{"ok":3},{"error":"..."}],"ended":true,
 *  "recent":[{"id":"oUser…|m|7300000000000000001","reply":{"MsgType":"text","Content":"…"}}]}
 * ```
 *
 * **Format 2, a header and two append-only parts** ({@link encodeStateHeader},
 * {@link encodeListPart}, {@link decodeStateParts}): what the Redis store writes, so that a
 * continuing turn sends only what it adds. The header is small and rewritten on every commit; the
 * messages and the effects are each the JSON of their items joined by `,` (a JSON array without its
 * brackets), to which a turn appends `,<item>`:
 *
 * ```json
 * {"f":2,"dialog":"signup","version":"a1b2","messages":12,"effects":2,"ended":true,"recent":[...]}
 * {"MsgType":"text",...},{"MsgType":"text",...},...
 * {"ok":3},{"error":"..."}
 * ```
 *
 * The header's `messages` and `effects` are the counts the parts must hold: a part that does not
 * (lost, or cut short) makes the whole state unreadable rather than a shorter history.
 *
 * `f` is the format version (not the dialog's version). A value written in another format, or
 * anything that is not a well-formed state, decodes to `undefined`, so stores treat it as absent
 * instead of replaying garbage into a dialog. Every `InboundMessage` value is already a string
 * (`MsgId` included) except `CreateTime`, so JSON keeps it exactly.
 *
 * @module
 */
import type { DialogMessage } from '../dialog.js';
import { isReply, type Reply } from '../../wechat/replies.js';
import type { DialogState, HandledReply, JsonValue, RecentReply, RecordedEffect, Snapshot } from './store.js';

/** The envelope format version written by {@link encodeState}; {@link decodeState} accepts only this one. */
export const STATE_FORMAT_VERSION = 1;

/** The format version of a header written by {@link encodeStateHeader} (format 2: header and parts). */
export const PARTS_FORMAT_VERSION = 2;

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
const appendedLinks = new WeakMap<readonly DialogMessage[], { readonly previous: readonly DialogMessage[]; readonly message: DialogMessage }>();

/**
 * `[...messages, message]`, remembered as such: {@link encodeState} then reuses the JSON of
 * `messages` (encoded when the previous state was written) instead of serializing every message
 * again, and {@link appendedTo} finds the message added without comparing the lists (the Redis
 * store then writes only that message).
 */
export function appendMessage(messages: readonly DialogMessage[], message: DialogMessage): readonly DialogMessage[] {
  const next = [...messages, message];
  appendedLinks.set(next, { previous: messages, message });
  return next;
}

function encodeMessages(messages: readonly DialogMessage[]): string {
  const known = messagesJson.get(messages);
  if (known !== undefined) return known;
  const link = appendedLinks.get(messages);
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
  const parsed = parseObject(raw);
  if (parsed === undefined || parsed.f !== STATE_FORMAT_VERSION) return undefined;
  return stateOf(parsed, parsed.messages, parsed.effects);
}

/**
 * The header of a state in format 2 (see the module's doc):
 * `{"f":2,"dialog","version","messages":<count>,"effects":<count>[,"ended":true][,"recent"]}`.
 * Its size depends on the dialog's name and version and on `recent` (at most a few replies), not
 * on how many messages or effects the state holds.
 */
export function encodeStateHeader(state: DialogState): string {
  return (
    `{"f":${PARTS_FORMAT_VERSION},"dialog":${JSON.stringify(state.dialog)},"version":${JSON.stringify(state.version)},` +
    `"messages":${state.messages.length},"effects":${state.effects.length}` +
    `${state.ended === true ? ',"ended":true' : ''}` +
    `${state.recent === undefined || state.recent.length === 0 ? '' : `,"recent":${JSON.stringify(state.recent)}`}}`
  );
}

/**
 * A part of format 2: the JSON of each of `items` joined by `,`, `''` for none. With `after` (how
 * many items the part already holds), the text to append to that part: the same, with a leading
 * `,` when `after > 0`.
 */
export function encodeListPart(items: readonly (DialogMessage | RecordedEffect)[], after = 0): string {
  if (items.length === 0) return '';
  let text = after > 0 ? ',' : '';
  for (const [i, item] of items.entries()) text += (i === 0 ? '' : ',') + JSON.stringify(item);
  return text;
}

/**
 * Parses a state in format 2: the header ({@link encodeStateHeader}) and the two parts
 * ({@link encodeListPart}), as stored. Returns `undefined`, never throws, when the header is not a
 * format-2 header, or a part does not parse or does not hold exactly as many items as the header
 * counts, or the state is not well-formed (the rules of {@link decodeState}).
 */
export function decodeStateParts(header: string, messagesPart: string, effectsPart: string): DialogState | undefined {
  const parsed = parseObject(header);
  if (parsed === undefined || parsed.f !== PARTS_FORMAT_VERSION) return undefined;
  const { messages: messageCount, effects: effectCount } = parsed;
  if (!Number.isSafeInteger(messageCount) || !Number.isSafeInteger(effectCount)) return undefined;
  const messages = parseArray(messagesPart);
  const effects = parseArray(effectsPart);
  if (messages?.length !== messageCount || effects?.length !== effectCount) return undefined;
  return stateOf(parsed, messages, effects);
}

/**
 * What a store holds for one user, in either format: `header` is a format-1 value or a format-2
 * header, the parts are read only for the latter. `undefined` for `''`, or anything else
 * {@link decodeState} or {@link decodeStateParts} rejects.
 */
export function decodeStored(header: string, messagesPart: string, effectsPart: string): DialogState | undefined {
  if (header === '') return undefined;
  return isPartsHeader(header) ? decodeStateParts(header, messagesPart, effectsPart) : decodeState(header);
}

/** Whether `raw` is (or starts as) a format-2 header, as {@link encodeStateHeader} writes it. */
export function isPartsHeader(raw: string): boolean {
  return raw.startsWith(`{"f":${PARTS_FORMAT_VERSION},`);
}

/**
 * The items `next` adds to `previous` when it extends it (the same items, by reference, then more):
 * `[]` when it is `previous` itself or a copy, `undefined` when it does not extend it. A list made
 * by {@link appendMessage} is recognised without comparing the items.
 */
export function appendedTo<T>(previous: readonly T[], next: readonly T[]): readonly T[] | undefined {
  if (next === previous) return [];
  const link = appendedLinks.get(next as readonly DialogMessage[]);
  if (link !== undefined && link.previous === (previous as readonly DialogMessage[])) return [link.message as T];
  if (next.length < previous.length) return undefined;
  for (let i = 0; i < previous.length; i += 1) if (next[i] !== previous[i]) return undefined;
  return next.slice(previous.length);
}

function parseObject(raw: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(raw);
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** `part` read as the items of a JSON array (`''`: none); `undefined` when it is not. */
function parseArray(part: string): unknown[] | undefined {
  if (part === '') return [];
  try {
    const parsed: unknown = JSON.parse(`[${part}]`);
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The state of a parsed envelope or header, with its messages and effects; `undefined` when malformed. */
function stateOf(parsed: Record<string, unknown>, messages: unknown, effects: unknown): DialogState | undefined {
  const { dialog, version, ended, recent } = parsed;
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
