/**
 * The order confirmation a push starts: the question arrives as the first reply, the user's answer
 * continues the dialog, and the order service hears the decision once.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { text } from '../src/index.js';
import { createConversation } from '../src/testing/index.js';
import { router } from './router.js';

describe('order-confirmation (started by a push)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
    server = undefined;
  });

  it('asks, and a 1 confirms', async () => {
    const chat = createConversation({ router });
    expect(await chat.push('order-confirmation', { orderId: '123', total: 88.5 })).toEqual(text('确认订单 #123（88.50 元）？回复 1 确认，2 取消'));
    expect(await chat.activeDialog()).toBe('order-confirmation');
    expect(await chat.say('１')).toEqual(text('订单 #123 已确认，感谢！'));
    expect(await chat.activeDialog()).toBeUndefined();
    await chat.close();
  });

  it('asks once more on an unclear answer, then a 2 cancels', async () => {
    const chat = createConversation({ router });
    await chat.push('order-confirmation', { orderId: 'A7', total: 5 });
    expect(await chat.say('嗯？')).toEqual(text('请回复 1 确认订单，或回复 2 取消订单'));
    expect(await chat.say(' 2 ')).toEqual(text('订单 #A7 已取消。'));
    await chat.close();
  });

  it('refuses an input of the wrong shape, naming the field', async () => {
    const chat = createConversation({ router });
    await expect(chat.push('order-confirmation', { orderId: '123', total: 'lots' })).rejects.toThrow(/total/);
    await chat.close();
  });

  it('does not cut into a dialog the user is in, unless told to', async () => {
    const chat = createConversation({ router });
    await chat.say('累加器');
    await expect(chat.push('order-confirmation', { orderId: '1', total: 1 })).rejects.toThrow(/accumulator/);
    expect(await chat.push('order-confirmation', { orderId: '1', total: 1 }, { ifActive: 'interrupt' })).toEqual(text('确认订单 #1（1.00 元）？回复 1 确认，2 取消'));
    await chat.close();
  });

  it('posts the decision to the callback once, also when WeChat retries the answer', async () => {
    const calls: string[] = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        calls.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const callbackUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/orders/123/decision`;
    const chat = createConversation({ router });
    await chat.push('order-confirmation', { orderId: '123', total: 1, callbackUrl });
    expect(await chat.say('1')).toEqual(text('订单 #123 已确认，感谢！'));
    expect(await chat.retryLast()).toEqual(text('订单 #123 已确认，感谢！'));
    expect(calls).toEqual([JSON.stringify({ orderId: '123', confirmed: true })]);
    await chat.close();
  });
});
