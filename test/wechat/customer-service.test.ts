import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  fetchStableAccessToken,
  sendCustomMessage,
  toCustomMessage,
  WeChatApiError,
  type Fetch,
} from '../../src/wechat/customer-service.js';
import { image, music, news, text, transferCustomerService, video, voice } from '../../src/wechat/replies.js';
import { startFakeWeChatApi, type FakeWeChatApi } from '../support/fake-wechat-api.js';

const OPENID = 'oUser000000000000000000000001';

describe('toCustomMessage: a passive reply as a customer-service message (客服消息 JSON, protocol README §5.1)', () => {
  it.each([
    ['text', text('你好'), { msgtype: 'text', text: { content: '你好' } }],
    ['image', image('MEDIA_ID'), { msgtype: 'image', image: { media_id: 'MEDIA_ID' } }],
    ['voice', voice('MEDIA_ID'), { msgtype: 'voice', voice: { media_id: 'MEDIA_ID' } }],
    ['video', video('MEDIA_ID', { Title: 'T', Description: 'D' }), { msgtype: 'video', video: { media_id: 'MEDIA_ID', title: 'T', description: 'D' } }],
    ['video without details', video('MEDIA_ID'), { msgtype: 'video', video: { media_id: 'MEDIA_ID' } }],
    [
      'music',
      music({ Title: 'T', Description: 'D', MusicUrl: 'https://m', HQMusicUrl: 'https://hq', ThumbMediaId: 'THUMB' }),
      { msgtype: 'music', music: { title: 'T', description: 'D', musicurl: 'https://m', hqmusicurl: 'https://hq', thumb_media_id: 'THUMB' } },
    ],
    [
      'news (only the first article: the API refuses more, 45008)',
      news([
        { Title: 'T1', Description: 'D1', PicUrl: 'https://p1', Url: 'https://u1' },
        { Title: 'T2', Description: 'D2', PicUrl: 'https://p2', Url: 'https://u2' },
      ]),
      { msgtype: 'news', news: { articles: [{ title: 'T1', description: 'D1', url: 'https://u1', picurl: 'https://p1' }] } },
    ],
  ])('%s', (_name, reply, expected) => {
    expect(toCustomMessage(OPENID, reply)).toStrictEqual({ touser: OPENID, ...expected });
  });

  it('transfer_customer_service cannot be sent: undefined', () => {
    expect(toCustomMessage(OPENID, transferCustomerService())).toBeUndefined();
  });
});

describe('the API calls, against a fake WeChat API on 127.0.0.1', () => {
  let api: FakeWeChatApi;
  beforeAll(async () => {
    api = await startFakeWeChatApi();
  });
  afterAll(() => api.close());
  beforeEach(() => {
    api.sendErrors.length = 0;
  });

  it('fetchStableAccessToken posts client_credential with force_refresh false and returns the token', async () => {
    const token = await fetchStableAccessToken('wx0123456789abcdef', 'SECRET', { baseUrl: api.url });
    expect(token).toEqual({ accessToken: expect.stringMatching(/^ACCESS_TOKEN_\d+$/), expiresIn: 7200 });
    expect(api.tokenRequests.at(-1)).toEqual({ grant_type: 'client_credential', appid: 'wx0123456789abcdef', secret: 'SECRET', force_refresh: false });
  });

  it('sendCustomMessage posts the JSON with the access_token in the query; Chinese stays UTF-8', async () => {
    let raw = '';
    const spy: Fetch = async (url, init) => {
      raw = init.body;
      return fetch(url, init);
    };
    await sendCustomMessage('TOKEN/+=', toCustomMessage(OPENID, text('你好'))!, { baseUrl: api.url, fetch: spy });
    expect(api.sent.at(-1)).toEqual({ accessToken: 'TOKEN/+=', body: { touser: OPENID, msgtype: 'text', text: { content: '你好' } } });
    expect(raw).toContain('你好');
  });

  it.each([
    [40001, 'token'],
    [40014, 'token'],
    [42001, 'token'],
    [45015, 'refused'],
    [45047, 'refused'],
    [40003, 'refused'],
    [-1, 'transient'],
    [45009, 'transient'],
    [45011, 'transient'],
    [48001, 'config'],
    [40164, 'config'],
  ] as const)('errcode %s is a WeChatApiError of kind %s', async (errcode, kind) => {
    api.sendErrors.push(errcode);
    const err = await sendCustomMessage('T', toCustomMessage(OPENID, text('x'))!, { baseUrl: api.url }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeChatApiError);
    expect(err).toMatchObject({ kind, errcode, code: 'WECHAT_API', errmsg: `fake error ${errcode}` });
  });

  it('no answer, HTTP 5xx or a body that is not JSON are transient', async () => {
    const options = (status: number, body: string): { fetch: Fetch } => ({
      fetch: async () => new Response(body, { status }),
    });
    const message = toCustomMessage(OPENID, text('x'))!;
    await expect(sendCustomMessage('T', message, options(502, 'bad gateway'))).rejects.toMatchObject({ kind: 'transient' });
    await expect(sendCustomMessage('T', message, options(200, 'not json'))).rejects.toMatchObject({ kind: 'transient' });
    await expect(sendCustomMessage('T', message, { baseUrl: 'http://127.0.0.1:1' })).rejects.toMatchObject({ kind: 'transient' });
  });

  it('a token answer without access_token is transient', async () => {
    const fetchImpl: Fetch = async () => new Response('{"expires_in":7200}', { status: 200 });
    await expect(fetchStableAccessToken('wx', 's', { fetch: fetchImpl })).rejects.toMatchObject({ kind: 'transient' });
  });
});
