/**
 * The memory of handled messages (issue 10, item 1): every message handled is remembered with the
 * reply it got for `handledTtlSeconds`, in the store, so a WeChat retry or a replayed request gets
 * the first reply and never runs a dialog again, also after the user's dialog ended or expired, on
 * any process. Runs on every store (memory, ioredis-mock, and real Redis when REDIS_URL is set).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defineDialog, record } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRouter } from '../../src/dialog/router.js';
import type { StateKey } from '../../src/dialog/store/store.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { text } from '../../src/wechat/replies.js';
import { ACCOUNT, eventFrom, textFrom } from '../support/messages.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

/** How often each dialog's body ran a new effect: a replay that runs a dialog again shows here. */
const runs = { counter: 0, help: 0 };
const counter = defineDialog('counter', function* () {
  const n = yield* record(() => (runs.counter += 1));
  const next = yield text(`started ${n}`);
  return text(`got ${next.MsgType === 'text' ? next.Content : next.MsgType}`);
});
const help = defineDialog('help', function* () {
  yield* record(() => (runs.help += 1));
  return text('help text');
});
const router = createRouter({
  routes: [
    { match: { text: 'count' }, dialog: counter },
    { match: { text: 'help' }, dialog: help },
  ],
  fallback: null,
});

const later = (message: InboundMessage, seconds: number): InboundMessage => ({ ...message, CreateTime: message.CreateTime + seconds });

describe.each(storeFactories())('handled messages are remembered on $name', (factory) => {
  let s: StoreUnderTest;
  let processA: DialogEngine;
  let processB: DialogEngine;
  const openid = 'oHandled000000000000000001';
  const key: StateKey = { account: ACCOUNT, openid };
  beforeEach(async () => {
    s = await factory.create();
    processA = new DialogEngine({ router, store: s.store, ttlSeconds: 1 });
    processB = new DialogEngine({ router, store: s.store, ttlSeconds: 1 });
    runs.counter = 0;
    runs.help = 0;
  });
  afterEach(async () => {
    await s.cleanup();
  });

  it('a replay after the dialog expired gets the first reply, runs nothing, and changes nothing', async () => {
    const start = textFrom(openid, 'count', 1_700_000_000);
    expect((await processA.handle(start)).reply).toEqual(text('started 1'));
    await new Promise((resolve) => setTimeout(resolve, 2_100)); // the dialog's TTL (1 s) runs out
    expect(await s.store.load(key)).toBeUndefined();
    for (const engine of [processA, processB]) {
      expect(await engine.handle(start)).toEqual({ reply: text('started 1'), outcome: 'repeated' });
    }
    expect(runs.counter).toBe(1);
    expect(await s.store.load(key)).toBeUndefined();
  });

  it('a replay of a one-shot reply after the user moved on gets its own reply; the new dialog never sees it', async () => {
    const asked = textFrom(openid, 'help', 1_700_000_000);
    expect((await processA.handle(asked)).reply).toEqual(text('help text'));
    expect((await processA.handle(textFrom(openid, 'count', 1_700_000_002))).reply).toEqual(text('started 1'));
    expect(await processB.handle(asked)).toEqual({ reply: text('help text'), outcome: 'repeated' });
    expect(await processA.handle(asked)).toEqual({ reply: text('help text'), outcome: 'repeated' });
    expect(runs.help).toBe(1);
    expect((await processA.handle(textFrom(openid, 'five', 1_700_000_003))).reply).toEqual(text('got five'));
  });

  it('an older message replayed while a dialog is active (this process has it cached) is looked up, not run', async () => {
    const first = textFrom(openid, 'count', 1_700_000_000);
    expect((await processA.handle(first)).reply).toEqual(text('started 1'));
    expect((await processA.handle(textFrom(openid, 'a', 1_700_000_001))).reply).toEqual(text('got a'));
    expect((await processA.handle(textFrom(openid, 'count', 1_700_000_005))).reply).toEqual(text('started 2'));
    // The first dialog's opening message again: older than what the cached state has seen.
    expect(await processA.handle(first)).toEqual({ reply: text('started 1'), outcome: 'repeated' });
    expect(runs.counter).toBe(2);
    expect((await processA.handle(textFrom(openid, 'b', 1_700_000_006))).reply).toEqual(text('got b'));
  });

  it('a notification event replayed after the dialog it ended is remembered: it does not end a new dialog', async () => {
    const unfollow = later(eventFrom(openid, 'unsubscribe'), 1);
    expect((await processA.handle(textFrom(openid, 'count', 1_700_000_000))).reply).toEqual(text('started 1'));
    expect((await processA.handle(unfollow)).outcome).toBe('no-reply');
    expect((await processA.handle(textFrom(openid, 'count', 1_700_000_004))).reply).toEqual(text('started 2'));
    expect((await processB.handle(unfollow)).outcome).toBe('repeated');
    expect((await processA.handle(textFrom(openid, 'c', 1_700_000_005))).reply).toEqual(text('got c'));
  });

  it('a message answered late is remembered as "no passive reply": a retry gets success, not a second copy', async () => {
    const asked = textFrom(openid, 'help', 1_700_000_000);
    const first = await processA.handle(asked, { lateAfter: Date.now() - 1 });
    expect(first.reply).toEqual(text('help text')); // the caller sends it as a customer-service message
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(await processB.handle(asked)).toEqual({ reply: undefined, outcome: 'repeated' });
  });

  it('the store: remember is atomic, and a commit of a remembered message writes nothing', async () => {
    const remember = s.store.remember?.bind(s.store);
    expect(remember).toBeDefined();
    const handled = { id: 'm1', reply: text('r1'), createTime: 1_700_000_010, ttlSeconds: 60 };
    expect(await remember!(key, handled)).toBeUndefined();
    expect(await remember!(key, { ...handled, reply: text('other') })).toEqual({ reply: text('r1') });
    const snapshot = await s.store.read(key, 'm1');
    expect(snapshot).toMatchObject({ handled: { reply: text('r1') }, handledUpTo: 1_700_000_010 });
    const state = { dialog: 'counter', version: 'v', messages: [textFrom(openid, 'count')], effects: [] };
    const commit = await s.store.commit(key, snapshot, state, 60, { ...handled, reply: null });
    expect(commit).toMatchObject({ committed: false, handled: { reply: text('r1') } });
    expect(await s.store.load(key)).toBeUndefined();
    const fresh = await s.store.commit(key, snapshot, state, 60, { id: 'm2', reply: null, createTime: 1_700_000_020, ttlSeconds: 60 });
    expect(fresh.committed).toBe(true);
    expect(fresh.snapshot.handledUpTo).toBe(1_700_000_020);
    expect((await s.store.read(key, 'm2')).handled).toEqual({ reply: null });
    expect((await s.store.read(key, 'm3')).handled).toBeUndefined();
  });

  it('the store keeps the id of the delivery that carries a reply (commit and remember); a retry still reads no reply', async () => {
    const snapshot = await s.store.read(key, 'd1');
    const state = { dialog: 'counter', version: 'v', messages: [textFrom(openid, 'count')], effects: [] };
    const handled = { id: 'd1', reply: null, createTime: 1_700_000_030, ttlSeconds: 60, delivery: 'late.d1.abc' };
    expect((await s.store.commit(key, snapshot, state, 60, handled)).committed).toBe(true);
    expect((await s.store.read(key, 'd1')).handled).toEqual({ reply: null, delivery: 'late.d1.abc' });
    expect(await s.store.remember!(key, { ...handled, id: 'd2', delivery: 'late.d2.def' })).toBeUndefined();
    expect((await s.store.read(key, 'd2')).handled).toEqual({ reply: null, delivery: 'late.d2.def' });
  });
});
