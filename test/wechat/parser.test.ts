import { describe, expect, it } from 'vitest';
import { MessageParseError, parseMessage, type MessageParseErrorCode } from '../../src/wechat/parser.js';

const TO = '<ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>';
const FROM = '<FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName>';
const common = { ToUserName: 'gh_0123456789ab', FromUserName: 'oUser000000000000000000000001' };

/** A push with the two ids, `CreateTime` 1700000000 and the given extra elements. */
const push = (inner: string): string => `<xml>${TO}${FROM}<CreateTime>1700000000</CreateTime>${inner}</xml>`;
const textPush = (content: string, msgId = '7300000000000000001'): string =>
  push(`<MsgType><![CDATA[text]]></MsgType><Content>${content}</Content><MsgId>${msgId}</MsgId>`);
const event = (name: string, extra = ''): string => push(`<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${name}]]></Event>${extra}`);

function rejection(xml: string): MessageParseError {
  try {
    parseMessage(xml);
  } catch (err) {
    expect(err).toBeInstanceOf(MessageParseError);
    return err as MessageParseError;
  }
  throw new Error('parseMessage did not throw');
}
function expectCode(xml: string, code: MessageParseErrorCode): MessageParseError {
  const err = rejection(xml);
  expect(err.code).toBe(code);
  expect(err.name).toBe('MessageParseError');
  return err;
}

describe('ordinary messages (接收普通消息; protocol README §2.3 examples)', () => {
  it('text', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content><MsgId>7300000000000000001</MsgId></xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000000, MsgType: 'text', MsgId: '7300000000000000001', Content: '你好' });
  });

  it('text from an article keeps MsgDataId and Idx as strings', () => {
    const xml = push('<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId><MsgDataId>2247483650</MsgDataId><Idx>1</Idx>');
    expect(parseMessage(xml)).toMatchObject({ MsgType: 'text', MsgDataId: '2247483650', Idx: '1' });
  });

  it('image from an article keeps MsgDataId and Idx', () => {
    const xml = push('<MsgType>image</MsgType><PicUrl>u</PicUrl><MediaId>m</MediaId><MsgId>1</MsgId><MsgDataId>2247483650</MsgDataId><Idx>2</Idx>');
    expect(parseMessage(xml)).toMatchObject({ MsgType: 'image', MsgDataId: '2247483650', Idx: '2' });
  });

  it('image', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000001</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.example/pic]]></PicUrl><MediaId><![CDATA[MEDIA_ID_1]]></MediaId><MsgId>7300000000000000002</MsgId></xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000001, MsgType: 'image', MsgId: '7300000000000000002', PicUrl: 'http://mmbiz.example/pic', MediaId: 'MEDIA_ID_1' });
  });

  it('voice with Recognition after MsgId (element order is not fixed)', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000002</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[MEDIA_ID_2]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>7300000000000000003</MsgId><Recognition><![CDATA[明天天气]]></Recognition></xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000002, MsgType: 'voice', MsgId: '7300000000000000003', MediaId: 'MEDIA_ID_2', Format: 'amr', Recognition: '明天天气' });
  });

  it('voice without Recognition has no Recognition key', () => {
    const m = parseMessage(push('<MsgType>voice</MsgType><MediaId>M</MediaId><Format>speex</Format><MsgId>3</MsgId>'));
    expect(m).toStrictEqual({ ...common, CreateTime: 1700000000, MsgType: 'voice', MsgId: '3', MediaId: 'M', Format: 'speex' });
    expect('Recognition' in m).toBe(false);
  });

  it.each([
    ['<Recognition></Recognition>'],
    ['<Recognition/>'],
    ['<Recognition><![CDATA[]]></Recognition>'],
  ])('empty Recognition %s → empty string', (rec) => {
    const m = parseMessage(push(`<MsgType>voice</MsgType><MediaId>M</MediaId><Format>amr</Format><MsgId>3</MsgId>${rec}`));
    expect(m).toMatchObject({ MsgType: 'voice', Recognition: '' });
  });

  it.each(['video', 'shortvideo'])('%s', (type) => {
    const xml = `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000003</CreateTime><MsgType><![CDATA[${type}]]></MsgType><MediaId><![CDATA[MEDIA_ID_3]]></MediaId><ThumbMediaId><![CDATA[THUMB_ID_3]]></ThumbMediaId><MsgId>7300000000000000004</MsgId></xml>`;
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000003, MsgType: type, MsgId: '7300000000000000004', MediaId: 'MEDIA_ID_3', ThumbMediaId: 'THUMB_ID_3' });
  });

  it('location keeps the coordinates as the decimal strings sent', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000004</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>31.2304</Location_X><Location_Y>121.4737</Location_Y><Scale>15</Scale><Label><![CDATA[上海市黄浦区]]></Label><MsgId>7300000000000000005</MsgId></xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000004, MsgType: 'location', MsgId: '7300000000000000005', Location_X: '31.2304', Location_Y: '121.4737', Scale: '15', Label: '上海市黄浦区' });
  });

  it('link', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000005</CreateTime><MsgType><![CDATA[link]]></MsgType><Title><![CDATA[标题]]></Title><Description><![CDATA[描述]]></Description><Url><![CDATA[https://example.com/a]]></Url><MsgId>7300000000000000006</MsgId></xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000005, MsgType: 'link', MsgId: '7300000000000000006', Title: '标题', Description: '描述', Url: 'https://example.com/a' });
  });

  it('copies only documented fields (unknown and nested elements are ignored)', () => {
    const m = parseMessage(textPush('<![CDATA[x]]>').replace('</xml>', '<bizmsgmenuid>7</bizmsgmenuid><Extra><A>1</A></Extra></xml>'));
    expect(Object.keys(m).sort()).toEqual(['Content', 'CreateTime', 'FromUserName', 'MsgId', 'MsgType', 'ToUserName']);
  });
});

describe('values stay exactly as sent', () => {
  it.each(['6054768590064713728', '18446744073709551615', '22876340532172986', '0', '007'])('MsgId %s stays the exact string', (id) => {
    const m = parseMessage(textPush('x', id));
    expect(m).toMatchObject({ MsgType: 'text', MsgId: id });
    expect(typeof (m as { MsgId: unknown }).MsgId).toBe('string');
  });

  it('MsgId in CDATA is accepted', () => {
    expect(parseMessage(textPush('x', '<![CDATA[6054768590064713728]]>'))).toMatchObject({ MsgId: '6054768590064713728' });
  });

  it.each([
    ['<![CDATA[007]]>', '007'],
    ['007', '007'],
    ['1e3', '1e3'],
    ['<![CDATA[true]]>', 'true'],
    ['0x1F', '0x1F'],
    ['<![CDATA[  padded\n]]>', '  padded\n'],
    ['<![CDATA[<b>&amp;</b>]]>', '<b>&amp;</b>'],
    ['<![CDATA[😀 emoji 你好]]>', '😀 emoji 你好'],
    ['<![CDATA[]]>', ''],
    ['', ''],
  ])('Content %s → %j', (raw, expected) => {
    expect(parseMessage(textPush(raw))).toMatchObject({ MsgType: 'text', Content: expected });
  });

  it('a value split into two CDATA sections is joined: a]]>b', () => {
    expect(parseMessage(textPush('<![CDATA[a]]]]><![CDATA[>b]]>'))).toMatchObject({ Content: 'a]]>b' });
  });

  it('XML entities in non-CDATA text are decoded, CDATA is not', () => {
    expect(parseMessage(textPush('a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;'))).toMatchObject({ Content: 'a & b <c> "d" \'e\'' });
    expect(parseMessage(textPush('&amp;<![CDATA[&amp;]]>'))).toMatchObject({ Content: '&&amp;' });
    expect(parseMessage(textPush('&amp;#65;'))).toMatchObject({ Content: '&#65;' }); // no double decoding
  });

  it('numeric character references are decoded (needs htmlEntities in fast-xml-parser 5)', () => {
    expect(parseMessage(textPush('&#20320;&#x597D;&#x1F600;'))).toMatchObject({ Content: '你好😀' });
  });

  it('only XML 1.0 references decode: HTML names and unknown names stay as written, forbidden characters are dropped', () => {
    expect(parseMessage(textPush('&nbsp;&copy;&yen;&xx;&AMP;'))).toMatchObject({ Content: '&nbsp;&copy;&yen;&xx;&AMP;' });
    expect(parseMessage(textPush('a&#0;b&#x1;c&#55296;d&#xFFFE;e&#x110000;'))).toMatchObject({ Content: 'abcde&#x110000;' });
    expect(parseMessage(textPush('&#0000065;&#x000041;'))).toMatchObject({ Content: 'AA' });
  });

  it('CreateTime becomes a number of seconds; CDATA numbers in events are read too', () => {
    const m = parseMessage(event('LOCATION', '<Latitude><![CDATA[31.230400]]></Latitude><Longitude><![CDATA[121.473700]]></Longitude><Precision><![CDATA[65.000000]]></Precision>').replace('<CreateTime>1700000000</CreateTime>', '<CreateTime><![CDATA[1700000014]]></CreateTime>'));
    expect(m).toStrictEqual({ ...common, CreateTime: 1700000014, MsgType: 'event', Event: 'LOCATION', Latitude: '31.230400', Longitude: '121.473700', Precision: '65.000000' });
  });

  it('pretty-printed XML: whitespace and newlines between elements are ignored', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<xml>
  <ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>
  <FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName>
\t<CreateTime>1700000000</CreateTime>\r
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[hello]]></Content>
  <MsgId>1</MsgId>
</xml>
`;
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1700000000, MsgType: 'text', MsgId: '1', Content: 'hello' });
  });

  it('element order is not fixed', () => {
    const xml = '<xml><MsgId>9</MsgId><Content><![CDATA[z]]></Content><MsgType>text</MsgType><CreateTime>1</CreateTime>' + FROM + TO + '</xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...common, CreateTime: 1, MsgType: 'text', MsgId: '9', Content: 'z' });
  });

  it('an XML declaration at the very start is read (its pseudo-attributes are not attributes)', () => {
    for (const declaration of ['<?xml version="1.0"?>', `<?xml version='1.0' encoding='UTF-8' standalone="yes" ?>`, '<?xml version="1.1" encoding="GBK"?>']) {
      expect(parseMessage(declaration + textPush('<![CDATA[x]]>'))).toMatchObject({ Content: 'x' });
    }
  });
});

describe('events (接收事件推送, 自定义菜单事件推送; README §2.4 examples)', () => {
  const base = { ...common, MsgType: 'event' };

  it('subscribe (plain follow) has no EventKey/Ticket keys', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000010</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000010, Event: 'subscribe' });
  });

  it('subscribe via a parametric QR code', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000011</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_campaign42]]></EventKey><Ticket><![CDATA[TICKET_1]]></Ticket></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000011, Event: 'subscribe', EventKey: 'qrscene_campaign42', Ticket: 'TICKET_1' });
  });

  it('unsubscribe', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000012</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000012, Event: 'unsubscribe' });
  });

  it('SCAN', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000013</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[campaign42]]></EventKey><Ticket><![CDATA[TICKET_1]]></Ticket></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000013, Event: 'SCAN', EventKey: 'campaign42', Ticket: 'TICKET_1' });
  });

  it('LOCATION', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000014</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>31.230400</Latitude><Longitude>121.473700</Longitude><Precision>65.000000</Precision></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000014, Event: 'LOCATION', Latitude: '31.230400', Longitude: '121.473700', Precision: '65.000000' });
  });

  it('CLICK', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000015</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MENU_HELP]]></EventKey></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000015, Event: 'CLICK', EventKey: 'MENU_HELP' });
  });

  it('VIEW keeps MenuId as a string', () => {
    const m = parseMessage('<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000016</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[https://example.com/]]></EventKey><MenuId>410000001</MenuId></xml>');
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000016, Event: 'VIEW', EventKey: 'https://example.com/', MenuId: '410000001' });
  });

  it.each([
    ['click', 'CLICK'],
    ['Click', 'CLICK'],
    ['view', 'VIEW'],
    ['scan', 'SCAN'],
    ['location', 'LOCATION'],
    ['SUBSCRIBE', 'subscribe'],
    ['UnSubscribe', 'unsubscribe'],
    ['VIEW_MINIPROGRAM', 'view_miniprogram'],
    ['templatesendjobfinish', 'TEMPLATESENDJOBFINISH'],
  ])('mixed-case Event %s is normalised to %s', (raw, documented) => {
    const extra = '<EventKey>K</EventKey><Latitude>1</Latitude><Longitude>2</Longitude><Precision>3</Precision><MsgID>1</MsgID><Status>success</Status>';
    expect(parseMessage(event(raw, extra))).toMatchObject({ MsgType: 'event', Event: documented });
  });

  it('an empty EventKey element is present (empty string), not missing', () => {
    expect(parseMessage(event('CLICK', '<EventKey><![CDATA[]]></EventKey>'))).toMatchObject({ Event: 'CLICK', EventKey: '' });
  });

  it('events ignore MsgId and other extra elements', () => {
    const m = parseMessage(event('CLICK', '<EventKey>K</EventKey><MsgId>5</MsgId><MenuId>1</MenuId>'));
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000000, Event: 'CLICK', EventKey: 'K' });
  });
});

describe('menu and job-finish events (自定义菜单事件推送, 模板消息, 群发; README §2.4 examples)', () => {
  const base = { ...common, MsgType: 'event' };

  it.each(['scancode_waitmsg', 'scancode_push'])('%s reads the nested ScanCodeInfo', (name) => {
    const xml = `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000017</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${name}]]></Event><EventKey><![CDATA[MENU_SCAN]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[https://example.com/q]]></ScanResult></ScanCodeInfo></xml>`;
    expect(parseMessage(xml)).toStrictEqual({
      ...base,
      CreateTime: 1700000017,
      Event: name,
      EventKey: 'MENU_SCAN',
      ScanCodeInfo: { ScanType: 'qrcode', ScanResult: 'https://example.com/q' },
    });
  });

  it.each(['pic_photo_or_album', 'pic_sysphoto', 'pic_weixin'])('%s reads SendPicsInfo with a PicList of two items', (name) => {
    const xml = `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000018</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${name}]]></Event><EventKey><![CDATA[MENU_PIC]]></EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo></xml>`;
    expect(parseMessage(xml)).toStrictEqual({
      ...base,
      CreateTime: 1700000018,
      Event: name,
      EventKey: 'MENU_PIC',
      SendPicsInfo: { Count: '2', PicList: [{ PicMd5Sum: '5a75aaca956d97be686719218f275c6b' }, { PicMd5Sum: '1b5f7c23b5bf75682a53e7b6d163e185' }] },
    });
  });

  it('a PicList with one item is still a list; an empty or absent PicList is an empty list', () => {
    const one = event('pic_weixin', '<EventKey>K</EventKey><SendPicsInfo><Count>1</Count><PicList>\n <item><PicMd5Sum>abc</PicMd5Sum></item>\n</PicList></SendPicsInfo>');
    expect(parseMessage(one)).toMatchObject({ SendPicsInfo: { Count: '1', PicList: [{ PicMd5Sum: 'abc' }] } });
    const empty = event('pic_weixin', '<EventKey>K</EventKey><SendPicsInfo><Count>0</Count><PicList>\n\n</PicList></SendPicsInfo>');
    expect(parseMessage(empty)).toMatchObject({ SendPicsInfo: { Count: '0', PicList: [] } });
    const absent = event('pic_weixin', '<EventKey>K</EventKey><SendPicsInfo><Count>0</Count></SendPicsInfo>');
    expect(parseMessage(absent)).toMatchObject({ SendPicsInfo: { Count: '0', PicList: [] } });
  });

  it('location_select reads SendLocationInfo; numbers in CDATA stay strings, an empty Poiname is kept', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000019</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[location_select]]></Event><EventKey><![CDATA[MENU_LOC]]></EventKey><SendLocationInfo><Location_X><![CDATA[31.2304]]></Location_X><Location_Y><![CDATA[121.4737]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[上海市黄浦区]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo></xml>';
    expect(parseMessage(xml)).toStrictEqual({
      ...base,
      CreateTime: 1700000019,
      Event: 'location_select',
      EventKey: 'MENU_LOC',
      SendLocationInfo: { Location_X: '31.2304', Location_Y: '121.4737', Scale: '15', Label: '上海市黄浦区', Poiname: '' },
    });
  });

  it('view_miniprogram keeps the page path and MenuId', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000020</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[view_miniprogram]]></Event><EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>410000002</MenuId></xml>';
    expect(parseMessage(xml)).toStrictEqual({ ...base, CreateTime: 1700000020, Event: 'view_miniprogram', EventKey: 'pages/index/index', MenuId: '410000002' });
  });

  it('TEMPLATESENDJOBFINISH keeps MsgID (capital D) as the exact 64-bit string', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000021</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>3487542469355618313</MsgID><Status><![CDATA[failed: system failed]]></Status></xml>';
    const m = parseMessage(xml);
    expect(m).toStrictEqual({ ...base, CreateTime: 1700000021, Event: 'TEMPLATESENDJOBFINISH', MsgID: '3487542469355618313', Status: 'failed: system failed' });
    expect(Number((m as { MsgID: string }).MsgID).toString()).not.toBe('3487542469355618313'); // why it stays a string
  });

  it('MASSSENDJOBFINISH with counts and an empty copyright list (README example)', () => {
    const xml = '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser000000000000000000000001]]></FromUserName><CreateTime>1700000022</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgID>1000000046</MsgID><Status><![CDATA[send success]]></Status><TotalCount>19</TotalCount><FilterCount>19</FilterCount><SentCount>19</SentCount><ErrorCount>0</ErrorCount><CopyrightCheckResult><Count>0</Count><ResultList></ResultList><CheckState>1</CheckState></CopyrightCheckResult></xml>';
    expect(parseMessage(xml)).toStrictEqual({
      ...base,
      CreateTime: 1700000022,
      Event: 'MASSSENDJOBFINISH',
      MsgID: '1000000046',
      Status: 'send success',
      TotalCount: '19',
      FilterCount: '19',
      SentCount: '19',
      ErrorCount: '0',
      CopyrightCheckResult: { Count: '0', ResultList: [], CheckState: '1' },
    });
  });

  it('MASSSENDJOBFINISH with copyright and article-URL results', () => {
    const m = parseMessage(event('MASSSENDJOBFINISH', '<MsgID>7</MsgID><Status>err(20013)</Status>' +
      '<CopyrightCheckResult><Count>2</Count><ResultList><item><ArticleIdx>1</ArticleIdx><UserDeclareState>0</UserDeclareState><AuditState>2</AuditState><OriginalArticleUrl><![CDATA[Url_1]]></OriginalArticleUrl><OriginalArticleType>1</OriginalArticleType><CanReprint>1</CanReprint><NeedReplaceContent>1</NeedReplaceContent><NeedShowReprintSource>1</NeedShowReprintSource></item><item><ArticleIdx>2</ArticleIdx></item></ResultList><CheckState>2</CheckState></CopyrightCheckResult>' +
      '<ArticleUrlResult><Count>1</Count><ResultList><item><ArticleIdx>1</ArticleIdx><ArticleUrl><![CDATA[https://mp.weixin.qq.com/s/x]]></ArticleUrl></item></ResultList></ArticleUrlResult>'));
    expect(m).toStrictEqual({
      ...base,
      CreateTime: 1700000000,
      Event: 'MASSSENDJOBFINISH',
      MsgID: '7',
      Status: 'err(20013)',
      CopyrightCheckResult: {
        Count: '2',
        CheckState: '2',
        ResultList: [
          { ArticleIdx: '1', UserDeclareState: '0', AuditState: '2', OriginalArticleUrl: 'Url_1', OriginalArticleType: '1', CanReprint: '1', NeedReplaceContent: '1', NeedShowReprintSource: '1' },
          { ArticleIdx: '2' },
        ],
      },
      ArticleUrlResult: { Count: '1', ResultList: [{ ArticleIdx: '1', ArticleUrl: 'https://mp.weixin.qq.com/s/x' }] },
    });
  });

  it.each([
    ['scancode_push without ScanCodeInfo', event('scancode_push', '<EventKey>K</EventKey>'), 'MISSING_FIELD', 'ScanCodeInfo'],
    ['ScanCodeInfo without ScanResult', event('scancode_push', '<EventKey>K</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo>'), 'MISSING_FIELD', 'ScanCodeInfo.ScanResult'],
    ['ScanCodeInfo holding text', event('scancode_push', '<EventKey>K</EventKey><ScanCodeInfo>qrcode</ScanCodeInfo>'), 'INVALID_FIELD', 'ScanCodeInfo'],
    ['two ScanCodeInfo', event('scancode_push', '<EventKey>K</EventKey><ScanCodeInfo><ScanType>a</ScanType><ScanResult>b</ScanResult></ScanCodeInfo><ScanCodeInfo/>'), 'INVALID_FIELD', 'ScanCodeInfo'],
    ['a PicList item without PicMd5Sum', event('pic_weixin', '<EventKey>K</EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item></item></PicList></SendPicsInfo>'), 'MISSING_FIELD', 'SendPicsInfo.PicList.item[1].PicMd5Sum'],
    ['location_select without Label', event('location_select', '<EventKey>K</EventKey><SendLocationInfo><Location_X>1</Location_X><Location_Y>2</Location_Y><Scale>3</Scale></SendLocationInfo>'), 'MISSING_FIELD', 'SendLocationInfo.Label'],
    ['TEMPLATESENDJOBFINISH with a non-numeric MsgID', event('TEMPLATESENDJOBFINISH', '<MsgID>12a</MsgID><Status>success</Status>'), 'INVALID_FIELD', 'MsgID'],
    ['MASSSENDJOBFINISH without Status', event('MASSSENDJOBFINISH', '<MsgID>1</MsgID>'), 'MISSING_FIELD', 'Status'],
  ] as const)('%s → %s on %s', (_name, xml, code, field) => {
    expect(expectCode(xml, code).field).toBe(field);
  });
});

describe('unknown events and message types never throw', () => {
  it('an unknown Event → UnknownEvent with RawEvent, EventKey and top-level text Fields; nested elements left out', () => {
    const xml = event('some_future_event', '<EventKey><![CDATA[K1]]></EventKey><Extra>x</Extra><Info><A>1</A></Info>');
    expect(parseMessage(xml)).toStrictEqual({
      ...common,
      CreateTime: 1700000000,
      MsgType: 'event',
      Event: 'unknown',
      RawEvent: 'some_future_event',
      EventKey: 'K1',
      Fields: { ...common, CreateTime: '1700000000', MsgType: 'event', Event: 'some_future_event', EventKey: 'K1', Extra: 'x' },
    });
  });

  it.each(['file', 'miniprogrampage', 'TEXT', 'something_new'])('MsgType %s → UnknownMessage', (type) => {
    const m = parseMessage(push(`<MsgType><![CDATA[${type}]]></MsgType><Title><![CDATA[a.pdf]]></Title><FileKey>k</FileKey><MsgId>6054768590064713728</MsgId>`));
    expect(m).toStrictEqual({
      ...common,
      CreateTime: 1700000000,
      MsgType: 'unknown',
      RawMsgType: type,
      MsgId: '6054768590064713728',
      Fields: { ...common, CreateTime: '1700000000', MsgType: type, Title: 'a.pdf', FileKey: 'k', MsgId: '6054768590064713728' },
    });
  });

  it('UnknownMessage omits an absent or invalid MsgId but keeps it in Fields', () => {
    expect('MsgId' in parseMessage(push('<MsgType>file</MsgType>'))).toBe(false);
    const m = parseMessage(push('<MsgType>file</MsgType><MsgId>12a</MsgId>'));
    expect('MsgId' in m).toBe(false);
    expect(m).toMatchObject({ Fields: { MsgId: '12a' } });
  });

  it('repeated unknown elements are skipped, not fatal', () => {
    expect(parseMessage(push('<MsgType>file</MsgType><X>1</X><X>2</X>'))).toMatchObject({ MsgType: 'unknown', Fields: { MsgType: 'file' } });
  });
});

describe('rejections', () => {
  it.each([
    ['<!DOCTYPE xml><xml></xml>'],
    ['<!doctype xml>' + textPush('x')],
    ['<xml><!ENTITY a "b"><A>1</A></xml>'],
    [textPush('x').replace('<xml>', '<xml><!DOCTYPE x>')],
    ['<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + textPush('&xxe;')],
  ])('DOCTYPE / ENTITY → DOCTYPE_FORBIDDEN: %s', (xml) => {
    expectCode(xml, 'DOCTYPE_FORBIDDEN');
  });

  it('a billion-laughs body is rejected before parsing, so nothing is expanded', () => {
    const entities = ['<!ENTITY lol0 "lol">'];
    for (let i = 1; i < 10; i++) entities.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
    const bomb = `<?xml version="1.0"?><!DOCTYPE xml [${entities.join('')}]>` + textPush('&lol9;');
    const big = bomb + ' '.repeat(2_000_000);
    expectCode(bomb, 'DOCTYPE_FORBIDDEN');
    expectCode(big, 'DOCTYPE_FORBIDDEN');
  });

  it('a user who types <!DOCTYPE …> gets their text through: inside CDATA it is not a declaration', () => {
    const pasted = '<!DOCTYPE html><!ENTITY x "y"><html></html>';
    expect(parseMessage(textPush(`<![CDATA[${pasted}]]>`))).toMatchObject({ MsgType: 'text', Content: pasted });
    expect(parseMessage(textPush('<!-- <!DOCTYPE x> -->hi'))).toMatchObject({ Content: 'hi' });
  });

  it.each([
    ['a declaration after a comment that mentions CDATA', '<!-- <![CDATA[ --><!DOCTYPE x [<!ENTITY a "b">]><!-- ]]> -->'],
    ['a declaration after a CDATA that mentions a comment', '<![CDATA[ <!-- ]]><!DOCTYPE x>'],
    ['a declaration after a processing instruction', '<?pi <![CDATA[ ?><!ENTITY a "b">'],
    ['ELEMENT / ATTLIST declarations', '<!ELEMENT xml ANY>'],
  ])('still rejects %s', (_name, prefix) => {
    expectCode(prefix + textPush('x'), 'DOCTYPE_FORBIDDEN');
  });

  describe('declarations hidden where the old pre-scan did not look, and attributes (issue 10, item 4)', () => {
    const A = 'A'.repeat(1_000);
    const DTD = `<!DOCTYPE x [<!ENTITY e "${A}">]>`;
    /** A text push whose Content refers to `&e;` 90 times: 90,000 characters if the entity expands. */
    const expanding = (before: string, after = '') =>
      `<xml>${before}${TO}${FROM}<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><MsgId>1</MsgId><Content>${'&e;'.repeat(90)}</Content>${after}</xml>`;

    /** Refused with a MessageParseError of one of `codes`; never a message with the entity expanded. */
    function expectRefused(xml: string, codes: readonly MessageParseErrorCode[]): MessageParseError {
      let parsed: unknown;
      try {
        parsed = parseMessage(xml);
      } catch (err) {
        expect(err).toBeInstanceOf(MessageParseError);
        expect(codes).toContain((err as MessageParseError).code);
        expect((err as MessageParseError).message).not.toContain(A.slice(0, 40));
        return err as MessageParseError;
      }
      throw new Error(`accepted: ${JSON.stringify(parsed).slice(0, 120)}… (${JSON.stringify(parsed).length} characters)`);
    }

    it('a DTD behind an attribute value that opens a CDATA section is refused, and nothing expands', () => {
      const xml = expanding(`<P a="<![CDATA["/>${DTD}<Q b="]]>"/>`);
      expect(xml.length).toBeLessThan(2_000);
      expect(expectRefused(xml, ['ATTRIBUTE_FORBIDDEN']).message).toBe('the element <P> has an attribute: WeChat never sends attributes');
    });

    it.each([
      ['behind single-quoted attribute values that open and close a comment', expanding(`<P a='<!--'/>${DTD}<Q b='-->'/>`)],
      ['behind an attribute of the root', expanding('', '').replace('<xml>', `<xml a="<![CDATA[">${DTD}<Q b="]]>"/>`)],
      ['behind an attribute without quotes', expanding(`<P a=<![CDATA[/>${DTD}<Q>]]></Q>`)],
    ])('a DTD %s → ATTRIBUTE_FORBIDDEN', (_name, xml) => {
      expectRefused(xml, ['ATTRIBUTE_FORBIDDEN']);
    });

    it.each([
      ['after the root', `${expanding('')}${DTD}`],
      ['between the XML declaration and the root', `<?xml version="1.0"?>${DTD}${expanding('')}`],
      ['inside the root after the fields', expanding('', DTD)],
      ['behind a processing instruction whose quoted text opens a CDATA section', expanding(`<?pi a="?><![CDATA[" ?>${DTD}<Q>]]></Q>`)],
      ['in lower case', expanding(DTD.replace('DOCTYPE', 'doctype'))],
    ])('a DTD %s → DOCTYPE_FORBIDDEN', (_name, xml) => {
      expectRefused(xml, ['DOCTYPE_FORBIDDEN']);
    });

    it.each([
      ['an end tag with quoted text that opens a CDATA section', expanding(`<P></P "<![CDATA[">${DTD}<Q>]]></Q>`)],
      ['a start tag with a quote after its name', expanding(`<P"<![CDATA[">${DTD}<Q>]]></Q></P>`)],
      ['a space after <', expanding(`< P a="<![CDATA[">${DTD}<Q>]]></Q>`)],
      ['an unterminated CDATA section', `${expanding('')}<![CDATA[${DTD}`],
      ['an unterminated comment', `${expanding('')}<!--${DTD}`],
    ])('a DTD behind %s → NOT_XML or DOCTYPE_FORBIDDEN', (_name, xml) => {
      expectRefused(xml, ['NOT_XML', 'DOCTYPE_FORBIDDEN']);
    });

    it.each([
      ['<?xml-stylesheet href="x.xsl"?>', 'start'],
      ['<?pi?>', 'in-root'],
      ['<?xml version="1.0"?>', 'in-root'],
      [' <?xml version="1.0"?>', 'start'],
      ['<!ATTLIST xml a CDATA #IMPLIED>', 'in-root'],
      ['<!ELEMENT xml ANY>', 'start'],
      ['<!NOTATION n SYSTEM "x">', 'in-root'],
      ['<!ENTITY e "x">', 'start'],
      ['<![INCLUDE[ x ]]>', 'in-root'],
    ])('%s (%s) → DOCTYPE_FORBIDDEN', (markup, where) => {
      const xml = where === 'start' ? markup + textPush('x') : textPush('x').replace('<xml>', `<xml>${markup}`);
      expectCode(xml, 'DOCTYPE_FORBIDDEN');
    });

    it('an XML declaration with anything but simple quoted values is a processing instruction → DOCTYPE_FORBIDDEN', () => {
      expectCode('<?xml version="1.0?>"?>' + textPush('x'), 'DOCTYPE_FORBIDDEN');
      expectCode('<?xml version="<!DOCTYPE"?>' + textPush('x'), 'DOCTYPE_FORBIDDEN');
      expectCode(`<?xml${' '.repeat(300)}?>` + textPush('x'), 'DOCTYPE_FORBIDDEN');
    });

    it.each([
      ['<xml a="1">', '<xml a="1">', 'xml'],
      ['<Content lang="zh">', '<Content lang="zh">', 'Content'],
      ['<Content xmlns="urn:x">', '<Content xmlns="urn:x">', 'Content'],
      ['a value-less attribute', '<Content b>', 'Content'],
      ['an attribute after a newline', '<Content\n  a="1">', 'Content'],
      ['an attribute on a self-closing element', '<Content a="1"/><Content>', 'Content'],
    ])('an attribute (%s) → ATTRIBUTE_FORBIDDEN naming the element', (_name, tag, element) => {
      const xml = textPush('<![CDATA[x]]>').replace(element === 'xml' ? '<xml>' : '<Content>', tag);
      const err = expectCode(xml, 'ATTRIBUTE_FORBIDDEN');
      expect(err.message).toBe(`the element <${element}> has an attribute: WeChat never sends attributes`);
    });

    it('whitespace inside tags is still fine: <Content >, <Content\n/>, </Content >', () => {
      expect(parseMessage(textPush('<![CDATA[x]]>').replace('<Content>', '<Content \t\r\n>').replace('</Content>', '</Content\n>'))).toMatchObject({ Content: 'x' });
      expect(parseMessage(push('<MsgType>voice</MsgType><MediaId>M</MediaId><Format>amr</Format><MsgId>3</MsgId><Recognition\n/>'))).toMatchObject({ Recognition: '' });
    });

    it('scanning a large body stays linear', () => {
      const started = performance.now();
      expect(parseMessage(textPush('x').replace('</xml>', `${'<a/><!-- c --><b></b>'.repeat(3_000)}</xml>`))).toMatchObject({ Content: 'x' });
      expect(parseMessage(textPush(`${'<![CDATA[<!DOCTYPE x>]]>'.repeat(2_500)}`))).toMatchObject({ MsgType: 'text' });
      for (const filler of [`<?xml${' '.repeat(60_000)}`, '<!--'.repeat(15_000), '<![CDATA['.repeat(7_000)]) {
        expect(() => parseMessage(filler + textPush('x'))).toThrow(MessageParseError);
      }
      expect(performance.now() - started).toBeLessThan(2_000);
    });
  });

  it.each([
    ['hello'],
    ['{"a":1}'],
    [''],
    ['   '],
    ['<xml><ToUserName>a</ToUserName>'],
    [textPush('x').slice(0, -10)],
    ['<xml><A>1</B></xml>'],
    ['<xml><A>a & b</A></xml>'],
    ['<xml></xml><xml></xml>'],
    ['<xml><A><![CDATA[x</A></xml>'],
  ])('not well-formed → NOT_XML: %j', (xml) => {
    const err = expectCode(xml, 'NOT_XML');
    expect(err.message.length).toBeLessThan(200);
  });

  it.each([
    ['<foo><MsgType>text</MsgType></foo>'],
    ['<Xml><MsgType>text</MsgType></Xml>'],
    ['<html><body/></html>'],
  ])('root not <xml> → NOT_A_MESSAGE: %s', (xml) => {
    expectCode(xml, 'NOT_A_MESSAGE');
  });

  it('missing MsgType → NOT_A_MESSAGE with a helpful message', () => {
    const err = expectCode(push('<Content>x</Content><MsgId>1</MsgId>'), 'NOT_A_MESSAGE');
    expect(err.message).toBe('MsgType is missing: not a WeChat message');
    expect(err.field).toBe('MsgType');
    expectCode('<xml></xml>', 'NOT_A_MESSAGE');
    expectCode('<xml>just text</xml>', 'NOT_A_MESSAGE');
    expectCode(push('<MsgType></MsgType>'), 'NOT_A_MESSAGE');
  });

  it('event without Event → NOT_A_MESSAGE', () => {
    const err = expectCode(push('<MsgType><![CDATA[event]]></MsgType><EventKey>K</EventKey>'), 'NOT_A_MESSAGE');
    expect(err.message).toMatch(/an event without Event/);
  });

  it.each([
    ['FromUserName', `<xml>${TO}<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>`],
    ['ToUserName', `<xml>${FROM}<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>`],
    ['CreateTime', `<xml>${TO}${FROM}<MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>`],
    ['MsgId', push('<MsgType>text</MsgType><Content>x</Content>')],
    ['Content', push('<MsgType>text</MsgType><MsgId>1</MsgId>')],
    ['MediaId', push('<MsgType>image</MsgType><PicUrl>u</PicUrl><MsgId>1</MsgId>')],
    ['Format', push('<MsgType>voice</MsgType><MediaId>m</MediaId><MsgId>1</MsgId>')],
    ['ThumbMediaId', push('<MsgType>shortvideo</MsgType><MediaId>m</MediaId><MsgId>1</MsgId>')],
    ['Label', push('<MsgType>location</MsgType><Location_X>1</Location_X><Location_Y>2</Location_Y><Scale>3</Scale><MsgId>1</MsgId>')],
    ['Url', push('<MsgType>link</MsgType><Title>t</Title><Description>d</Description><MsgId>1</MsgId>')],
    ['EventKey', event('CLICK')],
    ['EventKey', event('VIEW', '<MenuId>1</MenuId>')],
    ['EventKey', event('SCAN', '<Ticket>T</Ticket>')],
    ['Precision', event('LOCATION', '<Latitude>1</Latitude><Longitude>2</Longitude>')],
  ])('missing %s → MISSING_FIELD naming it', (field, xml) => {
    const err = expectCode(xml, 'MISSING_FIELD');
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
  });

  it('the MISSING_FIELD message names the MsgType / Event', () => {
    expect(rejection(push('<MsgType>image</MsgType><PicUrl>u</PicUrl><MsgId>1</MsgId>')).message).toBe('MediaId is missing (required in a MsgType=image push)');
    expect(rejection(event('click')).message).toBe('EventKey is missing (required in a Event=CLICK push)');
  });

  it.each([
    ['CreateTime in ms? no: 13 digits', textPush('x').replace('1700000000', '1700000000000'), 'CreateTime'],
    ['negative CreateTime', textPush('x').replace('1700000000', '-1'), 'CreateTime'],
    ['decimal CreateTime', textPush('x').replace('1700000000', '1700000000.5'), 'CreateTime'],
    ['CreateTime with spaces', textPush('x').replace('1700000000', ' 1700000000 '), 'CreateTime'],
    ['empty CreateTime', textPush('x').replace('1700000000', ''), 'CreateTime'],
    ['MsgId 12a', textPush('x', '12a'), 'MsgId'],
    ['MsgId with 21 digits', textPush('x', '184467440737095516150'), 'MsgId'],
    ['negative MsgId', textPush('x', '-1'), 'MsgId'],
    ['empty MsgId', textPush('x', ''), 'MsgId'],
    ['two Content elements', textPush('a').replace('</xml>', '<Content>b</Content></xml>'), 'Content'],
    ['two MsgType elements', textPush('a').replace('</xml>', '<MsgType>text</MsgType></xml>'), 'MsgType'],
    ['two FromUserName elements', textPush('a').replace('</xml>', `${FROM}</xml>`), 'FromUserName'],
    ['two Event elements', event('CLICK', '<EventKey>K</EventKey><Event>VIEW</Event>'), 'Event'],
    ['Content with child elements', textPush('<b>bold</b>'), 'Content'],
    ['Event with child elements', push('<MsgType>event</MsgType><Event>CLICK<x/></Event><EventKey>K</EventKey>'), 'Event'],
  ])('%s → INVALID_FIELD', (_label, xml, field) => {
    const err = expectCode(xml, 'INVALID_FIELD');
    expect(err.field).toBe(field);
  });

  describe("ids in WeChat's format (issue 10, item 6; protocol README §2.2)", () => {
    const withIds = (to: string, from: string) =>
      `<xml><ToUserName><![CDATA[${to}]]></ToUserName><FromUserName><![CDATA[${from}]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>`;

    it.each([
      ['gh_0123456789ab', 'oUser000000000000000000000001'],
      ['gh_e136c6e50636', 'o6_bmjrPTlm6_2sgVt7hMZOPfL2M'], // the openid of the official docs' examples
      ['gh_a', 'oX-_9'],
      ['g', 'u'],
      ['gh_' + 'a'.repeat(61), 'o'.repeat(64)],
      ['wx0123456789abcdef', 'ozy4qt5QUADNXORxCVipKMV9dss0'],
    ])('ToUserName %s and FromUserName %s are accepted', (to, from) => {
      expect(parseMessage(withIds(to, from))).toMatchObject({ ToUserName: to, FromUserName: from });
    });

    const bad: Array<[string, string]> = [
      ['a colon', 'oX:oY'],
      ['an opening brace', 'o{X'],
      ['a closing brace', 'oX}'],
      ['braces (a Redis Cluster hash tag)', '{oX}'],
      ['a space', 'oX oY'],
      ['a leading space', ' oX'],
      ['a trailing newline', 'oX\n'],
      ['a tab', 'oX\toY'],
      ['nothing', ''],
      ['65 characters', 'o'.repeat(65)],
      ['a dot', 'oX.oY'],
      ['an @', 'oX@oY'],
      ['a slash', 'oX/oY'],
      ['an asterisk', 'oX*'],
      ['a Chinese character', 'o用户'],
      ['a full-width letter', 'oＡ'],
      ['a NUL', 'oX\u0000'],
      ['an entity reference that decodes to a colon', 'oX&#58;oY'],
    ];
    it.each(bad)('a FromUserName with %s → INVALID_ID naming FromUserName', (_name, id) => {
      const xml = id.includes('&') ? withIds('gh_0123456789ab', 'x').replace('<![CDATA[x]]>', id) : withIds('gh_0123456789ab', id);
      const err = expectCode(xml, 'INVALID_ID');
      expect(err.field).toBe('FromUserName');
      expect(err.message).toMatch(/^FromUserName .* is not a WeChat id: 1 to 64 letters, digits, _ or -$/);
    });
    it.each(bad)('a ToUserName with %s → INVALID_ID naming ToUserName', (_name, id) => {
      const xml = id.includes('&') ? withIds('x', 'oUser000000000000000000000001').replace('<![CDATA[x]]>', id) : withIds(id, 'oUser000000000000000000000001');
      const err = expectCode(xml, 'INVALID_ID');
      expect(err.field).toBe('ToUserName');
    });

    it('the pairs that would share a state key are both refused: gh_a + oX:oY and gh_a:oX + oY', () => {
      expect(expectCode(withIds('gh_a', 'oX:oY'), 'INVALID_ID').field).toBe('FromUserName');
      expect(expectCode(withIds('gh_a:oX', 'oY'), 'INVALID_ID').field).toBe('ToUserName');
    });

    it('ids are checked in every kind of push: events, unknown events, unknown message types', () => {
      for (const inner of ['<MsgType>event</MsgType><Event>subscribe</Event>', '<MsgType>event</MsgType><Event>future_event</Event>', '<MsgType>file</MsgType>']) {
        expect(expectCode(push(inner).replace(FROM, '<FromUserName>oX:oY</FromUserName>'), 'INVALID_ID').field).toBe('FromUserName');
      }
    });

    it('the message shows a long id shortened, and never more than 40 characters of it', () => {
      const err = expectCode(withIds('gh_0123456789ab', 'o'.repeat(100)), 'INVALID_ID');
      expect(err.message).toBe(`FromUserName "${'o'.repeat(40)}…" (100 characters) is not a WeChat id: 1 to 64 letters, digits, _ or -`);
    });
  });

  it('element names fast-xml-parser refuses (prototype pollution guard) → INVALID_FIELD', () => {
    for (const name of ['__proto__', 'constructor', 'prototype']) {
      const err = expectCode(textPush('x').replace('</xml>', `<${name}>1</${name}></xml>`), 'INVALID_FIELD');
      expect(err.cause).toBeInstanceOf(Error);
    }
  });

  it('error messages never contain the body', () => {
    const secret = 'SECRET-CONTENT-'.repeat(20);
    for (const xml of [textPush(`<![CDATA[${secret}]]>`, 'bad'), textPush(`<![CDATA[${secret}]]>`).slice(0, -7), `<foo>${secret}</foo>`]) {
      expect(rejection(xml).message).not.toContain('SECRET-CONTENT-SECRET');
    }
  });
});
