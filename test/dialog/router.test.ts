import { describe, expect, it } from 'vitest';
import { defineDialog } from '../../src/dialog/dialog.js';
import { createRouter, RouterError } from '../../src/dialog/router.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { text } from '../../src/wechat/replies.js';
import { ACCOUNT, eventFrom, imageFrom, textFrom } from '../support/messages.js';

const d = (name: string) => defineDialog(name, function* () { return text(name); });
const [a, b, c, fb] = [d('a'), d('b'), d('c'), d('fb')];

function started(decision: ReturnType<ReturnType<typeof createRouter>['decide']>): string {
  if (decision.kind === 'start') return `${decision.dialog.name}${decision.endsActive ? '!' : ''}`;
  return decision.kind === 'no-reply' ? `no-reply${decision.endsActive ? '!' : ''}` : decision.kind;
}

describe('createRouter', () => {
  it('matches exact keywords on the raw Content: case-sensitive, not trimmed', () => {
    const router = createRouter({ routes: [{ match: { text: 'github' }, dialog: a }], fallback: fb });
    expect(started(router.decide(textFrom('u', 'github'), false))).toBe('a');
    expect(started(router.decide(textFrom('u', 'GitHub'), false))).toBe('fb');
    expect(started(router.decide(textFrom('u', 'github '), false))).toBe('fb');
  });

  it('matches regular expressions on Content', () => {
    const router = createRouter({ routes: [{ match: { text: /^(帮助|help)$/i }, dialog: a }], fallback: fb });
    expect(started(router.decide(textFrom('u', 'HELP'), false))).toBe('a');
    expect(started(router.decide(textFrom('u', '帮助'), false))).toBe('a');
    expect(started(router.decide(textFrom('u', 'help me'), false))).toBe('fb');
  });

  it('first match wins', () => {
    const router = createRouter({
      routes: [
        { match: { text: /^a/ }, dialog: a },
        { match: { text: 'ab' }, dialog: b },
      ],
      fallback: fb,
    });
    expect(started(router.decide(textFrom('u', 'ab'), false))).toBe('a');
  });

  it('matches events by name case-insensitively, and by EventKey exactly or by pattern', () => {
    const router = createRouter({
      routes: [
        { match: { event: 'CLICK', eventKey: 'V1001_TODAY' }, dialog: a },
        { match: { event: 'subscribe', eventKey: /^qrscene_/ }, dialog: b },
        { match: { event: 'subscribe' }, dialog: c },
      ],
      fallback: fb,
    });
    expect(started(router.decide(eventFrom('u', 'CLICK', 'V1001_TODAY'), false))).toBe('a');
    expect(started(router.decide({ ...eventFrom('u', 'CLICK', 'V1001_TODAY'), Event: 'click' } as unknown as InboundMessage, false))).toBe('a');
    expect(started(router.decide(eventFrom('u', 'CLICK', 'OTHER'), false))).toBe('fb');
    expect(started(router.decide(eventFrom('u', 'subscribe', 'qrscene_123'), false))).toBe('b');
    expect(started(router.decide(eventFrom('u', 'subscribe'), false))).toBe('c');
  });

  it('matches events this version does not type by their raw name', () => {
    const router = createRouter({ routes: [{ match: { event: 'scancode_push', eventKey: 'k' }, dialog: a }], fallback: fb });
    const scancode: InboundMessage = {
      ToUserName: ACCOUNT, FromUserName: 'u', CreateTime: 1, MsgType: 'event',
      Event: 'unknown', RawEvent: 'scancode_push', EventKey: 'k', Fields: {},
    };
    expect(started(router.decide(scancode, false))).toBe('a');
  });

  it('matches MsgTypes, including types this version does not know', () => {
    const router = createRouter({
      routes: [
        { match: { msgType: 'image' }, dialog: a },
        { match: { msgType: 'file' }, dialog: b },
      ],
      fallback: fb,
    });
    expect(started(router.decide(imageFrom('u'), false))).toBe('a');
    const file: InboundMessage = { ToUserName: ACCOUNT, FromUserName: 'u', CreateTime: 1, MsgType: 'unknown', RawMsgType: 'file', Fields: {} };
    expect(started(router.decide(file, false))).toBe('b');
    expect(started(router.decide(textFrom('u', 'image'), false))).toBe('fb');
  });

  it('a null fallback or a null route means no reply', () => {
    const router = createRouter({ routes: [{ match: { event: 'VIEW' }, dialog: null }], fallback: null });
    expect(router.decide(eventFrom('u', 'VIEW', 'https://x'), false)).toEqual({ kind: 'no-reply', endsActive: false });
    expect(router.decide(textFrom('u', 'x'), false)).toEqual({ kind: 'no-reply', endsActive: false });
  });

  it('while a dialog is active: continue, unless an interrupt or no-reply route matches', () => {
    const router = createRouter({
      routes: [
        { match: { text: 'a' }, dialog: a },
        { match: { text: 'b' }, dialog: b, interrupt: true },
        { match: { event: 'VIEW' }, dialog: null },
        { match: { event: 'unsubscribe' }, dialog: null, interrupt: true },
      ],
      fallback: fb,
    });
    expect(started(router.decide(textFrom('u', 'a'), true))).toBe('continue');
    expect(started(router.decide(textFrom('u', 'zzz'), true))).toBe('continue');
    expect(started(router.decide(textFrom('u', 'b'), true))).toBe('b!');
    expect(started(router.decide(eventFrom('u', 'VIEW', 'x'), true))).toBe('no-reply');
    expect(started(router.decide(eventFrom('u', 'unsubscribe'), true))).toBe('no-reply!');
  });

  it('knows every dialog of the table and the fallback by name', () => {
    const router = createRouter({ routes: [{ match: { text: 'a' }, dialog: a }], fallback: fb });
    expect(router.dialog('a')).toBe(a);
    expect(router.dialog('fb')).toBe(fb);
    expect(router.dialog('b')).toBeUndefined();
  });

  it('rejects two different dialogs with one name', () => {
    const other = d('a');
    expect(() => createRouter({ routes: [{ match: { text: 'x' }, dialog: a }, { match: { text: 'y' }, dialog: other }], fallback: null }))
      .toThrow(RouterError);
    expect(() => createRouter({ routes: [{ match: { text: 'x' }, dialog: a }, { match: { text: 'y' }, dialog: a }], fallback: a }))
      .not.toThrow();
  });

  it('rejects a RegExp with the g or y flag, whose test() would depend on the previous call', () => {
    expect(() => createRouter({ routes: [{ match: { text: /x/g }, dialog: a }], fallback: null })).toThrow(/remove the flag/);
    expect(() => createRouter({ routes: [{ match: { event: 'CLICK', eventKey: /x/y }, dialog: a }], fallback: null })).toThrow(RouterError);
  });
});
