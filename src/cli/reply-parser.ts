/**
 * A passive reply body, as WeChat receives it from the server URL, read back into a {@link Reply}:
 * the reverse of `src/wechat/reply-xml.ts`, for `wechat-dialog chat --url`. Also reads the
 * encrypted reply envelope of security mode.
 *
 * Sources: 被动回复用户消息 (`offiaccount/Message_Management/Passive_user_reply_message.html`,
 * protocol README §3.1–§3.2), 消息加解密说明 (README §4.5).
 *
 * @module
 */
import { XMLParser } from 'fast-xml-parser';
import { isReply, type Article, type Reply } from '../wechat/replies.js';
import { SUCCESS_BODY } from '../wechat/reply-xml.js';
import { SAFE_XML_PARSER_OPTIONS, findForbiddenMarkup } from '../wechat/xml.js';

/** Thrown when a reply body is not something WeChat would accept as a passive reply. */
export class ReplyParseError extends Error {
  override readonly name = 'ReplyParseError';
  readonly code = 'BAD_REPLY';
}

/** A passive reply with its envelope, as read from the XML. */
export interface ParsedReply {
  readonly reply: Reply;
  /** Should be the openid of the user who sent the push (the push's `FromUserName`). */
  readonly ToUserName: string;
  /** Should be the account's original id `gh_…` (the push's `ToUserName`). */
  readonly FromUserName: string;
  /** Unix time in **seconds**, as the reply states it. */
  readonly CreateTime: number;
}

/** The security-mode reply envelope (README §4.5): every value the exact string received. */
export interface EncryptedReplyEnvelope {
  readonly Encrypt: string;
  readonly MsgSignature: string;
  readonly TimeStamp: string;
  readonly Nonce: string;
}

type Element = Readonly<Record<string, unknown>>;

const parser = new XMLParser({ ...SAFE_XML_PARSER_OPTIONS, isArray: (name) => name === 'item' });

/**
 * Whether `body` means "no reply": exactly `success` or empty (zero bytes), the two bodies WeChat
 * documents for it (被动回复用户消息 「直接回复success」, README §3.1). Anything else, even
 * `success` with a trailing newline, must be reply XML.
 */
export function isNoReplyBody(body: string): boolean {
  return body === '' || body === SUCCESS_BODY;
}

/**
 * Reads a plaintext reply XML (`<xml><ToUserName/><FromUserName/><CreateTime/><MsgType/>…</xml>`)
 * into a {@link Reply} of the shape the reply constructors build, with its envelope.
 *
 * Every value stays the string sent (CDATA untouched, not trimmed). `text`, `image`, `voice`,
 * `video`, `music`, `news` and `transfer_customer_service` are read (README §3.2); for news,
 * `ArticleCount` must equal the number of `<item>` elements.
 *
 * @param xml - the reply XML (the response body in plaintext mode, the decrypted `Encrypt` in
 *   security mode).
 * @throws {ReplyParseError} when it is not well-formed `<xml>`, contains a markup declaration,
 *   lacks a field, has an unknown `MsgType`, or is not a reply WeChat accepts (`isReply`: an empty
 *   `MediaId`, 0 or more than 8 articles).
 */
export function parseReplyXml(xml: string): ParsedReply {
  const root = readRoot(xml);
  const msgType = required(root, 'MsgType');
  const createTime = required(root, 'CreateTime');
  if (!/^\d{1,12}$/.test(createTime)) throw new ReplyParseError(`CreateTime "${createTime.slice(0, 40)}" is not Unix seconds`);
  const reply = readReply(root, msgType);
  if (!isReply(reply)) throw new ReplyParseError(`the ${msgType} reply is not one WeChat accepts: an id is empty or a field is missing`);
  return { reply, ToUserName: required(root, 'ToUserName'), FromUserName: required(root, 'FromUserName'), CreateTime: Number(createTime) };
}

/**
 * Reads the encrypted reply envelope of security mode
 * (`<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`, README §4.5). Checking
 * `MsgSignature` and decrypting is the caller's (`verifyAndDecryptMessage` in `wechat/crypto.ts`,
 * with `TimeStamp` and `Nonce` in place of the query's `timestamp` and `nonce`).
 *
 * @param xml - the response body.
 * @returns the four values, or `undefined` when the body is well-formed `<xml>` without
 *   `<Encrypt>` (a plaintext reply: WeChat in security mode needs it encrypted).
 * @throws {ReplyParseError} when the body is not well-formed `<xml>`, or `Encrypt` is present
 *   but `MsgSignature`, `TimeStamp` or `Nonce` is missing.
 */
export function readEncryptedReply(xml: string): EncryptedReplyEnvelope | undefined {
  const root = readRoot(xml);
  if (!Object.hasOwn(root, 'Encrypt')) return undefined;
  return {
    Encrypt: required(root, 'Encrypt'),
    MsgSignature: required(root, 'MsgSignature'),
    TimeStamp: required(root, 'TimeStamp'),
    Nonce: required(root, 'Nonce'),
  };
}

function readReply(root: Element, msgType: string): Reply {
  switch (msgType) {
    case 'text':
      return { MsgType: 'text', Content: required(root, 'Content') };
    case 'image':
      return { MsgType: 'image', Image: { MediaId: required(child(root, 'Image'), 'MediaId', 'Image.') } };
    case 'voice':
      return { MsgType: 'voice', Voice: { MediaId: required(child(root, 'Voice'), 'MediaId', 'Voice.') } };
    case 'video': {
      const video = child(root, 'Video');
      return { MsgType: 'video', Video: { MediaId: required(video, 'MediaId', 'Video.'), ...optional(video, ['Title', 'Description'], 'Video.') } };
    }
    case 'music': {
      const music = child(root, 'Music');
      return {
        MsgType: 'music',
        Music: { ...optional(music, ['Title', 'Description', 'MusicUrl', 'HQMusicUrl'], 'Music.'), ThumbMediaId: required(music, 'ThumbMediaId', 'Music.') },
      };
    }
    case 'news': {
      const count = required(root, 'ArticleCount');
      const items = child(root, 'Articles')['item'];
      const list: unknown[] = Array.isArray(items) ? items : [];
      if (count !== String(list.length)) {
        throw new ReplyParseError(`ArticleCount is "${count.slice(0, 20)}" but Articles has ${list.length} <item> elements`);
      }
      const articles = list.map((item, i): Article => {
        const at = `Articles.item[${i}].`;
        const article = isElement(item) ? item : {};
        return {
          Title: required(article, 'Title', at),
          Description: required(article, 'Description', at),
          PicUrl: required(article, 'PicUrl', at),
          Url: required(article, 'Url', at),
        };
      });
      return { MsgType: 'news', Articles: articles };
    }
    case 'transfer_customer_service':
      return Object.hasOwn(root, 'TransInfo')
        ? { MsgType: 'transfer_customer_service', TransInfo: { KfAccount: required(child(root, 'TransInfo'), 'KfAccount', 'TransInfo.') } }
        : { MsgType: 'transfer_customer_service' };
    default:
      throw new ReplyParseError(`MsgType "${msgType.slice(0, 40)}" is not a passive reply type (text, image, voice, video, music, news, transfer_customer_service)`);
  }
}

/**
 * Rejects declarations and malformed XML (the same scan the push parser uses, WeChat's subset of
 * XML), parses, and returns the children of the `<xml>` root.
 */
function readRoot(xml: string): Element {
  const found = findForbiddenMarkup(xml, { document: true });
  if (found?.kind === 'declaration' || found?.kind === 'processing-instruction') {
    throw new ReplyParseError('the reply contains <!DOCTYPE or <!ENTITY');
  }
  if (found !== undefined) {
    const what = found.kind === 'attribute' ? `an attribute on <${found.name}>` : found.kind === 'unbalanced' ? found.name : `a tag it cannot read at offset ${found.at}`;
    throw new ReplyParseError(`the answer is not "success" and not well-formed XML: ${what}: ${preview(xml)}`);
  }
  let doc: unknown;
  try {
    doc = parser.parse(xml);
  } catch (err) {
    throw new ReplyParseError(`the XML parser refused the reply: ${String(err).slice(0, 160)}`, { cause: err });
  }
  const roots = isElement(doc) ? Object.keys(doc).filter((k) => k !== '#text') : [];
  if (roots.length !== 1 || roots[0] !== 'xml' || !isElement(doc)) {
    throw new ReplyParseError(`the root element is <${roots.join('>, <').slice(0, 60)}>, not <xml>: ${preview(xml)}`);
  }
  const root = doc['xml'];
  return isElement(root) ? root : {};
}

/** The text of `name`; absent, repeated or nested → {@link ReplyParseError}. */
function required(element: Element, name: string, path = ''): string {
  const value = element[name];
  if (!Object.hasOwn(element, name) || value === undefined) throw new ReplyParseError(`${path}${name} is missing from the reply`);
  if (typeof value !== 'string') throw new ReplyParseError(`${path}${name} in the reply is not one text value`);
  return value;
}

/** The present ones of `names` as strings. */
function optional(element: Element, names: readonly string[], path: string): Record<string, string> {
  return Object.fromEntries(names.filter((name) => Object.hasOwn(element, name)).map((name) => [name, required(element, name, path)]));
}

/** The element `name` with child elements (`<Image>`, `<Articles>`); absent or text → {@link ReplyParseError}. */
function child(parent: Element, name: string): Element {
  const value = parent[name];
  if (isElement(value)) return value;
  if (!Object.hasOwn(parent, name)) throw new ReplyParseError(`${name} is missing from the reply`);
  throw new ReplyParseError(`${name} in the reply has no child elements`);
}

function isElement(value: unknown): value is Element {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The start of a body for an error message: one line, at most 80 characters. */
function preview(body: string): string {
  const line = body.replace(/\s+/g, ' ').trim();
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
}
