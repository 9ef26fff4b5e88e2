import { describe, expect, it } from 'vitest';
import {
  appendedTo,
  appendMessage,
  decodeState,
  decodeStateParts,
  decodeStored,
  encodeListPart,
  encodeState,
  encodeStateHeader,
  STATE_FORMAT_VERSION,
} from '../../src/dialog/store/state-codec.js';
import type { DialogState } from '../../src/dialog/store/store.js';

const message = { MsgType: 'text', ToUserName: 'gh_abc', FromUserName: 'oUser', CreateTime: 1_700_000_000, MsgId: '18446744073709551615', Content: '你好 😀 ]]>\n' } as const;

const valid: DialogState = {
  dialog: 'accumulator',
  version: 'v1',
  messages: [message, { MsgType: 'event', Event: 'subscribe', ToUserName: 'gh_abc', FromUserName: 'oUser', CreateTime: 1_700_000_001 }],
  effects: [{ ok: 1 }, { ok: { a: [1, 'x', null, false] } }, {}, { error: 'boom' }, { ok: null }],
};

/** A raw envelope with `patch` applied: each test breaks one field. */
function raw(patch: Record<string, unknown>): string {
  return JSON.stringify({ f: STATE_FORMAT_VERSION, dialog: 'd', version: 'v', messages: [message], effects: [], ...patch });
}

describe('encodeState / decodeState', () => {
  it('round-trips a state exactly', () => {
    expect(decodeState(encodeState(valid))).toEqual(valid);
  });

  it('round-trips the recent replies (a text, a news, none); an empty list is not written', () => {
    const recent = [
      { id: 'oUser|m|1', reply: { MsgType: 'text', Content: '你好' } },
      { id: 'oUser|m|2', reply: { MsgType: 'news', Articles: [{ Title: 't', Description: 'd', PicUrl: 'p', Url: 'u' }] } },
      { id: 'oUser|e|1700000001|subscribe|', reply: null },
    ] as const;
    expect(decodeState(encodeState({ ...valid, recent }))).toEqual({ ...valid, recent });
    expect(JSON.parse(encodeState({ ...valid, recent: [] }))).not.toHaveProperty('recent');
  });

  it.each([
    ['not an array', { id: 'x', reply: null }],
    ['an entry without id', [{ reply: null }]],
    ['a reply of the wrong shape', [{ id: 'x', reply: { MsgType: 'text' } }]],
    ['an undefined reply', [{ id: 'x' }]],
  ])('drops a malformed recent list (%s) and keeps the dialog', (_name, recent) => {
    const decoded = decodeState(raw({ recent }));
    expect(decoded).toEqual({ dialog: 'd', version: 'v', messages: [message], effects: [] });
  });

  it('writes a versioned envelope', () => {
    expect(JSON.parse(encodeState(valid))).toMatchObject({ f: 1, dialog: 'accumulator', version: 'v1' });
    expect(STATE_FORMAT_VERSION).toBe(1);
  });

  it('keeps a 64-bit MsgId a string, digit for digit', () => {
    const encoded = encodeState(valid);
    expect(encoded).toContain('"MsgId":"18446744073709551615"');
    expect(decodeState(encoded)?.messages[0]).toHaveProperty('MsgId', '18446744073709551615');
  });

  it('stores { ok: undefined } as {} (an effect that returned undefined)', () => {
    const decoded = decodeState(encodeState({ ...valid, effects: [{ ok: undefined }] }));
    expect(decoded?.effects).toEqual([{}]);
    expect(decoded?.effects[0]).not.toHaveProperty('ok');
  });

  it('accepts the minimal envelope and drops unknown top-level and effect fields', () => {
    expect(decodeState(raw({}))).toEqual({ dialog: 'd', version: 'v', messages: [message], effects: [] });
    expect(decodeState(raw({ extra: 1, effects: [{ ok: 2, note: 'x' }] }))).toEqual({
      dialog: 'd',
      version: 'v',
      messages: [message],
      effects: [{ ok: 2 }],
    });
  });

  const rejected: Array<[string, string]> = [
    ['empty string', ''],
    ['not JSON', 'hello'],
    ['truncated JSON', encodeState(valid).slice(0, -1)],
    ['JSON null', 'null'],
    ['JSON number', '42'],
    ['JSON string', '"state"'],
    ['JSON array', '[1,"d","v",[],[]]'],
    ['no format version', JSON.stringify({ dialog: 'd', version: 'v', messages: [message], effects: [] })],
    ['format version 2', raw({ f: 2 })],
    ['format version "1"', raw({ f: '1' })],
    ['dialog missing', raw({ dialog: undefined })],
    ['dialog not a string', raw({ dialog: 3 })],
    ['version not a string', raw({ version: null })],
    ['messages missing', raw({ messages: undefined })],
    ['messages not an array', raw({ messages: { 0: message } })],
    ['messages empty', raw({ messages: [] })],
    ['message null', raw({ messages: [null] })],
    ['message a string', raw({ messages: ['hi'] })],
    ['message an array', raw({ messages: [[message]] })],
    ['message without MsgType', raw({ messages: [{ ...message, MsgType: undefined }] })],
    ['MsgType not a string', raw({ messages: [{ ...message, MsgType: 1 }] })],
    ['FromUserName not a string', raw({ messages: [{ ...message, FromUserName: null }] })],
    ['ToUserName missing', raw({ messages: [{ ...message, ToUserName: undefined }] })],
    ['CreateTime a string', raw({ messages: [{ ...message, CreateTime: '1700000000' }] })],
    ['CreateTime missing', raw({ messages: [{ ...message, CreateTime: undefined }] })],
    ['MsgId a number', raw({ messages: [{ ...message, MsgId: 123 }] })],
    ['second message bad', raw({ messages: [message, { MsgType: 'text' }] })],
    ['effects missing', raw({ effects: undefined })],
    ['effects not an array', raw({ effects: {} })],
    ['effect null', raw({ effects: [null] })],
    ['effect a number', raw({ effects: [1] })],
    ['effect an array', raw({ effects: [[]] })],
    ['effect error not a string', raw({ effects: [{ error: 1 }] })],
    ['effect error null', raw({ effects: [{ error: null }] })],
    ['effect with both ok and error', raw({ effects: [{ ok: 1, error: 'x' }] })],
    ['second effect bad', raw({ effects: [{ ok: 1 }, { error: {} }] })],
  ];

  it.each(rejected)('decodes %s as undefined', (_, input) => {
    expect(() => decodeState(input)).not.toThrow();
    expect(decodeState(input)).toBeUndefined();
  });
});

describe('encodeState on a history built by appendMessage', () => {
  const at = (i: number) => ({
    ToUserName: 'gh_0123456789ab',
    FromUserName: 'oUser000000000000000000000001',
    CreateTime: 1_700_000_000 + i,
    MsgType: 'text' as const,
    Content: `第${i}条 "quoted" ]]> \n`,
    MsgId: String(7_300_000_000_000_000_000n + BigInt(i)),
  });

  it('writes exactly what JSON.stringify of the whole state writes, turn after turn', () => {
    let messages = appendMessage([], at(0));
    for (let i = 1; i < 30; i += 1) {
      const state = { dialog: 'd', version: 'v', messages, effects: [{ ok: i }, {}, { error: 'x' }], ...(i % 3 === 0 ? { ended: true as const } : {}), recent: [{ id: `m${i}`, reply: null }] };
      const plain = JSON.stringify({ f: STATE_FORMAT_VERSION, dialog: 'd', version: 'v', messages, effects: state.effects, ...(state.ended ? { ended: true } : {}), recent: state.recent });
      expect(encodeState(state)).toBe(plain);
      expect(decodeState(encodeState(state))).toEqual(state);
      messages = appendMessage(messages, at(i));
    }
  });

  it('a list not made by appendMessage (decoded, or built by hand) is encoded in full', () => {
    const messages = [at(0), at(1)];
    expect(encodeState({ dialog: 'd', version: 'v', messages, effects: [] })).toBe(JSON.stringify({ f: STATE_FORMAT_VERSION, dialog: 'd', version: 'v', messages, effects: [] }));
  });
});

describe('format 2: a header and two append-only parts', () => {
  const recent = [{ id: 'oUser|m|1', reply: { MsgType: 'text', Content: '你好' } } as const];
  const parts = (state: DialogState): [string, string, string] => [encodeStateHeader(state), encodeListPart(state.messages), encodeListPart(state.effects)];

  it('round-trips a state exactly, ended and recent included', () => {
    for (const state of [valid, { ...valid, ended: true as const, recent }, { ...valid, effects: [] }]) {
      expect(decodeStateParts(...parts(state))).toEqual(state);
      expect(decodeStored(...parts(state))).toEqual(state);
    }
  });

  it('the header holds counts, not the history: its size does not depend on the number of messages', () => {
    expect(JSON.parse(encodeStateHeader(valid))).toEqual({ f: 2, dialog: 'accumulator', version: 'v1', messages: 2, effects: 5 });
    const long = { ...valid, messages: Array.from({ length: 900 }, () => message) };
    expect(encodeStateHeader(long).length - encodeStateHeader(valid).length).toBe(2);
  });

  it('appending to the parts is the same as writing them whole', () => {
    const [header, messagesPart, effectsPart] = parts(valid);
    const more = { ...message, Content: 'more' };
    const next: DialogState = { ...valid, messages: [...valid.messages, more, more], effects: [...valid.effects, { ok: 'x' }] };
    const appendedMessages = messagesPart + encodeListPart([more, more], valid.messages.length);
    const appendedEffects = effectsPart + encodeListPart([{ ok: 'x' }], valid.effects.length);
    expect(appendedMessages).toBe(encodeListPart(next.messages));
    expect(appendedEffects).toBe(encodeListPart(next.effects));
    expect(decodeStateParts(encodeStateHeader(next), appendedMessages, appendedEffects)).toEqual(next);
    // The first effect of a state that had none: no leading comma.
    expect(encodeListPart([{ ok: 1 }], 0)).toBe('{"ok":1}');
    expect(header).toContain('"messages":2');
  });

  it.each([
    ['a part with fewer items than the header counts', (p: string[]) => [p[0], p[1]!.slice(0, p[1]!.lastIndexOf(',{')), p[2]]],
    ['a missing messages part', (p: string[]) => [p[0], '', p[2]]],
    ['a missing effects part', (p: string[]) => [p[0], p[1], '']],
    ['a part that is not JSON', (p: string[]) => [p[0], `${p[1]},{`, p[2]]],
    ['a part that closes the array', (p: string[]) => [p[0], `${p[1]}],[1`, p[2]]],
    ['a format-1 envelope as the header', (p: string[]) => [encodeState(valid), p[1], p[2]]],
    ['a header with the history inline', (p: string[]) => [JSON.stringify({ ...valid, f: 2 }), p[1], p[2]]],
    ['a header whose counts are not integers', (p: string[]) => [p[0]!.replace('"messages":2', '"messages":"2"'), p[1], p[2]]],
  ])('decodes %s as undefined', (_name, breakIt) => {
    const [header, messagesPart, effectsPart] = breakIt(parts(valid)) as [string, string, string];
    expect(decodeStateParts(header, messagesPart, effectsPart)).toBeUndefined();
  });

  it('decodeStored reads either format: a format-1 value ignores the parts', () => {
    expect(decodeStored(encodeState(valid), 'anything', 'at all')).toEqual(valid);
    expect(decodeStored('', '', '')).toBeUndefined();
  });
});

describe('appendedTo', () => {
  const a = { ok: 1 };
  const b = { ok: 2 };
  it('gives what a list adds to another it extends (by reference), [] for the same items, undefined otherwise', () => {
    const previous = [a];
    expect(appendedTo(previous, previous)).toEqual([]);
    expect(appendedTo(previous, [a])).toEqual([]);
    expect(appendedTo(previous, [a, b, b])).toEqual([b, b]);
    expect(appendedTo(previous, [{ ok: 1 }, b])).toBeUndefined(); // equal, but not the same item
    expect(appendedTo([a, b], [a])).toBeUndefined();
    expect(appendedTo(previous, [b])).toBeUndefined();
  });

  it('recognises a list made by appendMessage', () => {
    const first = appendMessage([], message);
    const second = appendMessage(first, message);
    expect(appendedTo(first, second)).toEqual([message]);
    expect(appendedTo([], first)).toEqual([message]);
    expect(appendedTo(second, first)).toBeUndefined();
  });
});
