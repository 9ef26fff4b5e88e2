/**
 * A dialog's test sits next to it (`dialogs/*.test.ts` is picked up by `npm test`): the real engine
 * and router, in memory, one user, each reply checked.
 */
import { describe, expect, it } from 'vitest';
import { text } from '../src/index.js';
import { createConversation } from '../src/testing/index.js';
import { router } from './router.js';

describe('accumulator', () => {
  it('adds up the numbers it asked for', async () => {
    const chat = createConversation({ router });
    expect(await chat.say('累加器')).toEqual(text('您需要累加几个数字？'));
    expect(await chat.say('2')).toEqual(text('请输入第1个数字, 目前累加和:0'));
    expect(await chat.say('40')).toEqual(text('请输入第2个数字, 目前累加和:40'));
    expect(await chat.say('２')).toEqual(text('累加结束，累加和: 42')); // full-width digits count too
    await chat.close();
  });

  it('a WeChat retry of the last message gets the same reply and changes nothing', async () => {
    const chat = createConversation({ router });
    await chat.say('累加器');
    expect(await chat.say('1')).toEqual(text('请输入第1个数字, 目前累加和:0'));
    expect(await chat.retryLast()).toEqual(text('请输入第1个数字, 目前累加和:0'));
    expect(await chat.say('5')).toEqual(text('累加结束，累加和: 5'));
    await chat.close();
  });

  it('ends on an answer that is not a number', async () => {
    const chat = createConversation({ router });
    await chat.say('累加器');
    expect(await chat.say('很多')).toEqual(text('输入不合法！我们需要一个整数，请输入"累加器"重新开启累加器'));
    expect(await chat.activeDialog()).toBeUndefined();
    await chat.close();
  });
});
