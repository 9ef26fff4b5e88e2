import { afterEach, describe, expect, it, vi } from 'vitest';
import { defineDialog, handBack, record, RecordedEffectError, type Dialog } from '../../src/dialog/dialog.js';
import { DEFAULT_APOLOGY, DialogEngine, type EngineLogger } from '../../src/dialog/engine.js';
import { createRouter, type Route } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { StoreUnavailableError, type DialogState, type DialogStore, type StateKey } from '../../src/dialog/store/store.js';
import { text, type Reply } from '../../src/wechat/replies.js';
import { ACCOUNT, eventFrom, imageFrom, textFrom } from '../support/messages.js';

const echo = defineDialog('echo', function* (first) {
  let message = yield text(`start:${first.MsgType === 'text' ? first.Content : first.MsgType}`);
  for (;;) {
    if (message.MsgType === 'text' && message.Content === 'bye') return text('bye!');
    message = yield text(`echo:${message.MsgType === 'text' ? message.Content : message.MsgType}`);
  }
});
const fallback = defineDialog('fallback', function* () {
  return text('fallback');
});

function capturingLogger(): EngineLogger & { lines: Array<{ level: string; fields: object; message: string }> } {
  const lines: Array<{ level: string; fields: object; message: string }> = [];
  const push = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message });
  return { lines, info: push('info'), warn: push('warn'), error: push('error') };
}

const stores: MemoryStore[] = [];
function setup(routes: Route[], options: { store?: DialogStore; fallbackDialog?: Dialog | null } = {}) {
  const memory = new MemoryStore({ sweepIntervalMs: 0 });
  stores.push(memory);
  const store = options.store ?? memory;
  const logger = capturingLogger();
  const router = createRouter({ routes, fallback: options.fallbackDialog === undefined ? fallback : options.fallbackDialog });
  const engine = new DialogEngine({ router, store, ttlSeconds: 60, logger });
  const say = async (openid: string, content: string) => (await engine.handle(textFrom(openid, content))).reply;
  const stateOf = (openid: string) => store.load({ account: ACCOUNT, openid });
  return { engine, store, logger, say, stateOf };
}
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

const contentOf = (reply: Reply | undefined) => (reply?.MsgType === 'text' ? reply.Content : reply);

/**
 * No dialog is active: no state, or an ended one (kept until its TTL, with the recent replies,
 * so WeChat retries are still answered).
 */
function expectNoActiveDialog(state: DialogState | undefined): void {
  expect(state === undefined || state.ended === true, JSON.stringify(state)).toBe(true);
}

describe('DialogEngine: turns and state', () => {
  it('starts a dialog, keeps its messages in the state, and marks the state ended when it returns', async () => {
    const { say, stateOf } = setup([{ match: { text: 'echo' }, dialog: echo }]);
    expect(contentOf(await say('u1', 'echo'))).toBe('start:echo');
    expect((await stateOf('u1'))?.messages.map((m) => (m.MsgType === 'text' ? m.Content : ''))).toEqual(['echo']);
    expect(contentOf(await say('u1', 'a'))).toBe('echo:a');
    expect(contentOf(await say('u1', 'b'))).toBe('echo:b');
    const state = await stateOf('u1');
    expect(state?.dialog).toBe('echo');
    expect(state?.version).toBe(echo.version);
    expect(state?.messages).toHaveLength(3);
    expect(contentOf(await say('u1', 'bye'))).toBe('bye!');
    // Kept (until its TTL) only to answer WeChat retries; a new message is routed afresh.
    expect((await stateOf('u1'))?.ended).toBe(true);
    expect(contentOf(await say('u1', 'a'))).toBe('fallback');
    expectNoActiveDialog(await stateOf('u1'));
  });

  it('routes what matches nothing to the fallback and keeps no state for a one-shot dialog', async () => {
    const { say, stateOf } = setup([{ match: { text: 'echo' }, dialog: echo }]);
    expect(contentOf(await say('u1', 'hello'))).toBe('fallback');
    expect(await stateOf('u1')).toBeUndefined();
  });

  it('answers nothing when there is no fallback', async () => {
    const { engine } = setup([], { fallbackDialog: null });
    const result = await engine.handle(textFrom('u1', 'x'));
    expect(result).toEqual({ reply: undefined, outcome: 'no-reply' });
  });

  it('keeps users and accounts apart', async () => {
    const { say, engine } = setup([{ match: { text: 'echo' }, dialog: echo }]);
    await say('u1', 'echo');
    expect(contentOf(await say('u2', 'a'))).toBe('fallback');
    const otherAccount = { ...textFrom('u1', 'a'), ToUserName: 'gh_other' };
    expect(contentOf((await engine.handle(otherAccount)).reply)).toBe('fallback');
    expect(contentOf(await say('u1', 'a'))).toBe('echo:a');
  });

  it('replays the dialog from the start on every message (the code runs again, the replies are the same)', async () => {
    let runs = 0;
    const counting = defineDialog('counting', function* () {
      runs += 1;
      let n = 0;
      for (;;) {
        yield text(`n=${n}`);
        n += 1;
      }
    });
    const { say } = setup([{ match: { text: 'go' }, dialog: counting }]);
    expect(contentOf(await say('u1', 'go'))).toBe('n=0');
    expect(contentOf(await say('u1', 'x'))).toBe('n=1');
    expect(contentOf(await say('u1', 'y'))).toBe('n=2');
    expect(runs).toBe(3);
  });

  it('gives the dialog a context: openid, account and the opening CreateTime, the same on every replay', async () => {
    const seen: unknown[] = [];
    const ctxDialog = defineDialog('ctx', function* (_first, context) {
      seen.push({ ...context });
      yield text('1');
      yield text('2');
    });
    const { engine } = setup([{ match: { text: 'ctx' }, dialog: ctxDialog }]);
    await engine.handle(textFrom('u1', 'ctx', 1_700_000_123));
    await engine.handle(textFrom('u1', 'next', 1_700_000_999));
    expect(seen).toEqual([
      { openid: 'u1', account: ACCOUNT, time: 1_700_000_123 },
      { openid: 'u1', account: ACCOUNT, time: 1_700_000_123 },
    ]);
  });

  it('accepts async generator dialogs and string replies', async () => {
    const asyncDialog = defineDialog('async', async function* () {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const answer = yield '你叫什么名字？';
      return `你好，${answer.MsgType === 'text' ? answer.Content : '?'}`;
    });
    const { say, stateOf } = setup([{ match: { text: 'hi' }, dialog: asyncDialog }]);
    expect(await say('u1', 'hi')).toEqual(text('你叫什么名字？'));
    expect(await say('u1', '小明')).toEqual(text('你好，小明'));
    expect((await stateOf('u1'))?.ended).toBe(true);
  });

  it('a yield with no value answers nothing and waits for the next message', async () => {
    const quiet = defineDialog('quiet', function* () {
      yield;
      return text('done');
    });
    const { engine, say } = setup([{ match: { text: 'q' }, dialog: quiet }]);
    expect(await engine.handle(textFrom('u1', 'q'))).toMatchObject({ reply: undefined, outcome: 'started' });
    expect(contentOf(await say('u1', 'x'))).toBe('done');
  });
});

describe('DialogEngine: record()', () => {
  it('runs the work once and replays the recorded value on later turns', async () => {
    let calls = 0;
    const clock = defineDialog('clock', function* () {
      const t = yield* record(() => {
        calls += 1;
        return 1000 + calls;
      });
      yield text(`t=${t}`);
      yield text(`still t=${t}`);
      return text(`end t=${t}`);
    });
    const { say, stateOf } = setup([{ match: { text: 'clock' }, dialog: clock }]);
    expect(contentOf(await say('u1', 'clock'))).toBe('t=1001');
    expect((await stateOf('u1'))?.effects).toEqual([{ ok: 1001 }]);
    expect(contentOf(await say('u1', 'a'))).toBe('still t=1001');
    expect(contentOf(await say('u1', 'b'))).toBe('end t=1001');
    expect(calls).toBe(1);
  });

  it('gives a process that never ran the work the recorded value (state shared through the store)', async () => {
    const { store } = setup([]);
    let calls = 0;
    const dialog = defineDialog('shared', function* () {
      const id = yield* record(() => `run-${(calls += 1)}`);
      yield text(id);
      return text(`again ${id}`);
    });
    const router = createRouter({ routes: [{ match: { text: 's' }, dialog }], fallback: null });
    const processA = new DialogEngine({ router, store });
    const processB = new DialogEngine({ router, store });
    expect((await processA.handle(textFrom('u1', 's'))).reply).toEqual(text('run-1'));
    expect((await processB.handle(textFrom('u1', 'x'))).reply).toEqual(text('again run-1'));
    expect(calls).toBe(1);
  });

  it('awaits async work, also in a sync dialog, and returns the JSON round trip of the value', async () => {
    const dialog = defineDialog('async-work', function* () {
      const value = yield* record(async () => ({ when: 5, tags: ['a'], skip: undefined as unknown as null }));
      yield text(JSON.stringify(value));
      return text(JSON.stringify(value));
    });
    const { say } = setup([{ match: { text: 'w' }, dialog }]);
    const first = contentOf(await say('u1', 'w'));
    expect(first).toBe('{"when":5,"tags":["a"]}');
    expect(contentOf(await say('u1', 'x'))).toBe(first);
  });

  it('records a failure: the dialog sees the same error on the first run and on replay', async () => {
    let calls = 0;
    const dialog = defineDialog('failing-work', function* () {
      let note: string;
      try {
        yield* record((): number => {
          calls += 1;
          throw new Error('service down');
        });
        note = 'no error';
      } catch (err) {
        note = `${(err as Error).name}: ${(err as Error).message}`;
      }
      yield text(note);
      return text(`again ${note}`);
    });
    const { say } = setup([{ match: { text: 'f' }, dialog }]);
    expect(contentOf(await say('u1', 'f'))).toBe('RecordedEffectError: service down');
    expect(contentOf(await say('u1', 'x'))).toBe('again RecordedEffectError: service down');
    expect(calls).toBe(1);
    expect(new RecordedEffectError('x').code).toBe('EFFECT_FAILED');
  });
});

describe('DialogEngine: handing a message back to the router', () => {
  const picky = defineDialog('picky', function* () {
    const answer = yield text('1 or 2?');
    if (answer.MsgType === 'text' && (answer.Content === '1' || answer.Content === '2')) return text(`chose ${answer.Content}`);
    return handBack();
  });

  it('ends the dialog and starts whatever the message routes to', async () => {
    const { say, stateOf } = setup([
      { match: { text: 'menu' }, dialog: picky },
      { match: { text: 'echo' }, dialog: echo },
    ]);
    await say('u1', 'menu');
    expect(contentOf(await say('u1', 'echo'))).toBe('start:echo');
    expect((await stateOf('u1'))?.dialog).toBe('echo');
  });

  it('lands on the fallback when the message matches nothing, leaving no state', async () => {
    const { say, stateOf } = setup([{ match: { text: 'menu' }, dialog: picky }]);
    await say('u1', 'menu');
    expect(contentOf(await say('u1', '3'))).toBe('fallback');
    expectNoActiveDialog(await stateOf('u1'));
  });

  it('never loops: a dialog that hands back its opening message gets no reply and a warning', async () => {
    const bouncer = defineDialog('bouncer', function* () {
      return handBack();
    });
    const { engine, logger, stateOf } = setup([{ match: { text: /.*/ }, dialog: bouncer }]);
    const result = await engine.handle(textFrom('u1', 'anything'));
    expect(result).toMatchObject({ reply: undefined, outcome: 'no-reply' });
    expect(logger.lines.some((l) => l.level === 'warn' && l.message.includes('handed back its opening message'))).toBe(true);
    expect(await stateOf('u1')).toBeUndefined();
  });

  it('follows a hand-back once: the dialog it starts cannot hand the message back again', async () => {
    const bouncer = defineDialog('bouncer', function* () {
      return handBack();
    });
    const { engine, say } = setup([
      { match: { text: 'menu' }, dialog: picky },
      { match: { text: /.*/ }, dialog: bouncer },
    ]);
    await say('u1', 'menu');
    expect(await engine.handle(textFrom('u1', 'zzz'))).toMatchObject({ reply: undefined, outcome: 'no-reply' });
  });
});

describe('DialogEngine: routes while a dialog is active', () => {
  const cancel = defineDialog('cancel', function* () {
    return text('cancelled');
  });

  it('gives keywords to the active dialog unless the route interrupts', async () => {
    const { say, stateOf } = setup([
      { match: { text: 'echo' }, dialog: echo },
      { match: { text: 'other' }, dialog: fallback },
      { match: { text: 'cancel' }, dialog: cancel, interrupt: true },
    ]);
    await say('u1', 'echo');
    expect(contentOf(await say('u1', 'other'))).toBe('echo:other');
    expect(contentOf(await say('u1', 'cancel'))).toBe('cancelled');
    expectNoActiveDialog(await stateOf('u1'));
  });

  it('an interrupting dialog that waits replaces the active one', async () => {
    const again = defineDialog('again', function* () {
      yield text('welcome');
    });
    const { engine, say, stateOf } = setup([
      { match: { text: 'echo' }, dialog: echo },
      { match: { event: 'subscribe' }, dialog: again, interrupt: true },
    ]);
    await say('u1', 'echo');
    expect(contentOf((await engine.handle(eventFrom('u1', 'subscribe'))).reply)).toBe('welcome');
    const state = await stateOf('u1');
    expect(state?.dialog).toBe('again');
    expect(state?.messages).toHaveLength(1);
  });

  it('no-reply routes bypass the active dialog and leave it as it was; with interrupt they end it', async () => {
    const { engine, say, stateOf } = setup([
      { match: { text: 'echo' }, dialog: echo },
      { match: { event: 'VIEW' }, dialog: null },
      { match: { event: 'unsubscribe' }, dialog: null, interrupt: true },
    ]);
    await say('u1', 'echo');
    const before = await stateOf('u1');
    expect(await engine.handle(eventFrom('u1', 'VIEW', 'https://example.invalid/'))).toMatchObject({ reply: undefined });
    expect(await stateOf('u1')).toEqual(before);
    expect(contentOf(await say('u1', 'still here'))).toBe('echo:still here');
    expect(await engine.handle(eventFrom('u1', 'unsubscribe'))).toMatchObject({ reply: undefined });
    expectNoActiveDialog(await stateOf('u1'));
  });

  it('delivers non-text messages to the active dialog', async () => {
    const { engine, say } = setup([{ match: { text: 'echo' }, dialog: echo }]);
    await say('u1', 'echo');
    expect(contentOf((await engine.handle(imageFrom('u1'))).reply)).toBe('echo:image');
  });
});

describe('DialogEngine: failures', () => {
  const explosive = defineDialog('explosive', function* () {
    const answer = yield text('say boom');
    if (answer.MsgType === 'text' && answer.Content === 'boom') throw new Error('kaboom');
    return text('fine');
  });

  it('a dialog that throws: apology, state cleared, error logged with openid and MsgId, next message works', async () => {
    const { engine, say, stateOf, logger } = setup([{ match: { text: 'x' }, dialog: explosive }]);
    await say('oUser000000000000000000000001', 'x');
    const boom = textFrom('oUser000000000000000000000001', 'boom');
    const result = await engine.handle(boom);
    expect(result).toEqual({ reply: DEFAULT_APOLOGY, outcome: 'failed' });
    expect(await stateOf('oUser000000000000000000000001')).toBeUndefined();
    const line = logger.lines.find((l) => l.level === 'error');
    expect(line?.fields).toMatchObject({ openid: 'oUser0…0001', MsgId: boom.MsgId, dialog: 'explosive' });
    expect(String((line?.fields as { err: Error }).err)).toContain('kaboom');
    expect(contentOf(await say('oUser000000000000000000000001', 'x'))).toBe('say boom');
  });

  it('a failure planned from a stale remembered state is retried on a fresh read before apologising', async () => {
    const fragile = defineDialog('fragile', function* () {
      let message = yield text('ready');
      for (;;) {
        if (message.MsgType === 'text' && message.Content === 'boom-if-second') throw new Error('stale view');
        message = yield text('ok');
      }
    });
    const memory = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(memory);
    const router = createRouter({ routes: [{ match: { text: 'f' }, dialog: fragile }, { match: { text: 'g' }, dialog: echo, interrupt: true }], fallback });
    const processA = new DialogEngine({ router, store: memory });
    const processB = new DialogEngine({ router, store: memory });
    await processA.handle(textFrom('u1', 'f')); // A remembers: fragile is active
    await processB.handle(textFrom('u1', 'g')); // B moves the user to echo
    // On A's stale view this message would crash fragile; on the real state echo answers it.
    expect((await processA.handle(textFrom('u1', 'boom-if-second'))).reply).toEqual(text('echo:boom-if-second'));
  });

  it('a dialog that throws on its opening message: apology, no state', async () => {
    const instant = defineDialog('instant', function* () {
      throw new TypeError('bug');
    });
    const { engine, stateOf } = setup([{ match: { text: 'x' }, dialog: instant }]);
    expect((await engine.handle(textFrom('u1', 'x'))).reply).toEqual(DEFAULT_APOLOGY);
    expect(await stateOf('u1')).toBeUndefined();
  });

  it('a dialog that yields something that is not a reply fails with a message saying what to yield', async () => {
    const wrong = defineDialog('wrong', function* () {
      yield 42 as unknown as string;
    });
    const { engine, logger } = setup([{ match: { text: 'x' }, dialog: wrong }]);
    expect((await engine.handle(textFrom('u1', 'x'))).reply).toEqual(DEFAULT_APOLOGY);
    expect(String((logger.lines[0]?.fields as { err: Error }).err)).toMatch(/yield or return a string, a reply built with text\(\), image\(\)/);
  });

  it.each([
    ['a news reply without articles', { MsgType: 'news', Articles: [] }],
    ['a news reply with 9 articles', { MsgType: 'news', Articles: Array(9).fill({ Title: 't', Description: 'd', PicUrl: 'p', Url: 'u' }) }],
    ['an article without Url', { MsgType: 'news', Articles: [{ Title: 't', Description: 'd', PicUrl: 'p' }] }],
    ['a text reply without Content', { MsgType: 'text' }],
    ['an unknown MsgType', { MsgType: 'location' }],
    ['a music reply without ThumbMediaId', { MsgType: 'music', Music: { Title: 't' } }],
    ['an image reply with an empty MediaId', { MsgType: 'image', Image: { MediaId: '' } }],
  ])('a hand-built reply WeChat would reject (%s) fails the turn instead of reaching the XML writer', async (_name, reply) => {
    const handBuilt = defineDialog('hand-built', function* () {
      return reply as unknown as Reply;
    });
    const { engine } = setup([{ match: { text: 'x' }, dialog: handBuilt }]);
    expect(await engine.handle(textFrom('u1', 'x'))).toEqual({ reply: DEFAULT_APOLOGY, outcome: 'failed' });
  });

  it('a dialog that is not deterministic is detected on replay, its state dropped', async () => {
    let runs = 0;
    const moody = defineDialog('moody', function* () {
      runs += 1;
      if (runs > 1) return text('ended early'); // depends on something outside its messages
      yield text('first');
      yield text('second');
    });
    const { say, stateOf, logger } = setup([{ match: { text: 'm' }, dialog: moody }]);
    expect(contentOf(await say('u1', 'm'))).toBe('first');
    expect(await say('u1', 'x')).toEqual(DEFAULT_APOLOGY);
    expect(await stateOf('u1')).toBeUndefined();
    expect(String((logger.lines[0]?.fields as { err: Error }).err)).toMatch(/not deterministic/);
  });

  it('a store that fails: apology, nothing thrown, and the stored state is left as it was', async () => {
    const memory = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(memory);
    let broken = false;
    const down = () => Promise.reject(new StoreUnavailableError('down'));
    const flaky: DialogStore = {
      read: (key) => (broken ? down() : memory.read(key)),
      commit: (key, seen, next, ttl) => (broken ? down() : memory.commit(key, seen, next, ttl)),
      load: (key: StateKey) => (broken ? Promise.reject(new StoreUnavailableError('down')) : memory.load(key)),
      save: (key, state, ttl) => (broken ? Promise.reject(new StoreUnavailableError('down')) : memory.save(key, state, ttl)),
      delete: (key) => (broken ? Promise.reject(new StoreUnavailableError('down')) : memory.delete(key)),
      close: () => memory.close(),
    };
    const { say } = setup([{ match: { text: 'echo' }, dialog: echo }], { store: flaky });
    await say('u1', 'echo');
    const before = await memory.load({ account: ACCOUNT, openid: 'u1' });
    broken = true;
    expect(await say('u1', 'a')).toEqual(DEFAULT_APOLOGY);
    broken = false;
    expect(await memory.load({ account: ACCOUNT, openid: 'u1' })).toEqual(before);
    expect(contentOf(await say('u1', 'b'))).toBe('echo:b');
  });
});

describe('DialogEngine: code changes and unknown dialogs', () => {
  it('drops a state whose dialog version changed, handles the message as new, and logs it', async () => {
    const v1 = defineDialog('greet', function* () { yield text('v1'); yield text('v1 again'); }, { version: '1' });
    const v2 = defineDialog('greet', function* () { yield text('v2'); yield text('v2 again'); }, { version: '2' });
    const memory = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(memory);
    const logger = capturingLogger();
    const old = new DialogEngine({ router: createRouter({ routes: [{ match: { text: 'g' }, dialog: v1 }], fallback }), store: memory });
    const updated = new DialogEngine({ router: createRouter({ routes: [{ match: { text: 'g' }, dialog: v2 }], fallback }), store: memory, logger });
    await old.handle(textFrom('u1', 'g'));
    expect((await updated.handle(textFrom('u1', 'g'))).reply).toEqual(text('v2'));
    expect(logger.lines.some((l) => l.message.includes('changed (version 1 -> 2)'))).toBe(true);
    expect((await updated.handle(textFrom('u1', 'x'))).reply).toEqual(text('v2 again'));
  });

  it('a changed dialog whose state is dropped, with a message that matches nothing else: fallback, state cleared', async () => {
    const v1 = defineDialog('greet', function* () { yield text('v1'); yield text('v1 again'); }, { version: '1' });
    const v2 = defineDialog('greet', function* () { yield text('v2'); }, { version: '2' });
    const memory = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(memory);
    const old = new DialogEngine({ router: createRouter({ routes: [{ match: { text: 'g' }, dialog: v1 }], fallback }), store: memory });
    const updated = new DialogEngine({ router: createRouter({ routes: [{ match: { text: 'g' }, dialog: v2 }], fallback }), store: memory });
    await old.handle(textFrom('u1', 'g'));
    expect((await updated.handle(textFrom('u1', 'hello'))).reply).toEqual(text('fallback'));
    expectNoActiveDialog(await memory.load({ account: ACCOUNT, openid: 'u1' }));
  });

  it('the default version is a hash of the source: the same code gives the same version', () => {
    const a = defineDialog('a', function* () { yield text('x'); });
    const b = defineDialog('b', function* () { yield text('x'); });
    const c = defineDialog('c', function* () { yield text('y'); });
    expect(a.version).toMatch(/^[0-9a-f]{12}$/);
    expect(a.version).toBe(b.version);
    expect(a.version).not.toBe(c.version);
  });

  it('rejects invalid dialog names with a message that says what is allowed', () => {
    expect(() => defineDialog('has space', function* () {})).toThrow(/A-Z a-z 0-9/);
  });
});

describe('DialogEngine: one user, messages at once', () => {
  it('serializes turns of one user in this process: replies follow arrival order', async () => {
    const slowStore = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(slowStore);
    const delayed: DialogStore = {
      read: async (key) => {
        await new Promise((r) => setTimeout(r, 5));
        return slowStore.read(key);
      },
      commit: (key, seen, next, ttl) => slowStore.commit(key, seen, next, ttl),
      load: async (key) => {
        await new Promise((r) => setTimeout(r, 5));
        return slowStore.load(key);
      },
      save: (key, state, ttl) => slowStore.save(key, state, ttl),
      delete: (key) => slowStore.delete(key),
      close: () => slowStore.close(),
    };
    const { engine } = setup([{ match: { text: 'echo' }, dialog: echo }], { store: delayed });
    const replies = await Promise.all(['echo', 'a', 'b', 'c'].map((c) => engine.handle(textFrom('u1', c))));
    expect(replies.map((r) => contentOf(r.reply))).toEqual(['start:echo', 'echo:a', 'echo:b', 'echo:c']);
    expect((await slowStore.load({ account: ACCOUNT, openid: 'u1' }))?.messages).toHaveLength(4);
  });
});

describe('DialogEngine: bounds', () => {
  it('a dialog that has maxMessages messages and gets one more ends with the too-long reply, and no state is kept', async () => {
    const store = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(store);
    const logger = capturingLogger();
    const router = createRouter({ routes: [{ match: { text: 'echo' }, dialog: echo }], fallback });
    const engine = new DialogEngine({ router, store, maxMessages: 3, logger });
    const say = async (c: string) => contentOf((await engine.handle(textFrom('u1', c))).reply);
    expect(await say('echo')).toBe('start:echo');
    expect(await say('a')).toBe('echo:a');
    expect(await say('b')).toBe('echo:b');
    expect(await say('c')).toBe('这段对话太长了，已自动结束。请重新开始。');
    expectNoActiveDialog(await store.load({ account: ACCOUNT, openid: 'u1' }));
    expect(logger.lines.some((l) => l.level === 'warn' && l.message.includes('reached 3 messages'))).toBe(true);
    expect(await say('d')).toBe('fallback');
  });

  it('defaults to 100 messages', async () => {
    const { say, stateOf } = setup([{ match: { text: 'echo' }, dialog: echo }]);
    await say('u1', 'echo');
    for (let i = 1; i < 100; i += 1) await say('u1', `m${i}`);
    expect((await stateOf('u1'))?.messages).toHaveLength(100);
    expect(contentOf(await say('u1', 'one more'))).toBe('这段对话太长了，已自动结束。请重新开始。');
  });
});

describe('DialogEngine: options', () => {
  it('rejects a TTL that is not a positive whole number of seconds', () => {
    const router = createRouter({ routes: [], fallback: null });
    const store = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(store);
    expect(() => new DialogEngine({ router, store, ttlSeconds: 0.5 })).toThrow(/positive integer number of seconds/);
  });

  it('passes the TTL to the store on every turn', async () => {
    const store = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(store);
    const commit = vi.spyOn(store, 'commit');
    const router = createRouter({ routes: [{ match: { text: 'echo' }, dialog: echo }], fallback: null });
    const engine = new DialogEngine({ router, store, ttlSeconds: 7 });
    await engine.handle(textFrom('u1', 'echo'));
    await engine.handle(textFrom('u1', 'a'));
    expect(commit.mock.calls.map((c) => c[3])).toEqual([7, 7]);
  });
});
