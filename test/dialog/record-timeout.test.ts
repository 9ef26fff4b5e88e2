/**
 * `record()` effects that never settle cannot hang a user: each effect has a timeout (the engine's
 * `effectTimeoutMs`, or `record(work, { timeoutMs })`), a timed-out effect is recorded as an error
 * like a failed one, and the work gets an AbortSignal that is aborted on timeout.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { defineDialog, record, RecordedEffectError, type Dialog } from '../../src/dialog/dialog.js';
import { DEFAULT_APOLOGY, DialogEngine, type EngineLogger, type EngineOptions } from '../../src/dialog/engine.js';
import { replay } from '../../src/dialog/replay.js';
import { createRouter } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import type { DialogStore } from '../../src/dialog/store/store.js';
import { ConversationError, createConversation } from '../../src/testing/conversation.js';
import type { InboundMessage } from '../../src/wechat/messages.js';
import { text, type Reply } from '../../src/wechat/replies.js';
import { ACCOUNT, textFrom } from '../support/messages.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

const contentOf = (reply: Reply | undefined) => (reply?.MsgType === 'text' ? reply.Content : reply);
const contentOfMessage = (message: InboundMessage) => (message.MsgType === 'text' ? message.Content : message.MsgType);
const never = <T>() => new Promise<T>(() => undefined);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves as `promise` does, or rejects after `ms` milliseconds saying what did not finish. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function capturingLogger(): EngineLogger & { errors: unknown[] } {
  const errors: unknown[] = [];
  return { errors, info() {}, warn() {}, error: (fields) => errors.push((fields as { err?: unknown }).err) };
}

/** How many times each dialog's work actually ran (not replayed). */
let runs = 0;

/** Catches the timeout and says so; the next message ends the dialog. */
const catching = defineDialog('catching', function* () {
  let note: string;
  try {
    yield* record(() => {
      runs += 1;
      return never<string>();
    });
    note = 'settled';
  } catch (err) {
    note = err instanceof RecordedEffectError ? `caught: ${err.message}` : `unexpected: ${String(err)}`;
  }
  const next = yield text(note);
  return text(`after: ${contentOfMessage(next)}`);
});

/** Does not catch: the user gets the apology. */
const uncaught = defineDialog('uncaught', function* () {
  const value = yield* record(() => {
    runs += 1;
    return never<number>();
  });
  return text(`never here: ${value}`);
});

const fallback = defineDialog('fallback', function* (first) {
  return text(`fallback: ${contentOfMessage(first)}`);
});

function engineOn(store: DialogStore, options: Partial<EngineOptions> & { routes?: { text: string; dialog: Dialog }[] } = {}) {
  const logger = capturingLogger();
  const routes = (options.routes ?? [
    { text: 'catch', dialog: catching },
    { text: 'uncaught', dialog: uncaught },
  ]).map(({ text: t, dialog }) => ({ match: { text: t }, dialog }));
  const router = createRouter({ routes, fallback });
  const engine = new DialogEngine({ router, store, ttlSeconds: 60, logger, effectTimeoutMs: 200, ...options });
  return { engine, logger };
}

beforeEach(() => {
  runs = 0;
});

describe.each(storeFactories())('an effect that never settles, on $name', (factory) => {
  let s: StoreUnderTest;
  beforeEach(async () => {
    s = await factory.create();
  });
  afterEach(() => s.cleanup());

  it('ends the turn after effectTimeoutMs; the dialog catches the RecordedEffectError and the next message is answered', async () => {
    const { engine, logger } = engineOn(s.store);
    const started = Date.now();
    // Both messages at once: the second waits in the user's queue behind the first.
    const first = engine.handle(textFrom('u1', 'catch'));
    const second = engine.handle(textFrom('u1', 'next'));
    const r1 = await within(3000, 'the first turn', first);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(contentOf(r1.reply)).toBe('caught: record() timed out after 200 ms');
    expect(r1.outcome).toBe('started');
    const r2 = await within(3000, 'the second turn', second);
    expect(contentOf(r2.reply)).toBe('after: next');
    expect(r2.outcome).toBe('ended');
    // Recorded like a failed effect, and replayed without running the work again.
    expect(runs).toBe(1);
    expect((await s.store.load({ account: ACCOUNT, openid: 'u1' }))?.effects).toEqual([{ error: 'record() timed out after 200 ms' }]);
    expect(logger.errors).toEqual([]);
  });

  it('gives the apology when the dialog does not catch it, and the next message is answered', async () => {
    const { engine, logger } = engineOn(s.store);
    const first = engine.handle(textFrom('u2', 'uncaught'));
    const second = engine.handle(textFrom('u2', 'hello'));
    const r1 = await within(3000, 'the first turn', first);
    expect(r1).toEqual({ reply: DEFAULT_APOLOGY, outcome: 'failed' });
    expect(logger.errors).toHaveLength(1);
    expect(logger.errors[0]).toBeInstanceOf(RecordedEffectError);
    expect((logger.errors[0] as Error).message).toBe('record() timed out after 200 ms');
    const r2 = await within(3000, 'the second turn', second);
    expect(contentOf(r2.reply)).toBe('fallback: hello');
    expect(runs).toBe(1);
  });
});

describe('record() timeouts', () => {
  const stores: MemoryStore[] = [];
  const memory = () => {
    const store = new MemoryStore({ sweepIntervalMs: 0 });
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });

  it('lets a per-call timeoutMs override the engine default, shorter or longer', async () => {
    const shorter = defineDialog('shorter', function* () {
      try {
        yield* record(() => never<number>(), { timeoutMs: 50 });
      } catch (err) {
        return text((err as Error).message);
      }
      return text('settled');
    });
    const longer = defineDialog('longer', function* () {
      const value = yield* record(async () => {
        await sleep(150);
        return 'slow but in time';
      }, { timeoutMs: 1000 });
      return text(value);
    });
    const { engine } = engineOn(memory(), {
      effectTimeoutMs: 60_000,
      routes: [
        { text: 'shorter', dialog: shorter },
        { text: 'longer', dialog: longer },
      ],
    });
    const started = Date.now();
    expect(contentOf((await within(2000, 'the shorter turn', engine.handle(textFrom('u1', 'shorter')))).reply)).toBe(
      'record() timed out after 50 ms',
    );
    expect(Date.now() - started).toBeLessThan(1000);

    const { engine: quick } = engineOn(memory(), { effectTimeoutMs: 20, routes: [{ text: 'longer', dialog: longer }] });
    expect(contentOf((await quick.handle(textFrom('u1', 'longer'))).reply)).toBe('slow but in time');
  });

  it('aborts the AbortSignal given to the work when it times out, and records the timeout (not the abort) as the error', async () => {
    const signals: AbortSignal[] = [];
    const polite = defineDialog('polite', function* () {
      try {
        yield* record(
          (signal) =>
            new Promise<number>((_, reject) => {
              signals.push(signal);
              signal.addEventListener('abort', () => reject(new Error('aborted by the signal')));
            }),
        );
      } catch (err) {
        return text((err as Error).message);
      }
      return text('settled');
    });
    const quick = defineDialog('quick', function* () {
      const value = yield* record(async (signal) => {
        signals.push(signal);
        await sleep(10);
        return 7;
      });
      return text(`value ${value}`);
    });
    const { engine } = engineOn(memory(), {
      effectTimeoutMs: 100,
      routes: [
        { text: 'polite', dialog: polite },
        { text: 'quick', dialog: quick },
      ],
    });
    expect(contentOf((await engine.handle(textFrom('u1', 'polite'))).reply)).toBe('record() timed out after 100 ms');
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[0]?.reason).toBeInstanceOf(DOMException);
    expect((signals[0]?.reason as DOMException).name).toBe('TimeoutError');

    expect(contentOf((await engine.handle(textFrom('u2', 'quick'))).reply)).toBe('value 7');
    await sleep(150);
    expect(signals[1]?.aborted).toBe(false); // work that settles in time is never aborted
  });

  it('replays a recorded timeout (also one stored before timeouts existed) by rethrowing it, without running the work', async () => {
    let ran = 0;
    const dialog = defineDialog('replayed', function* () {
      let note = 'settled';
      try {
        yield* record(() => {
          ran += 1;
          return never<number>();
        });
      } catch (err) {
        note = err instanceof RecordedEffectError ? `caught: ${err.message}` : 'other';
      }
      const next = yield text(note);
      return text(`after ${contentOfMessage(next)}`);
    });
    const messages = [textFrom('u1', 'go'), textFrom('u1', 'then')];
    const context = { openid: 'u1', account: ACCOUNT, time: 1_700_000_000 };
    const recorded = [{ error: 'record() timed out after 30000 ms' }];
    const outcome = await replay(dialog, messages, recorded, context, { effectTimeoutMs: 10 });
    expect(outcome).toEqual({ kind: 'ended', reply: text('after then'), effects: recorded });
    const retried = await replay(dialog, messages.slice(0, 1), recorded, context, { prefix: true });
    expect(retried).toEqual({ kind: 'waiting', reply: text('caught: record() timed out after 30000 ms'), effects: recorded });
    expect(ran).toBe(0);
  });

  it('keeps record(() => …) and states recorded before working unchanged: sync, async, failed and undefined results', async () => {
    let ran = 0;
    const dialog = defineDialog('plain', function* () {
      const a = yield* record(() => {
        ran += 1;
        return 1;
      });
      const b = yield* record(async () => {
        ran += 1;
        return { b: 2 };
      });
      yield* record(() => {
        ran += 1;
        return undefined;
      });
      let c = 'no error';
      try {
        yield* record(() => {
          ran += 1;
          throw new Error('boom');
        });
      } catch (err) {
        c = (err as Error).message;
      }
      return text(`${a} ${b.b} ${c}`);
    });
    const context = { openid: 'u1', account: ACCOUNT, time: 1_700_000_000 };
    const first = await replay(dialog, [textFrom('u1', 'go')], [], context);
    expect(first).toEqual({ kind: 'ended', reply: text('1 2 boom'), effects: [{ ok: 1 }, { ok: { b: 2 } }, {}, { error: 'boom' }] });
    expect(ran).toBe(4);
    const again = await replay(dialog, [textFrom('u1', 'go')], [{ ok: 1 }, { ok: { b: 2 } }, {}, { error: 'boom' }], context);
    expect(again).toEqual(first);
    expect(ran).toBe(4);
  });

  it('waits 30 000 ms by default', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const router = createRouter({ routes: [{ match: { text: 'catch' }, dialog: catching }], fallback });
      const engine = new DialogEngine({ router, store: memory() });
      let done = false;
      const turn = engine.handle(textFrom('u1', 'catch')).finally(() => (done = true));
      await vi.advanceTimersByTimeAsync(29_999);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(contentOf((await turn).reply)).toBe('caught: record() timed out after 30000 ms');
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses an effectTimeoutMs that is not a positive integer a timer can hold', () => {
    const router = createRouter({ routes: [], fallback: null });
    const store = memory();
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      expect(() => new DialogEngine({ router, store, effectTimeoutMs: bad })).toThrow(RangeError);
    }
    expect(() => new DialogEngine({ router, store, effectTimeoutMs: 2 ** 31 - 1 })).not.toThrow();
  });

  it('treats an invalid per-call timeoutMs as a dialog error (the apology)', async () => {
    const bad = defineDialog('bad', function* () {
      yield* record(() => 1, { timeoutMs: -5 });
      return text('never');
    });
    const { engine, logger } = engineOn(memory(), { routes: [{ text: 'bad', dialog: bad }] });
    expect((await engine.handle(textFrom('u1', 'bad'))).reply).toEqual(DEFAULT_APOLOGY);
    expect(String(logger.errors[0])).toMatch(/timeoutMs must be a positive integer/);
  });
});

describe('createConversation({ effectTimeoutMs })', () => {
  it('passes the timeout to its engine', async () => {
    const router = createRouter({
      routes: [
        { match: { text: 'catch' }, dialog: catching },
        { match: { text: 'uncaught' }, dialog: uncaught },
      ],
      fallback,
    });
    const chat = createConversation({ router, effectTimeoutMs: 100 });
    try {
      expect(await within(2000, 'say', chat.say('catch'))).toEqual(text('caught: record() timed out after 100 ms'));
      expect(await chat.say('ok')).toEqual(text('after: ok'));
      await expect(within(2000, 'say', chat.say('uncaught'))).rejects.toThrow(ConversationError);
      expect(await chat.say('hi')).toEqual(text('fallback: hi'));
    } finally {
      await chat.close();
    }
  });
});
