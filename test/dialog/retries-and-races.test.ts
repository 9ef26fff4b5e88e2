/**
 * WeChat retries and simultaneous messages, with two engines sharing one store: two server
 * processes, each with its own in-process queue, so their turns really race on the store. Runs on
 * every store (memory, ioredis-mock, and real Redis when REDIS_URL is set).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defineDialog, record } from '../../src/dialog/dialog.js';
import { DialogEngine, RECENT_REPLIES, type TurnResult } from '../../src/dialog/engine.js';
import { messageIdentity } from '../../src/wechat/message-identity.js';
import { createRouter } from '../../src/dialog/router.js';
import type { InboundMessage, TextMessage } from '../../src/wechat/messages.js';
import { text } from '../../src/wechat/replies.js';
import { ACCOUNT, eventFrom, textFrom } from '../support/messages.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

/** Sums the numbers it is sent; `=` ends it with the total. Counts how often its effect runs. */
let effectRuns = 0;
const adder = defineDialog('adder', function* () {
  const id = yield* record(() => `run-${(effectRuns += 1)}`);
  let sum = 0;
  let message = yield text(`0 (${id})`);
  while (!(message.MsgType === 'text' && message.Content === '=')) {
    sum += message.MsgType === 'text' ? Number(message.Content) : 0;
    message = yield text(`${sum}`);
  }
  return text(`total ${sum}`);
});
const welcome = defineDialog('welcome', function* () {
  return text('welcome');
});
/** Waits for a name; starts by interrupting whatever the user is in. */
const signup = defineDialog('signup', function* () {
  const name = yield text('your name?');
  return text(`hello ${name.MsgType === 'text' ? name.Content : '?'}`);
});
const router = createRouter({
  routes: [
    { match: { text: 'add' }, dialog: adder },
    { match: { text: 'signup' }, dialog: signup, interrupt: true },
    { match: { event: 'subscribe' }, dialog: welcome },
    { match: { text: 'help' }, dialog: welcome, interrupt: true },
  ],
  fallback: null,
});

const contentOf = (result: TurnResult) => (result.reply?.MsgType === 'text' ? result.reply.Content : undefined);

describe.each(storeFactories())('retries and races on $name', (factory) => {
  let s: StoreUnderTest;
  let processA: DialogEngine;
  let processB: DialogEngine;
  beforeEach(async () => {
    s = await factory.create();
    processA = new DialogEngine({ router, store: s.store, ttlSeconds: 60 });
    processB = new DialogEngine({ router, store: s.store, ttlSeconds: 60 });
    effectRuns = 0;
  });
  afterEach(async () => {
    await s.cleanup();
  });
  const stateOf = (openid: string) => s.store.load({ account: ACCOUNT, openid });

  it('a retry (same MsgId) gets the same reply and counts once, sequentially and on either process', async () => {
    const u = 'oRetrySeq';
    await processA.handle(textFrom(u, 'add'));
    const five = textFrom(u, '5');
    expect(contentOf(await processA.handle(five))).toBe('5');
    expect(contentOf(await processA.handle(five))).toBe('5');
    expect(contentOf(await processB.handle(five))).toBe('5');
    expect((await stateOf(u))?.messages).toHaveLength(2);
    expect(contentOf(await processB.handle(textFrom(u, '2')))).toBe('7');
  });

  it('three concurrent attempts of one message across two processes: identical replies, counted once', async () => {
    const u = 'oRetryConc';
    await processA.handle(textFrom(u, 'add'));
    const five = textFrom(u, '5');
    const replies = await Promise.all([processA.handle(five), processB.handle(five), processB.handle(five)]);
    expect(replies.map(contentOf)).toEqual(['5', '5', '5']);
    expect((await stateOf(u))?.messages).toHaveLength(2);
    expect(contentOf(await processA.handle(textFrom(u, '1')))).toBe('6');
  });

  it('a retry of the opening message gets the opening reply; the recorded effect is not run again', async () => {
    const u = 'oRetryOpen';
    const open = textFrom(u, 'add');
    const first = contentOf(await processA.handle(open));
    expect(first).toBe('0 (run-1)');
    expect(contentOf(await processB.handle(open))).toBe(first);
    expect(effectRuns).toBe(1);
  });

  it('a retry of an earlier message gets the reply it got then', async () => {
    const u = 'oRetryEarlier';
    await processA.handle(textFrom(u, 'add'));
    const five = textFrom(u, '5');
    await processA.handle(five);
    await processA.handle(textFrom(u, '3'));
    expect(contentOf(await processB.handle(five))).toBe('5');
    expect((await stateOf(u))?.messages).toHaveLength(3);
  });

  it('a retry of the message that ended the dialog gets the last reply, not a new dialog', async () => {
    const u = 'oRetryEnd';
    await processA.handle(textFrom(u, 'add'));
    await processA.handle(textFrom(u, '4'));
    const equals = textFrom(u, '=');
    expect(contentOf(await processA.handle(equals))).toBe('total 4');
    expect(contentOf(await processB.handle(equals))).toBe('total 4');
    expect((await stateOf(u))?.ended).toBe(true);
  });

  it('an event retried (same FromUserName, CreateTime, Event) gets the same reply', async () => {
    const u = 'oRetryEvent';
    const subscribe = eventFrom(u, 'subscribe');
    const replies = await Promise.all([processA.handle(subscribe), processB.handle(subscribe)]);
    expect(replies.map(contentOf)).toEqual(['welcome', 'welcome']);
  });

  it('a MsgId beyond 2^53 is matched exactly: a neighbouring id is a different message', async () => {
    const u = 'oBigIds';
    await processA.handle(textFrom(u, 'add'));
    const base: TextMessage = { ToUserName: ACCOUNT, FromUserName: u, CreateTime: 1_700_000_000, MsgType: 'text', Content: '1', MsgId: '9007199254740993' };
    const neighbour: TextMessage = { ...base, MsgId: '9007199254740992' }; // equal as JS numbers
    expect(contentOf(await processA.handle(base))).toBe('1');
    expect(contentOf(await processB.handle(neighbour))).toBe('2');
    expect(contentOf(await processB.handle(base))).toBe('1');
  });

  describe('a retry that arrives after the user moved on to another dialog', () => {
    it('gets the reply the message got in the dialog before, and the new dialog does not see it', async () => {
      const u = 'oRetryAcross';
      await processA.handle(textFrom(u, 'add'));
      const seven = textFrom(u, '7');
      expect(contentOf(await processA.handle(seven))).toBe('7');
      expect(contentOf(await processA.handle(textFrom(u, 'signup')))).toBe('your name?');
      // WeChat never got the '7' reply and retries it, to the other process.
      expect(await processB.handle(seven)).toMatchObject({ reply: text('7'), outcome: 'repeated' });
      expect((await stateOf(u))?.messages.map((m) => (m.MsgType === 'text' ? m.Content : ''))).toEqual(['signup']);
      expect(contentOf(await processB.handle(textFrom(u, 'Ada')))).toBe('hello Ada');
      expect(effectRuns).toBe(1);
    });

    it('the message that ended a dialog, retried after a one-shot replaced it, still gets its last reply', async () => {
      const u = 'oRetryAfterOneShot';
      await processA.handle(textFrom(u, 'add'));
      await processA.handle(textFrom(u, '4'));
      const equals = textFrom(u, '=');
      expect(contentOf(await processA.handle(equals))).toBe('total 4');
      const help = textFrom(u, 'help');
      expect(contentOf(await processA.handle(help))).toBe('welcome');
      expect(contentOf(await processB.handle(equals))).toBe('total 4');
      expect(contentOf(await processB.handle(help))).toBe('welcome');
      expect((await stateOf(u))?.ended).toBe(true); // kept, ended, for the retries: no dialog is active
      expect(contentOf(await processB.handle(textFrom(u, '=')))).toBeUndefined(); // a new '=' is routed afresh: no route, no reply
    });

    it(`remembers the last ${RECENT_REPLIES} messages, newest last; older ones are forgotten`, async () => {
      const u = 'oRecentBound';
      await processA.handle(textFrom(u, 'add'));
      const first = textFrom(u, '1');
      await processA.handle(first);
      const zeros = Array.from({ length: RECENT_REPLIES }, () => textFrom(u, '0'));
      for (const zero of zeros) await processA.handle(zero);
      const recent = (await stateOf(u))?.recent;
      expect(recent?.map((r) => r.id)).toEqual(zeros.map(messageIdentity));
      expect(recent?.at(-1)?.reply).toEqual(text('1'));
      // Still in the same dialog, so the forgotten first message is answered by replaying it.
      expect(contentOf(await processB.handle(first))).toBe('1');
    });
  });

  describe('lateAfter: a reply delivered another way (a late customer-service message)', () => {
    it('a turn that commits after lateAfter returns its reply, but a retry of the message gets no passive reply', async () => {
      const u = 'oLateRetry';
      await processA.handle(textFrom(u, 'add'));
      const six = textFrom(u, '6');
      expect(await processA.handle(six, { lateAfter: Date.now() - 1 })).toMatchObject({ reply: text('6'), outcome: 'continued' });
      expect(await processB.handle(six)).toMatchObject({ reply: undefined, outcome: 'repeated' });
      expect(contentOf(await processB.handle(textFrom(u, '1')))).toBe('7'); // counted once
    });

    it('a turn that commits before lateAfter is a passive reply as usual: a retry gets it again', async () => {
      const u = 'oInTime';
      await processA.handle(textFrom(u, 'add'));
      const six = textFrom(u, '6');
      expect(contentOf(await processA.handle(six, { lateAfter: Date.now() + 60_000 }))).toBe('6');
      expect(await processB.handle(six)).toMatchObject({ reply: text('6'), outcome: 'repeated' });
    });
  });

  it('two different messages of one user at once, on two processes: the replies of some sequential order', async () => {
    const users = Array.from({ length: 20 }, (_, i) => `oRace${i}`);
    await Promise.all(users.map((u) => processA.handle(textFrom(u, 'add'))));
    const outcomes = await Promise.all(
      users.map(async (u) => {
        const [two, three] = [textFrom(u, '2'), textFrom(u, '3')];
        const [r2, r3] = await Promise.all([processA.handle(two), processB.handle(three)]);
        return { u, replies: [contentOf(r2), contentOf(r3)] };
      }),
    );
    for (const { u, replies } of outcomes) {
      // 2 then 3 -> ['2', '5']; 3 then 2 -> ['5', '3']
      expect([['2', '5'], ['5', '3']], `${u}: ${JSON.stringify(replies)}`).toContainEqual(replies);
      const state = await stateOf(u);
      expect(state?.messages.map((m) => (m.MsgType === 'text' ? m.Content : '')).sort()).toEqual(['2', '3', 'add']);
    }
    for (const u of users) expect(contentOf(await processB.handle(textFrom(u, '=')))).toBe('total 5');
  });
});
