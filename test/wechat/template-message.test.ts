import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WeChatApiError, errorKindOf } from '../../src/wechat/api.js';
import { sendTemplateMessage, toTemplateMessageBody } from '../../src/wechat/template-message.js';
import { startFakeWeChatApi, type FakeWeChatApi } from '../support/fake-wechat-api.js';

const OPENID = 'oUser000000000000000000000001';

describe('toTemplateMessageBody: the JSON of 发送模板消息 (模板消息接口)', () => {
  it('a plain string field is its value; url and color appear only when given', () => {
    expect(toTemplateMessageBody(OPENID, { id: 'TPL', data: { first: '你好', amount: { value: '¥9', color: '#173177' }, note: { value: 'n' } } })).toStrictEqual({
      touser: OPENID,
      template_id: 'TPL',
      data: { first: { value: '你好' }, amount: { value: '¥9', color: '#173177' }, note: { value: 'n' } },
    });
    expect(toTemplateMessageBody(OPENID, { id: 'TPL', data: {}, url: 'https://example.com/o/1' }, 'r.abc')).toStrictEqual({
      touser: OPENID,
      template_id: 'TPL',
      url: 'https://example.com/o/1',
      client_msg_id: 'r.abc',
      data: {},
    });
  });
});

describe('sendTemplateMessage, against the fake WeChat API', () => {
  let api: FakeWeChatApi;
  beforeAll(async () => {
    api = await startFakeWeChatApi();
  });
  afterAll(() => api.close());
  beforeEach(() => {
    api.templateErrors.length = 0;
  });

  it('posts to /cgi-bin/message/template/send with the token in the query and returns the msgid', async () => {
    const msgid = await sendTemplateMessage('TOKEN/+=', OPENID, { id: 'TPL', data: { first: '订单已发货' } }, { baseUrl: api.url });
    expect(msgid).toEqual(expect.any(Number));
    expect(api.templates.at(-1)).toEqual({ accessToken: 'TOKEN/+=', body: { touser: OPENID, template_id: 'TPL', data: { first: { value: '订单已发货' } } } });
  });

  it.each([
    [43004, 'refused'],
    [43101, 'refused'],
    [40003, 'refused'],
    [40037, 'config'],
    [47001, 'config'],
    [-1, 'transient'],
    [45009, 'transient'],
    [42001, 'token'],
  ] as const)('errcode %s is a WeChatApiError of kind %s with errcode and errmsg', async (errcode, kind) => {
    api.templateErrors.push(errcode);
    const err = await sendTemplateMessage('T', OPENID, { id: 'TPL', data: {} }, { baseUrl: api.url }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeChatApiError);
    expect(err).toMatchObject({ kind, errcode, errmsg: `fake error ${errcode}` });
    expect(errorKindOf(errcode)).toBe(kind);
  });

  it('the access_token never reaches an error message', async () => {
    const err = await sendTemplateMessage('SECRET_TOKEN', OPENID, { id: 'TPL', data: {} }, { baseUrl: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'transient' });
    expect(String((err as Error).message)).not.toContain('SECRET_TOKEN');
  });
});
