/**
 * Passive replies (被动回复用户消息) as plain values, and their constructors.
 * Serialization to XML lives in `reply-xml.ts`; the dialog engine only passes these values along.
 *
 * Source: 被动回复用户消息 (`offiaccount/Message_Management/Passive_user_reply_message.html`).
 *
 * @module
 */

/** A text reply. */
export interface TextReply {
  readonly MsgType: 'text';
  /** The text shown to the user. Any characters; `]]>` and XML-special characters are handled when serialized. */
  readonly Content: string;
}

/** One article of a news (图文) reply. */
export interface Article {
  readonly Title: string;
  readonly Description: string;
  /** Picture URL (large picture 360×200, small 200×200, per the doc). */
  readonly PicUrl: string;
  /** Where a tap on the article leads. */
  readonly Url: string;
}

/** A news (图文) reply: 1 to {@link MAX_NEWS_ARTICLES} articles. */
export interface NewsReply {
  readonly MsgType: 'news';
  readonly Articles: readonly Article[];
}

/** Every reply a dialog can give. */
export type Reply = TextReply | NewsReply;

/**
 * Most articles WeChat accepts in one news reply (被动回复: "图文消息个数；当用户发送文本、图片、语音、视频、
 * 图文、地理位置这六种类型的消息时，开发者只能回复1条图文消息；其余场景最多可回复8条图文消息").
 */
export const MAX_NEWS_ARTICLES = 8;

/** Thrown by reply constructors for a value WeChat would reject. `code` is stable. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
  readonly code = 'INVALID_REPLY';
}

/**
 * A text reply.
 * @param content - the text, any characters.
 * @throws {ReplyError} when `content` is not a string.
 */
export function text(content: string): TextReply {
  if (typeof content !== 'string') {
    throw new ReplyError(`text() needs a string, got ${typeof content}: pass the text to show the user`);
  }
  return { MsgType: 'text', Content: content };
}

/**
 * A news (图文) reply.
 * @param articles - 1 to {@link MAX_NEWS_ARTICLES} articles. WeChat shows only 1 in answer to a user
 *   message (text, image, voice, video, link, location); up to 8 in answer to events.
 * @throws {ReplyError} for 0 or more than 8 articles.
 */
export function news(articles: readonly Article[]): NewsReply {
  if (articles.length < 1 || articles.length > MAX_NEWS_ARTICLES) {
    throw new ReplyError(
      `news() needs 1 to ${MAX_NEWS_ARTICLES} articles, got ${articles.length}: WeChat rejects other counts`,
    );
  }
  return { MsgType: 'news', Articles: articles.map((a) => ({ ...a })) };
}
