/** One attempt, alone: what each failure leads to (the queues only carry the decision out). */
import { describe, expect, it } from 'vitest';
import { DeliveryRunner, type DeliveryEvent, type QueuedDelivery } from '../../src/delivery/delivery-runner.js';
import { MemoryPushStatusBook } from '../../src/delivery/push-status.js';
import type { MessageSender } from '../../src/delivery/sender.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { StoreUnavailableError, type DialogStore } from '../../src/dialog/store/store.js';
import { WeChatApiError } from '../../src/wechat/api.js';
import { text, transferCustomerService } from '../../src/wechat/replies.js';

const OPENID = 'oUser000000000000000000000001';
const job = (extra: Partial<QueuedDelivery> = {}): QueuedDelivery => ({
  delivery: { id: 'd.1', openid: OPENID, message: { kind: 'reply', reply: text('x') }, push: { id: 'p.1', service: 'crm' } },
  acceptedAt: 1_000,
  nonce: 'n',
  ...extra,
});

function runner(send: MessageSender['send'], store: DialogStore = new MemoryStore()) {
  const statuses = new MemoryPushStatusBook();
  const events: DeliveryEvent[] = [];
  const lines: { fields: object; message: string }[] = [];
  const log = (fields: object, message: string) => void lines.push({ fields, message });
  const r = new DeliveryRunner({ sender: { send }, store, statuses, logger: { info: log, warn: log, error: log }, observer: (e) => events.push(e), backoffMs: 100, guardPollMs: 10 });
  return { r, statuses, events, lines };
}

describe('DeliveryRunner', () => {
  it('backoff doubles from backoffMs; no answer (not a WeChat errcode) is transient too', async () => {
    const { r } = runner(async () => {
      throw new WeChatApiError('no answer', 'transient');
    });
    expect(await r.run(job(), 0, 8)).toMatchObject({ action: 'retry', delayMs: 100 });
    expect(await r.run(job(), 3, 8)).toMatchObject({ action: 'retry', delayMs: 800 });
    const other = runner(async () => {
      throw new Error('socket hang up');
    });
    expect(await other.r.run(job(), 0, 2)).toMatchObject({ action: 'retry' });
    expect(await other.r.run(job(), 1, 2)).toEqual({ action: 'done' });
    expect(await other.statuses.get('p.1')).toMatchObject({ status: 'failed', errmsg: 'socket hang up' });
    expect(await other.statuses.get('p.1')).not.toHaveProperty('errcode');
  });

  it('config errors (48001 no permission) and a token refused twice are failed at once', async () => {
    for (const [kind, errcode] of [['config', 48001], ['token', 40001], ['refused', 40003]] as const) {
      const { r, statuses } = runner(async () => {
        throw new WeChatApiError(`errcode ${errcode}`, kind, errcode, { errmsg: `msg ${errcode}` });
      });
      expect(await r.run(job(), 0, 8)).toEqual({ action: 'done' });
      expect(await statuses.get('p.1')).toMatchObject({ status: 'failed', errcode, errmsg: `msg ${errcode}` });
    }
  });

  it('a transfer_customer_service reply cannot be sent: failed without an errcode', async () => {
    const { r, statuses, events } = runner(async () => 'not-sendable');
    const j = job({ delivery: { id: 'd.1', openid: OPENID, message: { kind: 'reply', reply: transferCustomerService() }, push: { id: 'p.1', service: 'crm' } } });
    expect(await r.run(j, 0, 8)).toEqual({ action: 'done' });
    expect(await statuses.get('p.1')).toMatchObject({ status: 'failed', errmsg: expect.stringContaining('transfer_customer_service') });
    expect(events).toEqual([{ outcome: 'failed', kind: 'reply', service: 'crm' }]);
  });

  it('a store that cannot be read for the guard is retried like a transient error, nothing sent', async () => {
    let sends = 0;
    const store = new MemoryStore();
    store.read = async () => {
      throw new StoreUnavailableError('Redis down');
    };
    const { r } = runner(async () => {
      sends += 1;
      return 'sent';
    }, store);
    const guarded = job({ guard: { account: 'gh_x', openid: OPENID, identity: 'm' }, guardUntil: Date.now() + 60_000 });
    expect(await r.run(guarded, 0, 8)).toMatchObject({ action: 'retry' });
    expect(sends).toBe(0);
  });

  it('sent, then the status cannot be recorded: done (never sent again), logged as an error', async () => {
    const { r, statuses, lines } = runner(async () => 'sent');
    statuses.settle = async () => {
      throw new Error('Redis down');
    };
    expect(await r.run(job(), 0, 8)).toEqual({ action: 'done' });
    expect(lines.at(-1)!.message).toMatch(/sent, but its push status could not be recorded/);
  });

  it('logs carry the delivery, the push, the service and a masked openid, never the whole openid', async () => {
    const { r, lines } = runner(async () => 'sent');
    await r.run(job(), 0, 8);
    expect(lines[0]!.fields).toMatchObject({ delivery: 'd.1', push: 'p.1', service: 'crm', openid: 'oUser0…0001' });
    expect(JSON.stringify(lines)).not.toContain(OPENID);
  });
});
