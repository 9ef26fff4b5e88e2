import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import {
  image,
  isReply,
  MAX_TEXT_REPLY_BYTES,
  music,
  replyLimitWarnings,
  news,
  ReplyError,
  text,
  transferCustomerService,
  video,
  voice,
  type Article,
  type NewsReply,
  type Reply,
} from '../../src/wechat/replies.js';
import { replyToXml, SUCCESS_BODY } from '../../src/wechat/reply-xml.js';
import { SAFE_XML_PARSER_OPTIONS } from '../../src/wechat/xml.js';

const to = { ToUserName: 'oUser000000000000000000000001', FromUserName: 'gh_0123456789ab', CreateTime: 1700000100 };

/** Parses reply XML back with the same safe options the inbound parser uses (`item` always a list). */
function parseBack(xml: string): Record<string, unknown> {
  expect(XMLValidator.validate(xml)).toBe(true);
  const doc = new XMLParser({ ...SAFE_XML_PARSER_OPTIONS, isArray: (name) => name === 'item' }).parse(xml) as Record<string, unknown>;
  expect(Object.keys(doc)).toEqual(['xml']);
  return doc['xml'] as Record<string, unknown>;
}
const contentOf = (content: string): unknown => parseBack(replyToXml(text(content), to))['Content'];

describe('SUCCESS_BODY', () => {
  it('is the literal "success" (被动回复用户消息: no reply)', () => {
    expect(SUCCESS_BODY).toBe('success');
  });
});

describe('text reply', () => {
  it('matches the documented XML exactly (README §3.2 example)', () => {
    expect(replyToXml(text('你好！'), to)).toBe(
      '<xml><ToUserName><![CDATA[oUser000000000000000000000001]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName><CreateTime>1700000100</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好！]]></Content></xml>',
    );
  });

  it('parses back field by field: ids as given, CreateTime as given, MsgType text', () => {
    const xml = parseBack(replyToXml(text('hello'), { ToUserName: 'openid-A', FromUserName: 'gh_B', CreateTime: 42 }));
    expect(xml).toStrictEqual({ ToUserName: 'openid-A', FromUserName: 'gh_B', CreateTime: '42', MsgType: 'text', Content: 'hello' });
  });

  it.each([
    ['start', ']]>abc'],
    ['end', 'abc]]>'],
    ['middle', 'a]]>b'],
    ['repeated', ']]>]]>'],
    ['extra bracket', ']]]>'],
    ['only brackets', ']]]]]>>>'],
    ['CDATA-looking text', '<![CDATA[x]]>y'],
    ['lone markers', ']] > ]>'],
  ])('`]]>` survives the round trip (%s): %j', (_label, content) => {
    expect(contentOf(content)).toBe(content);
  });

  it.each([
    ['<', 'a < b'],
    ['&', 'Tom & Jerry &amp; &#65; &lt;'],
    ['quotes', `he said "hi" and 'bye'`],
    ['markup', '<a href="https://example.com/?a=1&b=2">link</a>'],
    ['newlines', 'line 1\nline 2\n\nline 4\n'],
    ['tab', 'a\tb'],
    ['Chinese', '你好，世界。欢迎关注！'],
    ['emoji', '👍🏽 😀 👨‍👩‍👧 🇨🇳'],
    ['leading/trailing spaces', '  padded  '],
    ['empty', ''],
    ['digits', '007'],
  ])('%s survives the round trip', (_label, content) => {
    expect(contentOf(content)).toBe(content);
  });

  it('removes characters XML 1.0 forbids, keeps the rest', () => {
    const forbidden = '\u0000\u0001\u0008\u000B\u000C\u000E\u001F\uFFFE\uFFFF';
    const xml = replyToXml(text(`a${forbidden}b`), to);
    expect(xml).toContain('<Content><![CDATA[ab]]></Content>');
    expect(contentOf(`a${forbidden}b`)).toBe('ab');
  });

  it('removes lone surrogates but keeps valid surrogate pairs (emoji)', () => {
    expect(contentOf('x\uD800y\uDC00z😀')).toBe('xyz😀');
    expect(contentOf('😀'.slice(0, 1) + '!')).toBe('!');
  });

  it('keeps DEL and C1 controls (allowed in XML 1.0)', () => {
    expect(contentOf('a\u007F\u0085b')).toBe('a\u007F\u0085b');
  });

  it('\\r\\n comes back as \\n (XML end-of-line normalisation, not ours)', () => {
    expect(contentOf('a\r\nb')).toBe('a\nb');
  });

  it('ids are escaped the same way', () => {
    const xml = parseBack(replyToXml(text('x'), { ...to, ToUserName: 'o]]>x\u0001', FromUserName: 'gh_<&>' }));
    expect(xml['ToUserName']).toBe('o]]>x');
    expect(xml['FromUserName']).toBe('gh_<&>');
  });

  it.each([1700000100.5, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('rejects CreateTime %s (must be whole seconds)', (t) => {
    expect(() => replyToXml(text('x'), { ...to, CreateTime: t })).toThrow(ReplyError);
  });

  it('accepts CreateTime 0', () => {
    expect(parseBack(replyToXml(text('x'), { ...to, CreateTime: 0 }))['CreateTime']).toBe('0');
  });
});

describe('news reply', () => {
  const article = (i: number): Article => ({
    Title: `标题 ${i} ]]> <b>&`,
    Description: `摘要 ${i}\n😀`,
    PicUrl: `https://example.com/cover-${i}.jpg?a=1&b=2`,
    Url: `https://example.com/article/${i}`,
  });

  it('matches the documented XML exactly for one article (README §3.2 example)', () => {
    const reply = news([{ Title: '标题', Description: '摘要', PicUrl: 'https://example.com/cover.jpg', Url: 'https://example.com/article' }]);
    expect(replyToXml(reply, to)).toBe(
      '<xml><ToUserName><![CDATA[oUser000000000000000000000001]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName><CreateTime>1700000100</CreateTime><MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item><Title><![CDATA[标题]]></Title><Description><![CDATA[摘要]]></Description><PicUrl><![CDATA[https://example.com/cover.jpg]]></PicUrl><Url><![CDATA[https://example.com/article]]></Url></item></Articles></xml>',
    );
  });

  it.each([1, 2, 8])('%s article(s) parse back field by field, in order', (n) => {
    const articles = Array.from({ length: n }, (_, i) => article(i + 1));
    const xml = parseBack(replyToXml(news(articles), to));
    expect(xml).toStrictEqual({
      ToUserName: to.ToUserName,
      FromUserName: to.FromUserName,
      CreateTime: '1700000100',
      MsgType: 'news',
      ArticleCount: String(n),
      Articles: { item: articles },
    });
  });

  it('rejects a hand-built news value with 0 or 9 articles', () => {
    const zero: NewsReply = { MsgType: 'news', Articles: [] };
    const nine: NewsReply = { MsgType: 'news', Articles: Array.from({ length: 9 }, (_, i) => article(i)) };
    expect(() => replyToXml(zero, to)).toThrow(ReplyError);
    expect(() => replyToXml(nine, to)).toThrow(ReplyError);
  });
});

/** The documented XML of README §3.2, with the same ids and time as `to`. */
const HEAD = '<xml><ToUserName><![CDATA[oUser000000000000000000000001]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName><CreateTime>1700000100</CreateTime>';
const addressBack = { ToUserName: to.ToUserName, FromUserName: to.FromUserName, CreateTime: '1700000100' };

describe('image, voice, video, music and transfer_customer_service replies (被动回复, 消息转发到客服)', () => {
  it.each([
    ['image', image('MEDIA_ID'), '<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[MEDIA_ID]]></MediaId></Image></xml>'],
    ['voice', voice('MEDIA_ID'), '<MsgType><![CDATA[voice]]></MsgType><Voice><MediaId><![CDATA[MEDIA_ID]]></MediaId></Voice></xml>'],
    [
      'video',
      video('MEDIA_ID', { Title: '标题', Description: '描述' }),
      '<MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[MEDIA_ID]]></MediaId><Title><![CDATA[标题]]></Title><Description><![CDATA[描述]]></Description></Video></xml>',
    ],
    [
      'music',
      music({ Title: '歌名', Description: '歌手', MusicUrl: 'https://example.com/a.mp3', HQMusicUrl: 'https://example.com/a-hq.mp3', ThumbMediaId: 'THUMB_MEDIA_ID' }),
      '<MsgType><![CDATA[music]]></MsgType><Music><Title><![CDATA[歌名]]></Title><Description><![CDATA[歌手]]></Description><MusicUrl><![CDATA[https://example.com/a.mp3]]></MusicUrl><HQMusicUrl><![CDATA[https://example.com/a-hq.mp3]]></HQMusicUrl><ThumbMediaId><![CDATA[THUMB_MEDIA_ID]]></ThumbMediaId></Music></xml>',
    ],
    ['transfer_customer_service', transferCustomerService(), '<MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>'],
  ] as const)('%s matches the documented XML exactly (README §3.2 example)', (_type, reply, tail) => {
    expect(replyToXml(reply, to)).toBe(HEAD + tail);
  });

  it('transfer_customer_service to one agent carries TransInfo/KfAccount', () => {
    expect(parseBack(replyToXml(transferCustomerService('test1@test'), to))).toStrictEqual({
      ...addressBack,
      MsgType: 'transfer_customer_service',
      TransInfo: { KfAccount: 'test1@test' },
    });
  });

  it('optional video and music fields are left out, not written empty', () => {
    expect(parseBack(replyToXml(video('V'), to))).toStrictEqual({ ...addressBack, MsgType: 'video', Video: { MediaId: 'V' } });
    expect(parseBack(replyToXml(music({ ThumbMediaId: 'T', MusicUrl: 'https://m' }), to))).toStrictEqual({
      ...addressBack,
      MsgType: 'music',
      Music: { MusicUrl: 'https://m', ThumbMediaId: 'T' },
    });
    expect(video('V')).toStrictEqual({ MsgType: 'video', Video: { MediaId: 'V' } });
  });

  it('every value is escaped like text: ]]>, <, &, emoji and forbidden characters', () => {
    const tricky = 'a]]>b <c> & 😀\u0001';
    const back = parseBack(replyToXml(music({ Title: tricky, Description: tricky, ThumbMediaId: `T${tricky}` }), to));
    expect(back['Music']).toStrictEqual({ Title: 'a]]>b <c> & 😀', Description: 'a]]>b <c> & 😀', ThumbMediaId: 'Ta]]>b <c> & 😀' });
    expect(parseBack(replyToXml(image(tricky), to))['Image']).toStrictEqual({ MediaId: 'a]]>b <c> & 😀' });
  });

  it.each([
    ['image()', () => image('')],
    ['voice()', () => voice(undefined as unknown as string)],
    ['video()', () => video('')],
    ['video() with a numeric Title', () => video('V', { Title: 1 as unknown as string })],
    ['music()', () => music({ Title: 'no thumbnail' } as unknown as Parameters<typeof music>[0])],
    ['transferCustomerService()', () => transferCustomerService('')],
    ['news() with an article missing Url', () => news([{ Title: 't', Description: 'd', PicUrl: 'p' } as unknown as Article])],
  ])('%s with a missing or invalid value throws ReplyError naming the argument', (name, build) => {
    expect(build).toThrow(ReplyError);
    expect(build).toThrow(name.split(' ')[0]!.replace('()', ''));
  });
});

describe('isReply', () => {
  it('accepts what every constructor builds', () => {
    const replies: Reply[] = [
      text(''),
      image('I'),
      voice('V'),
      video('M', { Title: 't' }),
      music({ ThumbMediaId: 'T' }),
      news([{ Title: 't', Description: 'd', PicUrl: 'p', Url: 'u' }]),
      transferCustomerService(),
      transferCustomerService('a@b'),
    ];
    for (const reply of replies) expect(isReply(reply), JSON.stringify(reply)).toBe(true);
  });

  it.each([
    [null],
    ['text'],
    [{ MsgType: 'text' }],
    [{ MsgType: 'image', Image: {} }],
    [{ MsgType: 'image', MediaId: 'I' }],
    [{ MsgType: 'voice', Voice: { MediaId: '' } }],
    [{ MsgType: 'video', Video: { MediaId: 'M', Title: 5 } }],
    [{ MsgType: 'music', Music: { Title: 't' } }],
    [{ MsgType: 'news', Articles: [] }],
    [{ MsgType: 'transfer_customer_service', TransInfo: {} }],
    [{ MsgType: 'location' }],
  ])('refuses %j', (value) => {
    expect(isReply(value)).toBe(false);
  });
});

describe('unknown reply type', () => {
  it('throws ReplyError instead of writing a broken reply', () => {
    const bogus = { MsgType: 'location' } as unknown as Reply;
    expect(() => replyToXml(bogus, to)).toThrow(ReplyError);
    const noMusic = { MsgType: 'music' } as unknown as Reply;
    expect(() => replyToXml(noMusic, to)).toThrow(ReplyError);
  });
});

describe('replyLimitWarnings (limits WeChat applies without an error)', () => {
  const article = { Title: 't', Description: 'd', PicUrl: 'p', Url: 'u' };

  it('a text up to 2048 UTF-8 bytes is fine; one byte more is not, counting bytes, not characters', () => {
    expect(MAX_TEXT_REPLY_BYTES).toBe(2048);
    expect(replyLimitWarnings(text('a'.repeat(2048)), false)).toEqual([]);
    expect(replyLimitWarnings(text('a'.repeat(2049)), false)).toEqual([
      'the text reply is 2049 bytes (UTF-8): WeChat may not show a passive text over 2048 bytes',
    ]);
    // 683 Chinese characters are 2049 bytes: far under 2048 characters, still too long.
    expect(replyLimitWarnings(text('字'.repeat(683)), true)).toHaveLength(1);
    expect(replyLimitWarnings(text('字'.repeat(682)), true)).toEqual([]);
  });

  it('several news articles: a warning in answer to a message, none in answer to an event', () => {
    expect(replyLimitWarnings(news([article, article]), false)).toEqual([
      'the news reply has 2 articles: WeChat shows only the first in answer to a user message',
    ]);
    expect(replyLimitWarnings(news([article, article]), true)).toEqual([]);
    expect(replyLimitWarnings(news([article]), false)).toEqual([]);
  });
});
