/**
 * The push API over HTTP (supertest against a small Express app mounting the handler): keys,
 * validation of every body kind, idempotency, the rate limit, dialog pushes through a real engine
 * on the in-memory store, push statuses, and what is logged.
 */
import express from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineDialog, definePushDialog } from '../../src/dialog/dialog.js';
import { DialogEngine } from '../../src/dialog/engine.js';
import { createRouter } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { createPushApi, type PushApiOptions } from '../../src/http/push-api.js';
import type { ApiKey } from '../../src/push/api-keys.js';
import { pushIdFor } from '../../src/push/push-service.js';
import { image, music, news, text, video, voice } from '../../src/wechat/replies.js';
import { ACCOUNT, textFrom } from '../support/messages.js';
import { FakeQueue, RecordingLogger, RecordingOutbox } from './support.js';

const ORDERS_KEY = 'orders-key-0123456789abcdef';
const BILLING_KEY = 'billing/key+0123456789ABCDEF=';
const KEYS: ApiKey[] = [
  { service: 'orders', key: ORDERS_KEY },
  { service: 'billing', key: BILLING_KEY },
];
const OPENID = 'oUser000000000000000000000001';
const ORDERS = `Bearer ${ORDERS_KEY}`;
const BILLING = `Bearer ${BILLING_KEY}`;

const Order = z.object({ orderId: z.string(), total: z.number().positive() });
const confirmOrder = definePushDialog('confirm-order', Order, function* (first) {
  const answer = yield text(`确认订单 #${first.Input.orderId}（${first.Input.total} 元）？回复 1 确认，2 取消`);
  const content = answer.MsgType === 'text' ? answer.Content : '';
  return text(content === '1' ? `订单 #${first.Input.orderId} 已确认` : `订单 #${first.Input.orderId} 已取消`);
});
const chat = defineDialog('chat', function* () {
  const next = yield text('chat started');
  return text(`chat got ${next.MsgType === 'text' ? next.Content : next.MsgType}`);
});
/** A push dialog whose first step sends nothing: it waits for the user's message. */
const listen = definePushDialog('listen', z.object({}), function* () {
  const heard = yield undefined;
  return text(`heard ${heard.MsgType}`);
});
const router = createRouter({ routes: [{ match: { text: 'chat' }, dialog: chat }], fallback: null, pushed: [confirmOrder, listen] });

describe('the push API', () => {
  let queue: FakeQueue;
  let outbox: RecordingOutbox;
  let store: MemoryStore;
  let engine: DialogEngine;
  let logger: RecordingLogger;

  /** An app with the push API at the root, then a host route and a host 404. */
  function appWith(overrides: Partial<PushApiOptions> = {}): express.Express {
    const app = express();
    app.use(createPushApi({ keys: KEYS, queue, engine, router, account: ACCOUNT, logger, ...overrides }));
    app.get('/orders/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    app.use((_req, res) => {
      res.status(404).send('host 404');
    });
    return app;
  }

  beforeEach(() => {
    queue = new FakeQueue();
    outbox = new RecordingOutbox(queue);
    store = new MemoryStore({ sweepIntervalMs: 0 });
    engine = new DialogEngine({ router, store, outbox });
    logger = new RecordingLogger();
  });
  afterEach(async () => {
    await store.close();
  });

  describe('keys', () => {
    it('401 without a key, with a wrong key or another scheme; nothing is queued and the body is not needed', async () => {
      const app = appWith();
      const body = { openid: OPENID, text: 'hi' };
      const none = await request(app).post('/push').send(body);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer realm="push"$/);
      expect(none.body).toEqual({ error: 'an API key is required: Authorization: Bearer <key>' });
      for (const authorization of [`Bearer ${ORDERS_KEY}x`, `Bearer ${ORDERS_KEY.slice(0, -1)}`, `Basic ${ORDERS_KEY}`, 'Bearer', `Token ${ORDERS_KEY}`]) {
        const wrong = await request(app).post('/push').set('Authorization', authorization).send(body);
        expect(wrong.status, authorization).toBe(401);
        expect(wrong.headers['www-authenticate']).toMatch(/^Bearer realm="push", error="invalid_token"$/);
        expect(wrong.body).toEqual({ error: 'invalid API key' });
      }
      expect((await request(app).get(`/push/${pushIdFor('orders')}`)).status).toBe(401);
      expect(queue.enqueued).toEqual([]);
    });

    it('the scheme is case-insensitive; each key is its own service', async () => {
      const app = appWith();
      const res = await request(app).post('/push').set('Authorization', `bearer ${BILLING_KEY}`).send({ openid: OPENID, text: 'hi' });
      expect(res.status).toBe(202);
      expect(queue.enqueued[0]?.push).toEqual({ id: res.body.id, service: 'billing' });
    });

    it("a service cannot read another service's push: 404, as for an unknown id", async () => {
      const app = appWith();
      const { body } = await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' });
      expect((await request(app).get(`/push/${body.id}`).set('Authorization', ORDERS)).status).toBe(200);
      const other = await request(app).get(`/push/${body.id}`).set('Authorization', BILLING);
      expect(other.status).toBe(404);
      expect(other.body).toEqual({ error: expect.stringMatching(/^no such push/) });
      const unknown = await request(app).get(`/push/${pushIdFor('orders')}`).set('Authorization', ORDERS);
      expect(unknown.status).toBe(404);
      expect(unknown.body).toEqual(other.body);
    });

    it('never logs a key', async () => {
      const app = appWith();
      await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' });
      await request(app).post('/push').set('Authorization', `Bearer ${ORDERS_KEY}-wrong`).send({ openid: OPENID, text: 'hi' });
      expect(logger.text()).not.toContain(ORDERS_KEY);
    });
  });

  describe('validation: 400 naming each bad field', () => {
    const bad: [string, unknown, { path: string; message: RegExp }[]][] = [
      ['not an object', [1, 2], [{ path: '', message: /must be a JSON object/ }]],
      ['no kind', { openid: OPENID }, [{ path: '', message: /exactly one of text, reply, template or dialog \(got none\)/ }]],
      ['two kinds', { openid: OPENID, text: 'a', template: { id: 'x', data: {} } }, [{ path: '', message: /got text and template/ }]],
      ['text: no openid', { text: 'hi' }, [{ path: 'openid', message: /^is required$/ }]],
      ['text: a bad openid', { openid: 'o:x', text: 'hi' }, [{ path: 'openid', message: /openid: 1 to 64 letters/ }]],
      ['text: empty', { openid: OPENID, text: '' }, [{ path: 'text', message: /must not be empty/ }]],
      ['text: too long', { openid: OPENID, text: '字'.repeat(683) }, [{ path: 'text', message: /at most 2048 bytes/ }]],
      ['text: not a string', { openid: OPENID, text: 5 }, [{ path: 'text', message: /^must be a string$/ }]],
      ['text: an unknown field', { openid: OPENID, text: 'hi', priority: 1 }, [{ path: 'priority', message: /is not a known field/ }]],
      ['text: ifActive without dialog', { openid: OPENID, text: 'hi', ifActive: 'interrupt' }, [{ path: 'ifActive', message: /only allowed with dialog/ }]],
      ['reply: an unknown msgtype', { openid: OPENID, reply: { msgtype: 'mpnews', mpnews: { media_id: 'm' } } }, [{ path: 'reply.msgtype', message: /text, image, voice, video, music or news/ }]],
      ['reply: touser', { openid: OPENID, reply: { touser: OPENID, msgtype: 'text', text: { content: 'hi' } } }, [{ path: 'reply.touser', message: /the recipient is the push's openid/ }]],
      ['reply: text without content', { openid: OPENID, reply: { msgtype: 'text', text: {} } }, [{ path: 'reply.text.content', message: /^is required$/ }]],
      ['reply: image with an empty media_id', { openid: OPENID, reply: { msgtype: 'image', image: { media_id: '' } } }, [{ path: 'reply.image.media_id', message: /must not be empty/ }]],
      ['reply: voice without its object', { openid: OPENID, reply: { msgtype: 'voice' } }, [{ path: 'reply.voice', message: /^is required$/ }]],
      ['reply: video with a thumb_media_id', { openid: OPENID, reply: { msgtype: 'video', video: { media_id: 'v', thumb_media_id: 't' } } }, [{ path: 'reply.video.thumb_media_id', message: /not supported/ }]],
      ['reply: music without thumb_media_id, with a bad url', { openid: OPENID, reply: { msgtype: 'music', music: { musicurl: 'ftp://x' } } }, [
        { path: 'reply.music.musicurl', message: /http:\/\/ or https:\/\/ URL/ },
        { path: 'reply.music.thumb_media_id', message: /^is required$/ },
      ]],
      ['reply: news with a bad url', { openid: OPENID, reply: { msgtype: 'news', news: { articles: [{ title: 'T', url: 'javascript:alert(1)' }] } } }, [
        { path: 'reply.news.articles.0.url', message: /http:\/\/ or https:\/\/ URL/ },
      ]],
      ['reply: news with two articles', { openid: OPENID, reply: { msgtype: 'news', news: { articles: [{ title: 'A', url: 'https://a.example' }, { title: 'B', url: 'https://b.example' }] } } }, [
        { path: 'reply.news.articles', message: /45008/ },
      ]],
      ['template: bad id, field name, colour, value, url', { openid: OPENID, template: { id: 'a b', data: { 'bad name': 'x', first: { value: 'v', color: 'red' }, n: 5 }, url: 'x' } }, [
        { path: 'template.id', message: /template_id/ },
        { path: 'template.data.bad name', message: /field name of the template/ },
        { path: 'template.data.first.color', message: /#173177/ },
        { path: 'template.data.n', message: /a string or \{ "value", "color"\? \}/ },
        { path: 'template.url', message: /http:\/\/ or https:\/\/ URL/ },
      ]],
      ['template: no data', { openid: OPENID, template: { id: 'tpl' } }, [{ path: 'template.data', message: /^is required$/ }]],
      ['dialog: bad ifActive', { openid: OPENID, dialog: 'confirm-order', input: { orderId: '1', total: 1 }, ifActive: 'queue' }, [{ path: 'ifActive', message: /refuse .* or interrupt/ }]],
      ['dialog: not a string', { openid: OPENID, dialog: 7 }, [{ path: 'dialog', message: /^must be a string$/ }]],
    ];

    it.each(bad)('%s', async (_what, body, issues) => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send(body as object);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'invalid push', issues: issues.map(({ path, message }) => ({ path, message: expect.stringMatching(message) })) });
      expect(queue.enqueued).toEqual([]);
      expect(outbox.prepared).toEqual([]);
    });

    it('a bad Idempotency-Key is named', async () => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'x'.repeat(256)).send({ openid: OPENID, text: 'hi' });
      expect(res.status).toBe(400);
      expect(res.body.issues).toEqual([{ path: 'Idempotency-Key', message: expect.stringMatching(/1 to 255 printable/) }]);
    });

    it('415 for a body that is not JSON, 400 for JSON that does not parse (not echoed), 413 over the limit', async () => {
      const app = appWith({ bodyLimitBytes: 1024 });
      const form = await request(app).post('/push').set('Authorization', ORDERS).type('form').send('openid=x&text=y');
      expect(form.status).toBe(415);
      expect(form.body).toEqual({ error: expect.stringMatching(/Content-Type: application\/json/) });
      const latin1 = await request(app).post('/push').set('Authorization', ORDERS).set('Content-Type', 'application/json; charset=latin1').send('{}');
      expect(latin1.status).toBe(415);
      const broken = await request(app).post('/push').set('Authorization', ORDERS).set('Content-Type', 'application/json').send('{"openid": "secret-ish", ');
      expect(broken.status).toBe(400);
      expect(broken.body).toEqual({ error: 'the body is not valid JSON' });
      const big = await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'x'.repeat(2000) });
      expect(big.status).toBe(413);
      expect(big.body).toEqual({ error: 'the body is larger than 1024 bytes' });
      expect(queue.enqueued).toEqual([]);
    });
  });

  describe('message pushes', () => {
    it('a text push: 202 with a push id and Location, queued once as a text reply, logged with a masked openid', async () => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: '您的订单已发货' });
      expect(res.status).toBe(202);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.body).toEqual({ id: expect.stringMatching(/^p_[A-Za-z0-9_-]{22,}$/), status: 'queued' });
      expect(res.headers['location']).toBe(`/push/${res.body.id}`);
      expect(queue.enqueued).toEqual([{ id: res.body.id, openid: OPENID, message: { kind: 'reply', reply: text('您的订单已发货') }, push: { id: res.body.id, service: 'orders' } }]);
      const line = logger.lines.find((l) => l.message === 'push accepted');
      expect(line?.fields).toEqual({ service: 'orders', pushId: res.body.id, kind: 'text', openid: 'oUser0…0001', repeated: false });
      expect(logger.text()).not.toContain(OPENID);
      expect(logger.text()).not.toContain('您的订单已发货');
    });

    it('two pushes without a key get two ids', async () => {
      const app = appWith();
      const a = await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' });
      const b = await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' });
      expect(a.body.id).not.toBe(b.body.id);
      expect(queue.enqueued).toHaveLength(2);
    });

    it.each([
      ['text', { msgtype: 'text', text: { content: '你好' } }, text('你好')],
      ['image', { msgtype: 'image', image: { media_id: 'MEDIA_1' } }, image('MEDIA_1')],
      ['voice', { msgtype: 'voice', voice: { media_id: 'MEDIA_2' } }, voice('MEDIA_2')],
      ['video', { msgtype: 'video', video: { media_id: 'MEDIA_3', title: '标题' } }, video('MEDIA_3', { Title: '标题' })],
      ['music', { msgtype: 'music', music: { title: '歌', musicurl: 'https://m.example/a.mp3', hqmusicurl: 'https://m.example/a.flac', thumb_media_id: 'THUMB' } },
        music({ Title: '歌', MusicUrl: 'https://m.example/a.mp3', HQMusicUrl: 'https://m.example/a.flac', ThumbMediaId: 'THUMB' })],
      ['news', { msgtype: 'news', news: { articles: [{ title: 'T', description: 'D', url: 'https://example.com', picurl: 'https://example.com/p.jpg' }] } },
        news([{ Title: 'T', Description: 'D', Url: 'https://example.com', PicUrl: 'https://example.com/p.jpg' }])],
    ])('a %s reply in the customer-service JSON becomes that reply', async (_type, reply, expected) => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, reply });
      expect(res.status).toBe(202);
      expect(queue.enqueued[0]?.message).toEqual({ kind: 'reply', reply: expected });
    });

    it('a template push is queued as a template message', async () => {
      const template = { id: 'TPL_order-shipped', data: { first: '已发货', keyword1: { value: '#123', color: '#173177' } }, url: 'https://shop.example/o/123' };
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, template });
      expect(res.status).toBe(202);
      expect(queue.enqueued[0]?.message).toEqual({ kind: 'template', template });
      expect(logger.lines.find((l) => l.message === 'push accepted')?.fields['kind']).toBe('template');
    });

    it('the same Idempotency-Key twice: the same id, queued once, the second marked replayed with the current status', async () => {
      const app = appWith();
      const send = () => request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'order-123-shipped').send({ openid: OPENID, text: 'hi' });
      const first = await send();
      expect(first.status).toBe(202);
      expect(first.body).toEqual({ id: pushIdFor('orders', 'order-123-shipped'), status: 'queued' });
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      queue.settle(first.body.id, { status: 'sent' });
      const second = await send();
      expect(second.status).toBe(202);
      expect(second.body).toEqual({ id: first.body.id, status: 'sent' });
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(queue.enqueued).toHaveLength(1);
      expect(logger.lines.filter((l) => l.message.startsWith('push repeated'))).toHaveLength(1);
    });

    it('the same Idempotency-Key twice at once: one delivery (the queue dedupes the id)', async () => {
      const app = appWith();
      const send = () => request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'k-1').send({ openid: OPENID, text: 'hi' });
      const [a, b] = await Promise.all([send(), send()]);
      expect(a.body.id).toBe(b.body.id);
      expect(queue.enqueued).toHaveLength(1);
    });

    it('another service with the same Idempotency-Key gets another id, and its own push', async () => {
      const app = appWith();
      const a = await request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'same').send({ openid: OPENID, text: 'hi' });
      const b = await request(app).post('/push').set('Authorization', BILLING).set('Idempotency-Key', 'same').send({ openid: OPENID, text: 'hi' });
      expect(a.body.id).not.toBe(b.body.id);
      expect(queue.enqueued.map((d) => d.push?.service)).toEqual(['orders', 'billing']);
    });

    it('a retry of a push whose first enqueue failed is queued (a status alone never answers for a job)', async () => {
      const app = appWith();
      const id = pushIdFor('orders', 'retry-me');
      queue.record({ id, service: 'orders' }); // what a queue that wrote the status before a failed add left behind
      const res = await request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'retry-me').send({ openid: OPENID, text: 'hi' });
      expect(res.status).toBe(202);
      expect(res.body.id).toBe(id);
      expect(queue.enqueued.map((d) => d.id)).toEqual([id]);
    });

    it('503 with Retry-After when the queue fails; nothing leaks', async () => {
      queue.failure = new Error('READONLY You cannot write against a read only replica. at /srv/app/node_modules/ioredis');
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body).toEqual({ error: expect.stringMatching(/delivery queue is unavailable/) });
      expect(res.text).not.toContain('READONLY');
      expect(logger.lines.some((l) => l.level === 'error')).toBe(true);
    });
  });

  describe('the rate limit', () => {
    it('429 with Retry-After in whole seconds past the limit of a key; other keys and status reads are not limited', async () => {
      const app = appWith({ ratePerMinute: 2 });
      const push = (authorization: string) => request(app).post('/push').set('Authorization', authorization).send({ openid: OPENID, text: 'hi' });
      expect((await push(ORDERS)).status).toBe(202);
      const second = await push(ORDERS);
      expect(second.status).toBe(202);
      const third = await push(ORDERS);
      expect(third.status).toBe(429);
      expect(third.headers['retry-after']).toMatch(/^\d+$/);
      expect(Number(third.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(third.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(third.body).toEqual({ error: expect.stringMatching(/too many pushes: at most 2 a minute/) });
      expect((await push(BILLING)).status).toBe(202);
      expect((await request(app).get(`/push/${second.body.id}`).set('Authorization', ORDERS)).status).toBe(200);
      expect(queue.enqueued).toHaveLength(3);
    });
  });

  describe('dialog pushes', () => {
    const order = { openid: OPENID, dialog: 'confirm-order', input: { orderId: '123', total: 88 } };

    it('bad input: 400 naming input.<field>; nothing started', async () => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ ...order, input: { orderId: 123, total: -1 } });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid push');
      expect(res.body.issues.map((i: { path: string }) => i.path)).toEqual(['input.orderId', 'input.total']);
      const none = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, dialog: 'confirm-order' });
      expect(none.status).toBe(400);
      expect(none.body.issues).toEqual([{ path: 'input', message: expect.any(String) }]);
      expect(await store.load({ account: ACCOUNT, openid: OPENID })).toBeUndefined();
      expect(outbox.prepared).toEqual([]);
    });

    it('a first step that sends nothing: 202 sent, the status reads sent, and the same Idempotency-Key starts nothing again', async () => {
      const app = appWith();
      const push = () => request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'listen-1').send({ openid: OPENID, dialog: 'listen', input: {} });
      const first = await push();
      expect(first.status).toBe(202);
      expect(first.body).toEqual({ id: first.body.id, status: 'sent' });
      expect((await request(app).get(`/push/${first.body.id}`).set('Authorization', ORDERS)).body).toMatchObject({ status: 'sent' });
      await store.delete({ account: ACCOUNT, openid: OPENID }); // even once the dialog is gone
      const again = await push();
      expect(again.body).toEqual({ id: first.body.id, status: 'sent' });
      expect(await store.load({ account: ACCOUNT, openid: OPENID })).toBeUndefined();
    });

    it('an unknown dialog: 400 naming dialog', async () => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send({ ...order, dialog: 'chat' });
      expect(res.status).toBe(400);
      expect(res.body.issues).toEqual([{ path: 'dialog', message: expect.stringMatching(/no push dialog is named "chat"/) }]);
    });

    it("202: the dialog's state exists, its first reply is queued for the push, the user's next message continues it", async () => {
      const res = await request(appWith()).post('/push').set('Authorization', ORDERS).send(order);
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ id: expect.stringMatching(/^p_/), status: 'queued' });
      expect((await store.load({ account: ACCOUNT, openid: OPENID }))?.dialog).toBe('confirm-order');
      expect(outbox.prepared).toEqual([
        expect.objectContaining({ reply: text('确认订单 #123（88 元）？回复 1 确认，2 取消'), push: { id: res.body.id, service: 'orders' } }),
      ]);
      expect(outbox.released).toEqual([outbox.prepared[0]?.id]);
      expect(logger.lines.find((l) => l.message === 'push accepted')?.fields).toMatchObject({ kind: 'dialog', dialog: 'confirm-order', openid: 'oUser0…0001' });
      expect(await engine.handle(textFrom(OPENID, '1', 1_700_000_100))).toMatchObject({ reply: text('订单 #123 已确认'), outcome: 'ended' });
      const status = await request(appWith()).get(`/push/${res.body.id}`).set('Authorization', ORDERS);
      expect(status.body).toMatchObject({ id: res.body.id, status: 'queued' });
    });

    it('the same Idempotency-Key twice: the same id, one first reply', async () => {
      const app = appWith();
      const send = () => request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'confirm-123').send(order);
      const first = await send();
      const second = await send();
      expect(second.status).toBe(202);
      expect(second.body.id).toBe(first.body.id);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(outbox.prepared).toHaveLength(1);
    });

    it('a repeated push the engine remembers (no status kept) is still not started twice', async () => {
      const app = appWith();
      const send = () => request(app).post('/push').set('Authorization', ORDERS).set('Idempotency-Key', 'confirm-456').send(order);
      const first = await send();
      queue.statuses.clear();
      const second = await send();
      expect(second.status).toBe(202);
      expect(second.body).toEqual({ id: first.body.id, status: 'queued' });
      expect(outbox.prepared).toHaveLength(1);
    });

    it('a user in another dialog: 409 by default (that dialog untouched); interrupt: 202 and the push dialog replaces it', async () => {
      const app = appWith();
      await engine.handle(textFrom(OPENID, 'chat', 1_700_000_000));
      const refused = await request(app).post('/push').set('Authorization', ORDERS).send(order);
      expect(refused.status).toBe(409);
      expect(refused.body).toEqual({ error: 'the user is in another dialog', dialog: 'chat' });
      expect((await store.load({ account: ACCOUNT, openid: OPENID }))?.dialog).toBe('chat');
      expect(outbox.prepared).toEqual([]);
      const interrupting = await request(app).post('/push').set('Authorization', ORDERS).send({ ...order, ifActive: 'interrupt' });
      expect(interrupting.status).toBe(202);
      expect((await store.load({ account: ACCOUNT, openid: OPENID }))?.dialog).toBe('confirm-order');
    });

    it('501 saying to set WECHAT_ACCOUNT when the server has no account; message pushes still work', async () => {
      const app = appWith({ account: undefined });
      const res = await request(app).post('/push').set('Authorization', ORDERS).send(order);
      expect(res.status).toBe(501);
      expect(res.body).toEqual({ error: expect.stringMatching(/set WECHAT_ACCOUNT/) });
      expect((await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' })).status).toBe(202);
    });

    it('a dialog that throws on its first message: 500 without details; nothing sent', async () => {
      const broken = definePushDialog('broken', z.object({}), function* () {
        throw new Error('secret internals at /srv/app/dialogs/broken.ts:3');
      });
      const brokenRouter = createRouter({ routes: [], fallback: null, pushed: [broken] });
      const brokenEngine = new DialogEngine({ router: brokenRouter, store, outbox });
      const res = await request(appWith({ engine: brokenEngine, router: brokenRouter })).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, dialog: 'broken', input: {} });
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: expect.stringMatching(/the dialog failed/) });
      expect(res.text).not.toContain('secret internals');
      expect(outbox.prepared).toEqual([]);
    });
  });

  describe('push statuses', () => {
    it('GET <path>/<id>: queued, then sent, then failed with errcode and errmsg; ISO times', async () => {
      const app = appWith();
      const { body } = await request(app).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'hi' });
      const queued = await request(app).get(`/push/${body.id}`).set('Authorization', ORDERS);
      expect(queued.status).toBe(200);
      expect(queued.headers['cache-control']).toBe('no-store');
      expect(queued.body).toEqual({ id: body.id, status: 'queued', createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/), updatedAt: queued.body.createdAt });
      queue.settle(body.id, { status: 'failed', errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' });
      const failed = await request(app).get(`/push/${body.id}`).set('Authorization', ORDERS);
      expect(failed.body).toMatchObject({ status: 'failed', errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' });
      expect(Date.parse(failed.body.updatedAt)).toBeGreaterThan(Date.parse(failed.body.createdAt));
    });

    it('an id that is not a push id: 404 without asking the queue', async () => {
      queue.failure = new Error('must not be called');
      const res = await request(appWith()).get('/push/not-an-id').set('Authorization', ORDERS);
      expect(res.status).toBe(404);
    });
  });

  describe('routing', () => {
    it('other paths pass on to the host; other methods get 405 with Allow', async () => {
      const app = appWith();
      expect((await request(app).get('/orders/7')).body).toEqual({ id: '7' });
      expect((await request(app).get('/pushy')).text).toBe('host 404');
      expect((await request(app).get('/push/a/b')).text).toBe('host 404');
      const get = await request(app).get('/push').set('Authorization', ORDERS);
      expect(get.status).toBe(405);
      expect(get.headers['allow']).toBe('POST');
      const del = await request(app).delete(`/push/${pushIdFor('orders')}`).set('Authorization', ORDERS);
      expect(del.status).toBe(405);
      expect(del.headers['allow']).toBe('GET');
    });

    it('works mounted at its path, at a custom path, and after express.json()', async () => {
      const mounted = express().use('/push', createPushApi({ keys: KEYS, queue, logger }));
      expect((await request(mounted).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'a' })).status).toBe(202);
      const custom = express().use(createPushApi({ keys: KEYS, queue, logger, path: '/api/v1/push' }));
      const res = await request(custom).post('/api/v1/push/').set('Authorization', ORDERS).send({ openid: OPENID, text: 'b' });
      expect(res.status).toBe(202);
      expect(res.headers['location']).toBe(`/api/v1/push/${res.body.id}`);
      const parsed = express().use(express.json()).use(createPushApi({ keys: KEYS, queue, logger }));
      expect((await request(parsed).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, text: 'c' })).status).toBe(202);
      expect(queue.enqueued.map((d) => (d.message.kind === 'reply' && d.message.reply.MsgType === 'text' ? d.message.reply.Content : ''))).toEqual(['a', 'b', 'c']);
    });

    it('without next, another path gets a JSON 404', async () => {
      const api = createPushApi({ keys: KEYS, queue, logger });
      const res = await request((req: Parameters<typeof api>[0], res: Parameters<typeof api>[1]) => api(req, res)).get('/elsewhere');
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: 'not found' });
    });

    it('a failing status read: 503 without details', async () => {
      queue.pushStatus = async () => {
        throw new TypeError('boom at Object.<anonymous> (/srv/x.ts:1:1)');
      };
      const app = appWith();
      const res = await request(app).get(`/push/${pushIdFor('orders')}`).set('Authorization', ORDERS);
      expect(res.status).toBe(503);
      expect(res.text).not.toContain('boom');
    });

    it('an unexpected error: 500 internal error, logged, no stack', async () => {
      const throwing = { ...router, pushDialog: () => { throw new TypeError('boom at Object.<anonymous> (/srv/x.ts:1:1)'); } };
      const res = await request(appWith({ router: throwing })).post('/push').set('Authorization', ORDERS).send({ openid: OPENID, dialog: 'x' });
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: 'internal error' });
      expect(res.text).not.toContain('boom');
      expect(logger.lines.some((l) => l.level === 'error' && l.message.startsWith('unexpected error'))).toBe(true);
    });
  });
});
