import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineDialog } from '../../src/dialog/dialog.js';
import { createRouter, isNotification, route, RouterError, type MatchedBy } from '../../src/dialog/router.js';
import type {
  ClickEvent,
  EventMessage,
  ImageMessage,
  InboundMessage,
  ScanCodeEvent,
  SubscribeEvent,
  TextMessage,
  UnknownMessage,
} from '../../src/wechat/messages.js';
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
    const router = createRouter({ routes: [{ match: { event: 'some_new_event', eventKey: 'k' }, dialog: a }], fallback: fb });
    const future: InboundMessage = {
      ToUserName: ACCOUNT, FromUserName: 'u', CreateTime: 1, MsgType: 'event',
      Event: 'unknown', RawEvent: 'some_new_event', EventKey: 'k', Fields: {},
    };
    expect(started(router.decide(future, false))).toBe('a');
  });

  it('matches menu events (scancode_*, pic_*, location_select) by name and EventKey', () => {
    const router = createRouter({ routes: [{ match: { event: 'scancode_waitmsg', eventKey: /^SCAN_/ }, dialog: a }], fallback: fb });
    const scan = (Event: 'scancode_push' | 'scancode_waitmsg', EventKey: string): InboundMessage => ({
      ToUserName: ACCOUNT, FromUserName: 'u', CreateTime: 1, MsgType: 'event', Event, EventKey,
      ScanCodeInfo: { ScanType: 'qrcode', ScanResult: 'r' },
    });
    expect(started(router.decide(scan('scancode_waitmsg', 'SCAN_1'), false))).toBe('a');
    expect(started(router.decide(scan('scancode_waitmsg', 'OTHER'), false))).toBe('fb');
    expect(started(router.decide(scan('scancode_push', 'SCAN_1'), false))).toBe('fb');
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

  it('notification events (unsubscribe, LOCATION, VIEW, job-finish, unknown events) never start the fallback', () => {
    const router = createRouter({ routes: [], fallback: fb });
    const base = { ToUserName: ACCOUNT, FromUserName: 'u', CreateTime: 1, MsgType: 'event' as const };
    const notifications: InboundMessage[] = [
      eventFrom('u', 'unsubscribe'),
      eventFrom('u', 'VIEW', 'https://x'),
      { ...base, Event: 'LOCATION', Latitude: '1', Longitude: '2', Precision: '3' },
      { ...base, Event: 'view_miniprogram', EventKey: 'pages/index' },
      { ...base, Event: 'TEMPLATESENDJOBFINISH', MsgID: '1', Status: 'success' },
      { ...base, Event: 'MASSSENDJOBFINISH', MsgID: '1', Status: 'send success' },
      { ...base, Event: 'unknown', RawEvent: 'some_new_event', Fields: {} },
    ];
    for (const m of notifications) {
      expect(isNotification(m)).toBe(true);
      expect(router.decide(m, false), JSON.stringify(m)).toEqual({ kind: 'no-reply', endsActive: false });
    }
    // User actions do reach the fallback, including message types this version does not know.
    const file: InboundMessage = { ToUserName: ACCOUNT, FromUserName: 'u', CreateTime: 1, MsgType: 'unknown', RawMsgType: 'file', Fields: {} };
    for (const m of [eventFrom('u', 'subscribe'), eventFrom('u', 'CLICK', 'K'), imageFrom('u'), file]) {
      expect(isNotification(m)).toBe(false);
      expect(started(router.decide(m, false))).toBe('fb');
    }
  });

  it('notification events never reach an active dialog; unsubscribe ends it', () => {
    const router = createRouter({ routes: [], fallback: fb });
    expect(router.decide(eventFrom('u', 'VIEW', 'https://x'), true)).toEqual({ kind: 'no-reply', endsActive: false });
    expect(router.decide(eventFrom('u', 'unsubscribe'), true)).toEqual({ kind: 'no-reply', endsActive: true });
    expect(started(router.decide(eventFrom('u', 'CLICK', 'K'), true))).toBe('continue');
    expect(started(router.decide(imageFrom('u'), true))).toBe('continue');
  });

  it('a route that names a notification event starts its dialog (when no dialog is active)', () => {
    const router = createRouter({ routes: [{ match: { event: 'VIEW' }, dialog: a }], fallback: fb });
    expect(started(router.decide(eventFrom('u', 'VIEW', 'https://x'), false))).toBe('a');
    expect(started(router.decide(eventFrom('u', 'VIEW', 'https://x'), true))).toBe('no-reply');
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

describe('route(): dialogs typed by what their route matches', () => {
  const click = defineDialog('click', function* (first: ClickEvent) {
    return text(`clicked ${first.EventKey}`);
  });
  const scan = defineDialog('scan', function* (first: ScanCodeEvent) {
    return text(`${first.Event}: ${first.ScanCodeInfo.ScanResult}`);
  });
  const anything = defineDialog('anything', function* (first) {
    return text(first.MsgType);
  });

  it('narrows the opening message: MatchedBy gives the message type of each matcher', () => {
    expectTypeOf<MatchedBy<{ text: 'hi' }>>().toEqualTypeOf<TextMessage>();
    expectTypeOf<MatchedBy<{ text: RegExp }>>().toEqualTypeOf<TextMessage>();
    expectTypeOf<MatchedBy<{ event: 'CLICK' }>>().toEqualTypeOf<ClickEvent>();
    expectTypeOf<MatchedBy<{ event: 'CLICK'; eventKey: RegExp }>['EventKey']>().toEqualTypeOf<string>();
    expectTypeOf<MatchedBy<{ event: 'scancode_push' }>['ScanCodeInfo']>().toEqualTypeOf<ScanCodeEvent['ScanCodeInfo']>();
    expectTypeOf<MatchedBy<{ event: 'scancode_push' }>['Event']>().toEqualTypeOf<'scancode_push'>();
    expectTypeOf<MatchedBy<{ event: 'subscribe' }>>().toEqualTypeOf<SubscribeEvent>();
    expectTypeOf<MatchedBy<{ event: 'click' }>>().toEqualTypeOf<EventMessage>(); // other casing: the wide type
    expectTypeOf<MatchedBy<{ msgType: 'image' }>>().toEqualTypeOf<ImageMessage>();
    expectTypeOf<MatchedBy<{ msgType: 'event' }>>().toEqualTypeOf<EventMessage>();
    expectTypeOf<MatchedBy<{ msgType: 'file' }>>().toEqualTypeOf<UnknownMessage>();
  });

  it('accepts a typed dialog on its own route and an untyped dialog anywhere; refuses a mismatch at compile time', () => {
    const routes = [
      route({ event: 'CLICK', eventKey: 'V1001_TODAY' }, click),
      route({ event: 'scancode_waitmsg' }, scan),
      route({ event: 'scancode_push' }, scan, { interrupt: true }),
      route({ text: /./ }, anything),
      // @ts-expect-error a dialog written for CLICK events cannot be started by text messages
      route({ text: 'x' }, click),
      // @ts-expect-error nor by every event
      route({ msgType: 'event' }, click),
      // @ts-expect-error nor by a scancode event
      route({ event: 'scancode_push' }, click),
    ];
    expect(routes[2]).toEqual({ match: { event: 'scancode_push' }, dialog: scan, interrupt: true });
    expect('interrupt' in routes[0]!).toBe(false);
  });

  it('starts the typed dialog with the message its route matched', () => {
    const router = createRouter({ routes: [route({ event: 'CLICK' }, click), route({ event: 'scancode_push' }, scan)], fallback: anything });
    const decision = router.decide(eventFrom('u', 'CLICK', 'K1'), false);
    expect(decision.kind === 'start' && decision.dialog.name).toBe('click');
  });
});
