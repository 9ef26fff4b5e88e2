/**
 * The push API end to end: the handler on a real delivery queue (in-process; BullMQ on real Redis
 * when `REDIS_URL` is set), a real engine whose outbox is that queue, and the fake WeChat API. A
 * push arrives once, a repeated Idempotency-Key sends once, a permanent WeChat error is `failed`
 * with its errcode, and a pushed dialog's first reply arrives and the user's answer continues it.
 */
import express from 'express';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { DeliveryQueue } from '../../src/delivery/delivery-queue.js';
import { outboxOf } from '../../src/delivery/outbox.js';
import { definePushDialog } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRouter } from '../../src/dialog/router.js';
import { createPushApi } from '../../src/http/push-api.js';
import { text } from '../../src/wechat/replies.js';
import { queueRigFactories, type QueueRig } from '../support/delivery-queues.js';
import { startFakeWeChatApi, type FakeWeChatApi } from '../support/fake-wechat-api.js';
import { ACCOUNT, textFrom } from '../support/messages.js';
import { RecordingLogger } from './support.js';

const KEY = 'orders-key-0123456789abcdef';
const AUTH = `Bearer ${KEY}`;
const OPENID = 'oUser000000000000000000000042';

const confirmOrder = definePushDialog('confirm-order', z.object({ orderId: z.string() }), function* (first) {
  const answer = yield text(`确认订单 #${first.Input.orderId}？回复 1 确认，2 取消`);
  return text(answer.MsgType === 'text' && answer.Content === '1' ? '已确认' : '已取消');
});
const router = createRouter({ routes: [], fallback: null, pushed: [confirmOrder] });

let api: FakeWeChatApi;
beforeAll(async () => {
  api = await startFakeWeChatApi();
});
afterAll(() => api.close());

describe.each(queueRigFactories())('pushes through the $name queue to the fake WeChat API', (factory) => {
  let rig: QueueRig;
  let queue: DeliveryQueue;
  let engine: DialogEngine;
  let app: express.Express;

  beforeEach(async () => {
    for (const list of [api.sent, api.sendErrors, api.templates, api.templateErrors, api.refused]) list.length = 0;
    rig = await factory.create(api);
    queue = rig.queue();
    engine = new DialogEngine({ router, store: rig.store, outbox: outboxOf(queue) });
    app = express().use(createPushApi({ keys: [{ service: 'orders', key: KEY }], queue, engine, router, account: ACCOUNT, logger: new RecordingLogger() }));
  });
  afterEach(() => rig.cleanup());

  /** Polls `GET /push/<id>` until its status is not `queued`. */
  async function settled(id: string, timeoutMs = 8_000): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const res = await request(app).get(`/push/${id}`).set('Authorization', AUTH);
      expect(res.status).toBe(200);
      if (res.body.status !== 'queued' || Date.now() > until) return res.body as Record<string, unknown>;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('a text push arrives once, and its status becomes sent', async () => {
    const res = await request(app).post('/push').set('Authorization', AUTH).send({ openid: OPENID, text: '您的订单已发货' });
    expect(res.status).toBe(202);
    await api.waitForSent(1);
    expect(await settled(res.body.id)).toMatchObject({ id: res.body.id, status: 'sent' });
    expect(api.sent.map((m) => m.body)).toEqual([{ touser: OPENID, msgtype: 'text', text: { content: '您的订单已发货' } }]);
  });

  it('the same Idempotency-Key twice sends once', async () => {
    const send = () => request(app).post('/push').set('Authorization', AUTH).set('Idempotency-Key', 'shipped-123').send({ openid: OPENID, text: 'once' });
    const first = await send();
    await api.waitForSent(1);
    const second = await send();
    expect(second.body.id).toBe(first.body.id);
    await settled(first.body.id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(api.sent).toHaveLength(1);
  });

  it('a permanent WeChat error: failed with its errcode, not retried', async () => {
    api.sendErrors.push(45015);
    const res = await request(app).post('/push').set('Authorization', AUTH).send({ openid: OPENID, text: 'too late' });
    expect(await settled(res.body.id)).toMatchObject({ status: 'failed', errcode: 45015 });
    expect(api.refused).toHaveLength(1);
    expect(api.sent).toHaveLength(0);
  });

  it('a template push is sent as a template message', async () => {
    const res = await request(app).post('/push').set('Authorization', AUTH).send({ openid: OPENID, template: { id: 'TPL_1', data: { first: '已发货' } } });
    await api.waitForTemplates(1);
    expect(await settled(res.body.id)).toMatchObject({ status: 'sent' });
    expect(api.templates[0]?.body).toMatchObject({ touser: OPENID, template_id: 'TPL_1', data: { first: { value: '已发货' } } });
  });

  it("a pushed dialog's first reply arrives, and the user's answer continues the dialog", async () => {
    const res = await request(app).post('/push').set('Authorization', AUTH).send({ openid: OPENID, dialog: 'confirm-order', input: { orderId: '123' } });
    expect(res.status).toBe(202);
    await api.waitForSent(1);
    expect(api.sent[0]?.body).toEqual({ touser: OPENID, msgtype: 'text', text: { content: '确认订单 #123？回复 1 确认，2 取消' } });
    expect(await settled(res.body.id)).toMatchObject({ status: 'sent' });
    const answer = await engine.handle({ ...textFrom(OPENID, '1', Math.floor(Date.now() / 1000)) });
    expect(answer).toMatchObject({ reply: text('已确认'), outcome: 'ended', dialog: 'confirm-order' });
  });
});
