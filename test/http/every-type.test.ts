/**
 * Every inbound message type and event, and every passive reply type, through the whole pipeline:
 * signed POST → parse → route → dialog → reply XML, checked field by field (issue 5).
 * Bodies are the protocol README's examples (§2.3, §2.4), sent from a fresh openid each.
 */
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineDialog } from '../../src/dialog/dialog.js';
import { createRouter, route } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import type { ClickEvent, InboundMessage, LocationSelectEvent, PicEvent } from '../../src/wechat/messages.js';
import { parseMessage } from '../../src/wechat/parser.js';
import { image, music, news, text, transferCustomerService, video, voice } from '../../src/wechat/replies.js';
import { SAFE_XML_PARSER_OPTIONS } from '../../src/wechat/xml.js';
import { ACCOUNT, serveDialogs, signedQuery, type TestServer } from '../support/http.js';
import { storeFactories, type StoreUnderTest } from '../support/stores.js';

/** Replies with the message it was opened with, as JSON: what the dialog saw, field by field. */
const echo = defineDialog('echo', function* (first) {
  return text(JSON.stringify(first));
});
/** Typed dialogs: they read nested fields without a check, because their routes narrow the message. */
const pictures = defineDialog('pictures', function* (first: PicEvent) {
  return text(`${first.Event} ${first.SendPicsInfo.Count}: ${first.SendPicsInfo.PicList.map((p) => p.PicMd5Sum).join(',')}`);
});
const place = defineDialog('place', function* (first: LocationSelectEvent) {
  return text(`${first.SendLocationInfo.Label} (${first.SendLocationInfo.Location_X}, ${first.SendLocationInfo.Location_Y})`);
});
const replies = defineDialog('replies', function* (first) {
  switch (first.MsgType === 'text' ? first.Content : '') {
    case 'image':
      return image('MEDIA_ID');
    case 'voice':
      return voice('MEDIA_ID');
    case 'video':
      return video('MEDIA_ID', { Title: '标题', Description: '描述' });
    case 'music':
      return music({ Title: '歌名', Description: '歌手', MusicUrl: 'https://example.com/a.mp3', HQMusicUrl: 'https://example.com/a-hq.mp3', ThumbMediaId: 'THUMB_MEDIA_ID' });
    case 'news':
      return news([
        { Title: '标题1', Description: '摘要1', PicUrl: 'https://example.com/1.jpg', Url: 'https://example.com/1' },
        { Title: '标题2', Description: '摘要2', PicUrl: 'https://example.com/2.jpg', Url: 'https://example.com/2' },
      ]);
    case 'kf':
      return transferCustomerService('agent1@gh_account');
    default:
      return transferCustomerService();
  }
});

const router = createRouter({
  routes: [
    route({ text: /^(image|voice|video|music|news|kf|kf-any)$/ }, replies),
    route({ event: 'pic_photo_or_album' }, pictures),
    route({ event: 'location_select' }, place),
    // Notification events reach a dialog only through a route that names them.
    ...(['unsubscribe', 'LOCATION', 'VIEW', 'view_miniprogram', 'TEMPLATESENDJOBFINISH', 'MASSSENDJOBFINISH'] as const).map((event) =>
      route({ event }, echo),
    ),
  ],
  fallback: echo,
});

const replyParser = new XMLParser({ ...SAFE_XML_PARSER_OPTIONS, isArray: (name) => name === 'item' });
let openids = 0;
const TO = `<ToUserName><![CDATA[${ACCOUNT}]]></ToUserName>`;
/** A push from a fresh openid, created now, with the given MsgType and extra elements. */
function push(msgType: string, inner: string): { openid: string; xml: string } {
  const openid = `oEveryType${String(++openids).padStart(18, '0')}`;
  const head = `${TO}<FromUserName><![CDATA[${openid}]]></FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime>`;
  return { openid, xml: `<xml>${head}<MsgType><![CDATA[${msgType}]]></MsgType>${inner}</xml>` };
}
const ev = (name: string, inner = ''): { openid: string; xml: string } => push('event', `<Event><![CDATA[${name}]]></Event>${inner}`);

describe('every message type, event and reply type over HTTP', () => {
  const store = new MemoryStore({ sweepIntervalMs: 0 });
  let server: TestServer;
  beforeAll(async () => {
    server = await serveDialogs(router, store);
  });
  afterAll(async () => {
    await server.close();
    await store.close();
  });

  /** POSTs a push and returns the reply XML as a tree (every value a string, `item` always a list). */
  async function send({ openid, xml }: { openid: string; xml: string }): Promise<Record<string, unknown>> {
    const response = await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: xml });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/xml/);
    const tree = replyParser.parse(await response.text()) as { xml: Record<string, unknown> };
    expect(tree.xml['ToUserName']).toBe(openid);
    expect(tree.xml['FromUserName']).toBe(ACCOUNT);
    expect(tree.xml['CreateTime']).toMatch(/^\d{10}$/);
    return tree.xml;
  }
  /** What the echo dialog saw: its reply's Content, as the message object. */
  async function seenBy(p: { openid: string; xml: string }): Promise<InboundMessage> {
    const reply = await send(p);
    expect(reply['MsgType']).toBe('text');
    const seen = JSON.parse(String(reply['Content'])) as InboundMessage;
    expect(seen).toStrictEqual(parseMessage(p.xml));
    return seen;
  }

  describe('messages (接收普通消息) reach the dialog with every field', () => {
    it.each([
      ['text', push('text', '<Content><![CDATA[你好]]></Content><MsgId>7300000000000000001</MsgId>'), { Content: '你好', MsgId: '7300000000000000001' }],
      ['image', push('image', '<PicUrl><![CDATA[http://mmbiz.example/pic]]></PicUrl><MediaId><![CDATA[MEDIA_ID_1]]></MediaId><MsgId>7300000000000000002</MsgId>'), { PicUrl: 'http://mmbiz.example/pic', MediaId: 'MEDIA_ID_1' }],
      ['voice', push('voice', '<MediaId><![CDATA[MEDIA_ID_2]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>7300000000000000003</MsgId><Recognition><![CDATA[明天天气]]></Recognition>'), { Format: 'amr', Recognition: '明天天气' }],
      ['video', push('video', '<MediaId><![CDATA[MEDIA_ID_3]]></MediaId><ThumbMediaId><![CDATA[THUMB_ID_3]]></ThumbMediaId><MsgId>7300000000000000004</MsgId>'), { MediaId: 'MEDIA_ID_3', ThumbMediaId: 'THUMB_ID_3' }],
      ['shortvideo', push('shortvideo', '<MediaId><![CDATA[MEDIA_ID_3]]></MediaId><ThumbMediaId><![CDATA[THUMB_ID_3]]></ThumbMediaId><MsgId>7300000000000000007</MsgId>'), { MsgType: 'shortvideo', ThumbMediaId: 'THUMB_ID_3' }],
      ['location', push('location', '<Location_X>31.2304</Location_X><Location_Y>121.4737</Location_Y><Scale>15</Scale><Label><![CDATA[上海市黄浦区]]></Label><MsgId>7300000000000000005</MsgId>'), { Location_X: '31.2304', Location_Y: '121.4737', Scale: '15', Label: '上海市黄浦区' }],
      ['link', push('link', '<Title><![CDATA[标题]]></Title><Description><![CDATA[描述]]></Description><Url><![CDATA[https://example.com/a]]></Url><MsgId>7300000000000000006</MsgId>'), { Title: '标题', Description: '描述', Url: 'https://example.com/a' }],
      ['an unknown type (file)', push('file', '<Title><![CDATA[a.pdf]]></Title><MsgId>7300000000000000008</MsgId>'), { MsgType: 'unknown', RawMsgType: 'file', Fields: expect.objectContaining({ Title: 'a.pdf' }) }],
    ])('%s', async (_type, p, fields) => {
      expect(await seenBy(p)).toMatchObject(fields);
    });
  });

  describe('events (接收事件推送, 自定义菜单事件推送) reach the dialog with every field', () => {
    it.each([
      ['subscribe', ev('subscribe'), { Event: 'subscribe' }],
      ['subscribe through a QR code', ev('subscribe', '<EventKey><![CDATA[qrscene_campaign42]]></EventKey><Ticket><![CDATA[TICKET_1]]></Ticket>'), { EventKey: 'qrscene_campaign42', Ticket: 'TICKET_1' }],
      ['SCAN', ev('SCAN', '<EventKey><![CDATA[campaign42]]></EventKey><Ticket><![CDATA[TICKET_1]]></Ticket>'), { Event: 'SCAN', EventKey: 'campaign42' }],
      ['CLICK', ev('CLICK', '<EventKey><![CDATA[MENU_HELP]]></EventKey>'), { Event: 'CLICK', EventKey: 'MENU_HELP' }],
      ['scancode_push', ev('scancode_push', '<EventKey><![CDATA[MENU_SCAN]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[https://example.com/q]]></ScanResult></ScanCodeInfo>'), { ScanCodeInfo: { ScanType: 'qrcode', ScanResult: 'https://example.com/q' } }],
      ['scancode_waitmsg', ev('scancode_waitmsg', '<EventKey><![CDATA[MENU_SCAN]]></EventKey><ScanCodeInfo><ScanType><![CDATA[barcode]]></ScanType><ScanResult><![CDATA[6901234567892]]></ScanResult></ScanCodeInfo>'), { Event: 'scancode_waitmsg', ScanCodeInfo: { ScanType: 'barcode', ScanResult: '6901234567892' } }],
      ['pic_sysphoto', ev('pic_sysphoto', '<EventKey><![CDATA[MENU_PIC]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[5a75]]></PicMd5Sum></item></PicList></SendPicsInfo>'), { SendPicsInfo: { Count: '1', PicList: [{ PicMd5Sum: '5a75' }] } }],
      ['pic_weixin', ev('pic_weixin', '<EventKey><![CDATA[MENU_PIC]]></EventKey><SendPicsInfo><Count>0</Count><PicList></PicList></SendPicsInfo>'), { SendPicsInfo: { Count: '0', PicList: [] } }],
      ['an unknown event (routed by name)', ev('some_new_event', '<EventKey>K</EventKey>'), null],
    ])('%s', async (_name, p, fields) => {
      if (fields === null) {
        // Unknown events are notifications: no route names this one, so WeChat gets `success`.
        const response = await fetch(`${server.url}/wechat${signedQuery(p.openid)}`, { method: 'POST', body: p.xml });
        expect(await response.text()).toBe('success');
        return;
      }
      expect(await seenBy(p)).toMatchObject(fields);
    });

    it.each([
      ['unsubscribe', ev('unsubscribe'), { Event: 'unsubscribe' }],
      ['LOCATION', ev('LOCATION', '<Latitude>31.230400</Latitude><Longitude>121.473700</Longitude><Precision>65.000000</Precision>'), { Latitude: '31.230400', Precision: '65.000000' }],
      ['VIEW', ev('VIEW', '<EventKey><![CDATA[https://example.com/]]></EventKey><MenuId>410000001</MenuId>'), { EventKey: 'https://example.com/', MenuId: '410000001' }],
      ['view_miniprogram', ev('view_miniprogram', '<EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>410000002</MenuId>'), { EventKey: 'pages/index/index' }],
      ['TEMPLATESENDJOBFINISH', ev('TEMPLATESENDJOBFINISH', '<MsgID>3487542469355618313</MsgID><Status><![CDATA[success]]></Status>'), { MsgID: '3487542469355618313', Status: 'success' }],
      ['MASSSENDJOBFINISH', ev('MASSSENDJOBFINISH', '<MsgID>1000000046</MsgID><Status><![CDATA[send success]]></Status><TotalCount>19</TotalCount><FilterCount>19</FilterCount><SentCount>19</SentCount><ErrorCount>0</ErrorCount><CopyrightCheckResult><Count>0</Count><ResultList></ResultList><CheckState>1</CheckState></CopyrightCheckResult>'), { MsgID: '1000000046', SentCount: '19', CopyrightCheckResult: { Count: '0', ResultList: [], CheckState: '1' } }],
    ])('notification %s, routed by name', async (_name, p, fields) => {
      expect(await seenBy(p)).toMatchObject(fields);
    });

    it('typed dialogs read nested fields: pic_photo_or_album and location_select', async () => {
      const pic = ev('pic_photo_or_album', '<EventKey><![CDATA[MENU_PIC]]></EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>');
      expect((await send(pic))['Content']).toBe('pic_photo_or_album 2: 5a75aaca956d97be686719218f275c6b,1b5f7c23b5bf75682a53e7b6d163e185');
      const loc = ev('location_select', '<EventKey><![CDATA[MENU_LOC]]></EventKey><SendLocationInfo><Location_X><![CDATA[31.2304]]></Location_X><Location_Y><![CDATA[121.4737]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[上海市黄浦区]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>');
      expect((await send(loc))['Content']).toBe('上海市黄浦区 (31.2304, 121.4737)');
    });
  });

  describe('every passive reply type (被动回复用户消息) comes back as the documented XML', () => {
    const say = (content: string) => send(push('text', `<Content><![CDATA[${content}]]></Content><MsgId>${Date.now()}${++openids}</MsgId>`));
    it.each([
      ['image', { MsgType: 'image', Image: { MediaId: 'MEDIA_ID' } }],
      ['voice', { MsgType: 'voice', Voice: { MediaId: 'MEDIA_ID' } }],
      ['video', { MsgType: 'video', Video: { MediaId: 'MEDIA_ID', Title: '标题', Description: '描述' } }],
      ['music', { MsgType: 'music', Music: { Title: '歌名', Description: '歌手', MusicUrl: 'https://example.com/a.mp3', HQMusicUrl: 'https://example.com/a-hq.mp3', ThumbMediaId: 'THUMB_MEDIA_ID' } }],
      ['news', { MsgType: 'news', ArticleCount: '2', Articles: { item: [
        { Title: '标题1', Description: '摘要1', PicUrl: 'https://example.com/1.jpg', Url: 'https://example.com/1' },
        { Title: '标题2', Description: '摘要2', PicUrl: 'https://example.com/2.jpg', Url: 'https://example.com/2' },
      ] } }],
      ['kf', { MsgType: 'transfer_customer_service', TransInfo: { KfAccount: 'agent1@gh_account' } }],
      ['kf-any', { MsgType: 'transfer_customer_service' }],
    ])('%s', async (keyword, fields) => {
      const { ToUserName: _to, FromUserName: _from, CreateTime: _time, ...rest } = await say(keyword);
      expect(rest).toStrictEqual(fields);
    });
  });
});

/**
 * A menu conversation over several turns: a CLICK opens it, then a scancode_waitmsg event and a
 * location_select event answer it. Their nested fields must survive the stored state and replay.
 */
const checkIn = defineDialog('check-in', function* (first: ClickEvent) {
  const scan = yield text(`${first.EventKey}: 请扫描会场二维码`);
  if (scan.MsgType !== 'event' || (scan.Event !== 'scancode_waitmsg' && scan.Event !== 'scancode_push')) return text('请使用扫码菜单');
  const where = yield text(`已扫描 ${scan.ScanCodeInfo.ScanResult}，请发送位置`);
  if (where.MsgType !== 'event' || where.Event !== 'location_select') return text('请使用位置菜单');
  return text(`签到成功：${scan.ScanCodeInfo.ScanResult} @ ${where.SendLocationInfo.Label} (${where.SendLocationInfo.Poiname ?? ''})`);
});
const menuRouter = createRouter({ routes: [route({ event: 'CLICK', eventKey: 'CHECK_IN' }, checkIn)], fallback: null });

describe.each(storeFactories())('a typed menu dialog over several turns on $name', (factory) => {
  let store: StoreUnderTest;
  let server: TestServer;
  beforeAll(async () => {
    store = await factory.create();
    server = await serveDialogs(menuRouter, store.store);
  });
  afterAll(async () => {
    await server?.close();
    await store?.cleanup();
  });

  it('CLICK, then scancode_waitmsg, then location_select: nested fields replayed from the stored state', async () => {
    const openid = `oMenuTurns${factory.name.replace(/\W/g, '').slice(0, 8).padEnd(8, '0')}0000000001`;
    const at = Math.floor(Date.now() / 1000);
    const event = (time: number, name: string, inner: string) =>
      `<xml>${TO}<FromUserName><![CDATA[${openid}]]></FromUserName><CreateTime>${time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${name}]]></Event>${inner}</xml>`;
    const say = async (xml: string): Promise<string> => {
      const response = await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: xml });
      return String((replyParser.parse(await response.text()) as { xml: Record<string, unknown> }).xml['Content']);
    };
    expect(await say(event(at, 'CLICK', '<EventKey><![CDATA[CHECK_IN]]></EventKey>'))).toBe('CHECK_IN: 请扫描会场二维码');
    expect(
      await say(event(at + 1, 'scancode_waitmsg', '<EventKey><![CDATA[MENU_SCAN]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[HALL-7]]></ScanResult></ScanCodeInfo>')),
    ).toBe('已扫描 HALL-7，请发送位置');
    expect(
      await say(event(at + 2, 'location_select', '<EventKey><![CDATA[MENU_LOC]]></EventKey><SendLocationInfo><Location_X><![CDATA[31.2304]]></Location_X><Location_Y><![CDATA[121.4737]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[上海市黄浦区]]></Label><Poiname><![CDATA[会展中心]]></Poiname></SendLocationInfo>')),
    ).toBe('签到成功：HALL-7 @ 上海市黄浦区 (会展中心)');
  });
});
