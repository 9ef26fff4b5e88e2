/**
 * Passive replies (被动回复用户消息) as the XML WeChat expects in the HTTP response of the same POST.
 *
 * Source: 被动回复用户消息 (`offiaccount/Message_Management/Passive_user_reply_message.html`),
 * protocol README §3.
 *
 * @module
 */
import { isReply, MAX_NEWS_ARTICLES, ReplyError, type Article, type Reply } from './replies.js';
import { cdata } from './xml.js';

/**
 * The response body meaning "no reply" (WeChat then does nothing and does not retry). Send it as
 * `text/plain`; it is never encrypted. Source: 被动回复用户消息 (「直接回复success」).
 */
export const SUCCESS_BODY = 'success';

/** The reply envelope: ids already swapped relative to the inbound push. */
export interface ReplyAddress {
  /** The user's openid (the inbound `FromUserName`). */
  readonly ToUserName: string;
  /** The account's original id `gh_…` (the inbound `ToUserName`). */
  readonly FromUserName: string;
  /** Unix time in **seconds** (not milliseconds): a non-negative integer. */
  readonly CreateTime: number;
}

/**
 * Serialises a reply in the doc's element order, e.g. for text:
 * `<xml><ToUserName><![CDATA[openid]]></ToUserName><FromUserName><![CDATA[gh_…]]></FromUserName>
 * <CreateTime>1700000100</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[…]]></Content></xml>`
 * (one line, no XML declaration). Then, per type: `Image`/`Voice` → `MediaId`; `Video` → `MediaId`,
 * `Title`, `Description`; `Music` → `Title`, `Description`, `MusicUrl`, `HQMusicUrl`, `ThumbMediaId`;
 * news: `ArticleCount` then `<Articles><item>` with `Title`, `Description`, `PicUrl`, `Url` per
 * article; transfer_customer_service: nothing, or `TransInfo` → `KfAccount`. Absent optional
 * fields are left out (no empty elements).
 *
 * Every string is in CDATA; `]]>` inside a value is split across two sections so it parses back
 * intact. Characters XML 1.0 forbids (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+FFFE, U+FFFF,
 * lone surrogates) are **removed** from every value; everything else (Chinese, emoji, `<`, `&`,
 * newlines) is kept. The 2048-byte text limit and the 1-article limit for answers to user messages
 * (README §3.3) are not enforced here.
 *
 * @param reply - a {@link Reply} value (from `text()`, `image()`, `news()`, … in `replies.ts`).
 * @param to - the swapped ids and `CreateTime` in seconds.
 * @returns the XML body (send as `application/xml; charset=utf-8`).
 * @throws {ReplyError} if `CreateTime` is not a non-negative integer, or `reply` is not a shape the
 *   constructors build ({@link isReply}): an unknown `MsgType`, a missing `MediaId`, a news reply
 *   with no articles or more than {@link MAX_NEWS_ARTICLES}.
 */
export function replyToXml(reply: Reply, to: ReplyAddress): string {
  if (!Number.isSafeInteger(to.CreateTime) || to.CreateTime < 0) {
    throw new ReplyError(`CreateTime must be whole seconds (e.g. Math.floor(Date.now() / 1000)), got ${to.CreateTime}`);
  }
  if (!isReply(reply)) {
    const type = (reply as { MsgType?: unknown } | null)?.MsgType;
    throw new ReplyError(`cannot serialise this ${String(type)} reply: build it with text(), image(), voice(), video(), music(), news() or transferCustomerService()`);
  }
  const head =
    `<ToUserName>${cdata(to.ToUserName)}</ToUserName><FromUserName>${cdata(to.FromUserName)}</FromUserName>` +
    `<CreateTime>${to.CreateTime}</CreateTime><MsgType>${cdata(reply.MsgType)}</MsgType>`;
  return `<xml>${head}${body(reply)}</xml>`;
}

function body(reply: Reply): string {
  switch (reply.MsgType) {
    case 'text':
      return `<Content>${cdata(reply.Content)}</Content>`;
    case 'image':
      return `<Image>${elements(reply.Image, ['MediaId'])}</Image>`;
    case 'voice':
      return `<Voice>${elements(reply.Voice, ['MediaId'])}</Voice>`;
    case 'video':
      return `<Video>${elements(reply.Video, ['MediaId', 'Title', 'Description'])}</Video>`;
    case 'music':
      return `<Music>${elements(reply.Music, ['Title', 'Description', 'MusicUrl', 'HQMusicUrl', 'ThumbMediaId'])}</Music>`;
    case 'transfer_customer_service':
      return reply.TransInfo === undefined ? '' : `<TransInfo>${elements(reply.TransInfo, ['KfAccount'])}</TransInfo>`;
    case 'news': {
      const n = reply.Articles.length;
      if (n < 1 || n > MAX_NEWS_ARTICLES) {
        throw new ReplyError(`a news reply needs 1 to ${MAX_NEWS_ARTICLES} articles, got ${n}: build it with news()`);
      }
      return `<ArticleCount>${n}</ArticleCount><Articles>${reply.Articles.map(item).join('')}</Articles>`;
    }
    default: {
      const unknown: never = reply;
      throw new ReplyError(`cannot serialise a reply with MsgType ${String((unknown as { MsgType?: unknown }).MsgType)}`);
    }
  }
}

function item(a: Article): string {
  return `<item>${elements(a, ['Title', 'Description', 'PicUrl', 'Url'])}</item>`;
}

/** `<Name><![CDATA[value]]></Name>` for each of `names` in that order; absent (undefined) values are left out. */
function elements<T extends object>(fields: T, names: readonly (keyof T & string)[]): string {
  return names
    .map((name) => {
      const value = fields[name];
      return typeof value === 'string' ? `<${name}>${cdata(value)}</${name}>` : '';
    })
    .join('');
}
