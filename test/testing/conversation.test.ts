import { afterEach, describe, expect, it } from 'vitest';
import { router as demoRouter } from '../../dialogs/router.js';
import { defineDialog } from '../../src/dialog/dialog.js';
import { createRouter } from '../../src/dialog/router.js';
import { ConversationError, createConversation, type Conversation } from '../../src/testing/conversation.js';
import { text } from '../../src/wechat/replies.js';

describe('createConversation: a dialog tested without HTTP', () => {
  let chat: Conversation | undefined;
  afterEach(async () => {
    await chat?.close();
  });

  it('holds the demo accumulator, reply by reply', async () => {
    chat = createConversation({ router: demoRouter });
    expect(await chat.say('累加器')).toEqual(text('您需要累加几个数字？'));
    expect(await chat.activeDialog()).toBe('accumulator');
    expect(await chat.say('2')).toEqual(text('请输入第1个数字, 目前累加和:0'));
    expect(await chat.say('40')).toEqual(text('请输入第2个数字, 目前累加和:40'));
    expect(await chat.say('2')).toEqual(text('累加结束，累加和: 42'));
    expect(await chat.activeDialog()).toBeUndefined();
  });

  it('events and other message types: subscribe, click, an image inside a dialog, a notification', async () => {
    chat = createConversation({ router: demoRouter });
    expect(await chat.subscribe('campaign42')).toMatchObject({ MsgType: 'text', Content: expect.stringMatching(/^感谢关注！/) });
    expect(await chat.click('V1001_MENU')).toMatchObject({ MsgType: 'text', Content: expect.stringContaining('wechat-dialog') });
    await chat.say('累加器');
    expect(await chat.send({ MsgType: 'image', PicUrl: 'http://example.invalid/p.jpg', MediaId: 'm' })).toEqual(
      text('输入不合法！我们需要一个整数，请输入"累加器"重新开启累加器'),
    );
    expect(await chat.send({ MsgType: 'event', Event: 'VIEW', EventKey: 'https://example.invalid/' })).toBeUndefined();
  });

  it('retryLast() is a WeChat retry: the same reply, and the dialog does not advance', async () => {
    chat = createConversation({ router: demoRouter });
    await chat.say('累加器');
    expect(await chat.say('2')).toEqual(text('请输入第1个数字, 目前累加和:0'));
    expect(await chat.retryLast()).toEqual(text('请输入第1个数字, 目前累加和:0'));
    expect((await chat.turn({ MsgType: 'text', Content: '5' })).outcome).toBe('continued');
    expect(await chat.say('6')).toEqual(text('累加结束，累加和: 11'));
  });

  it('a dialog that throws makes the call reject with its error, not the apology', async () => {
    const broken = defineDialog('broken', function* () {
      yield text('first');
      throw new TypeError('cannot read the order');
    });
    chat = createConversation({ router: createRouter({ routes: [], fallback: broken }) });
    expect(await chat.say('hi')).toEqual(text('first'));
    const err = await chat.say('again').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConversationError);
    expect((err as Error).message).toMatch(/cannot read the order/);
    expect((err as Error).cause).toBeInstanceOf(TypeError);
  });

  it('collects the warnings the server would log (a text over 2048 bytes), and none for the demo', async () => {
    const long = defineDialog('long', function* () {
      return text('字'.repeat(700));
    });
    chat = createConversation({ router: createRouter({ routes: [{ match: { text: 'long' }, dialog: long }], fallback: null }) });
    expect(await chat.say('short')).toBeUndefined();
    expect(chat.warnings).toEqual([]);
    await chat.say('long');
    expect(chat.warnings).toEqual(['the text reply is 2100 bytes (UTF-8): WeChat may not show a passive text over 2048 bytes']);
  });
});
