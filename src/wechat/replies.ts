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

/** An image reply: a picture uploaded beforehand as material (素材), by its `MediaId`. */
export interface ImageReply {
  readonly MsgType: 'image';
  readonly Image: { readonly MediaId: string };
}

/** A voice reply: an uploaded voice material, by its `MediaId`. */
export interface VoiceReply {
  readonly MsgType: 'voice';
  readonly Voice: { readonly MediaId: string };
}

/** A video reply: an uploaded video material, with an optional title and description. */
export interface VideoReply {
  readonly MsgType: 'video';
  readonly Video: { readonly MediaId: string; readonly Title?: string; readonly Description?: string };
}

/** The `Music` element of a music reply: only the thumbnail is required. */
export interface Music {
  readonly Title?: string;
  readonly Description?: string;
  /** The music's URL. */
  readonly MusicUrl?: string;
  /** High-quality music URL; WeChat prefers it on Wi-Fi. */
  readonly HQMusicUrl?: string;
  /** `MediaId` of the thumbnail (an uploaded material). */
  readonly ThumbMediaId: string;
}

/** A music reply. */
export interface MusicReply {
  readonly MsgType: 'music';
  readonly Music: Music;
}

/**
 * Hands the message to the customer-service system (消息转发到客服): a human agent answers it in
 * WeChat's customer-service tools. `TransInfo.KfAccount` targets one agent (`name@account`).
 * Source: 消息转发到客服 (`offiaccount/Customer_Service/Forwarding_of_messages_to_service_center.html`).
 */
export interface TransferCustomerServiceReply {
  readonly MsgType: 'transfer_customer_service';
  readonly TransInfo?: { readonly KfAccount: string };
}

/** Every passive reply (被动回复) a dialog can give. */
export type Reply = TextReply | ImageReply | VoiceReply | VideoReply | MusicReply | NewsReply | TransferCustomerServiceReply;

/**
 * Most articles WeChat accepts in one news reply (被动回复: "图文消息个数；当用户发送文本、图片、语音、视频、
 * 图文、地理位置这六种类型的消息时，开发者只能回复1条图文消息；其余场景最多可回复8条图文消息").
 */
export const MAX_NEWS_ARTICLES = 8;

/**
 * Longest passive text reply, in UTF-8 **bytes**, per the 2013-era 被动回复 doc ("不超过2048字节";
 * longer content got no response). The current doc states no limit (protocol README §3.3).
 */
export const MAX_TEXT_REPLY_BYTES = 2048;

/**
 * What WeChat may do to `reply` that its author would not expect, as sentences for a log or a
 * test: a text over {@link MAX_TEXT_REPLY_BYTES} (it may not be shown at all), or a news reply of
 * several articles to a user message (WeChat shows only the first; up to 8 for events).
 * @param answeringEvent - whether the reply answers an event (`MsgType=event`) rather than a message.
 * @returns an empty array when there is nothing to say.
 */
export function replyLimitWarnings(reply: Reply, answeringEvent: boolean): string[] {
  const warnings: string[] = [];
  if (reply.MsgType === 'text') {
    const bytes = Buffer.byteLength(reply.Content, 'utf8');
    if (bytes > MAX_TEXT_REPLY_BYTES) {
      warnings.push(`the text reply is ${bytes} bytes (UTF-8): WeChat may not show a passive text over ${MAX_TEXT_REPLY_BYTES} bytes`);
    }
  }
  if (reply.MsgType === 'news' && !answeringEvent && reply.Articles.length > 1) {
    warnings.push(`the news reply has ${reply.Articles.length} articles: WeChat shows only the first in answer to a user message`);
  }
  return warnings;
}

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

/** Throws unless `value` is a non-empty string; `what` names the argument in the message. */
function requireId(value: unknown, what: string, fn: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new ReplyError(`${fn} needs ${what} as a non-empty string, got ${describe(value)}: upload the material first and pass its id`);
  }
  return value;
}

/** Throws unless `value` is a string or `undefined`. */
function optionalString(value: unknown, what: string, fn: string): string | undefined {
  if (value !== undefined && typeof value !== 'string') throw new ReplyError(`${fn}: ${what} must be a string, got ${describe(value)}`);
  return value;
}

function describe(value: unknown): string {
  return value === '' ? 'an empty string' : value === null ? 'null' : typeof value;
}

/**
 * Copies the defined entries only, so absent optional fields stay absent (not `undefined`). Shared
 * with `customer-service.ts`; not part of the public API.
 */
export function defined<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as T;
}

/**
 * An image reply.
 * @param mediaId - `MediaId` of an uploaded image (temporary or permanent material).
 * @throws {ReplyError} when `mediaId` is not a non-empty string.
 */
export function image(mediaId: string): ImageReply {
  return { MsgType: 'image', Image: { MediaId: requireId(mediaId, 'a MediaId', 'image()') } };
}

/**
 * A voice reply.
 * @param mediaId - `MediaId` of an uploaded voice material.
 * @throws {ReplyError} when `mediaId` is not a non-empty string.
 */
export function voice(mediaId: string): VoiceReply {
  return { MsgType: 'voice', Voice: { MediaId: requireId(mediaId, 'a MediaId', 'voice()') } };
}

/**
 * A video reply.
 * @param mediaId - `MediaId` of an uploaded video material.
 * @param details - optional `Title` and `Description` shown with the video.
 * @throws {ReplyError} when `mediaId` is not a non-empty string, or a detail is not a string.
 */
export function video(mediaId: string, details: { readonly Title?: string; readonly Description?: string } = {}): VideoReply {
  const MediaId = requireId(mediaId, 'a MediaId', 'video()');
  const Title = optionalString(details.Title, 'Title', 'video()');
  const Description = optionalString(details.Description, 'Description', 'video()');
  return { MsgType: 'video', Video: defined({ MediaId, Title, Description }) };
}

/**
 * A music reply.
 * @param music - `ThumbMediaId` (required: an uploaded thumbnail), and optional `Title`,
 *   `Description`, `MusicUrl`, `HQMusicUrl`.
 * @throws {ReplyError} when `ThumbMediaId` is not a non-empty string, or another field is not a string.
 */
export function music(music: Music): MusicReply {
  const ThumbMediaId = requireId(music.ThumbMediaId, 'ThumbMediaId', 'music()');
  const [Title, Description, MusicUrl, HQMusicUrl] = (['Title', 'Description', 'MusicUrl', 'HQMusicUrl'] as const).map((k) =>
    optionalString(music[k], k, 'music()'),
  );
  return { MsgType: 'music', Music: defined({ Title, Description, MusicUrl, HQMusicUrl, ThumbMediaId }) };
}

/**
 * Hands the message to the customer-service system (消息转发到客服) instead of answering it.
 * @param kfAccount - an agent's account (`name@account`) to give it to; any online agent when omitted.
 * @throws {ReplyError} when `kfAccount` is given but is not a non-empty string.
 */
export function transferCustomerService(kfAccount?: string): TransferCustomerServiceReply {
  if (kfAccount === undefined) return { MsgType: 'transfer_customer_service' };
  return { MsgType: 'transfer_customer_service', TransInfo: { KfAccount: requireId(kfAccount, 'a KfAccount', 'transferCustomerService()') } };
}

/**
 * A news (图文) reply.
 * @param articles - 1 to {@link MAX_NEWS_ARTICLES} articles. WeChat shows only 1 in answer to a user
 *   message (text, image, voice, video, link, location); up to 8 in answer to events.
 * @throws {ReplyError} for 0 or more than 8 articles, or an article whose `Title`, `Description`,
 *   `PicUrl` or `Url` is not a string.
 */
export function news(articles: readonly Article[]): NewsReply {
  if (!Array.isArray(articles) || articles.length < 1 || articles.length > MAX_NEWS_ARTICLES) {
    const got = Array.isArray(articles) ? `${articles.length}` : describe(articles);
    throw new ReplyError(`news() needs 1 to ${MAX_NEWS_ARTICLES} articles, got ${got}: WeChat rejects other counts`);
  }
  articles.forEach((a, i) => {
    for (const field of ARTICLE_FIELDS) {
      if (typeof a?.[field] !== 'string') throw new ReplyError(`news(): article ${i} needs ${field} as a string, got ${describe(a?.[field])}`);
    }
  });
  return { MsgType: 'news', Articles: articles.map(({ Title, Description, PicUrl, Url }) => ({ Title, Description, PicUrl, Url })) };
}

const ARTICLE_FIELDS = ['Title', 'Description', 'PicUrl', 'Url'] as const;

/**
 * Whether `value` is a {@link Reply} WeChat accepts, with exactly the shapes the constructors above
 * build: the right `MsgType`, required ids non-empty strings, optional fields strings when present,
 * 1 to {@link MAX_NEWS_ARTICLES} articles. Used to check what a dialog yields.
 */
export function isReply(value: unknown): value is Reply {
  if (!isRecord(value)) return false;
  const isId = (v: unknown): boolean => typeof v === 'string' && v !== '';
  const allStrings = (o: unknown, keys: readonly string[]): boolean => isRecord(o) && keys.every((k) => o[k] === undefined || typeof o[k] === 'string');
  switch (value['MsgType']) {
    case 'text':
      return typeof value['Content'] === 'string';
    case 'image':
      return isRecord(value['Image']) && isId(value['Image']['MediaId']);
    case 'voice':
      return isRecord(value['Voice']) && isId(value['Voice']['MediaId']);
    case 'video':
      return isRecord(value['Video']) && isId(value['Video']['MediaId']) && allStrings(value['Video'], ['Title', 'Description']);
    case 'music':
      return (
        isRecord(value['Music']) &&
        isId(value['Music']['ThumbMediaId']) &&
        allStrings(value['Music'], ['Title', 'Description', 'MusicUrl', 'HQMusicUrl'])
      );
    case 'news': {
      const articles = value['Articles'];
      return (
        Array.isArray(articles) &&
        articles.length >= 1 &&
        articles.length <= MAX_NEWS_ARTICLES &&
        articles.every((a: unknown) => isRecord(a) && ARTICLE_FIELDS.every((f) => typeof a[f] === 'string'))
      );
    }
    case 'transfer_customer_service': {
      const info = value['TransInfo'];
      return info === undefined || (isRecord(info) && isId(info['KfAccount']));
    }
    default:
      return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
