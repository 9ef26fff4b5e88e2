/**
 * Inbound XML → {@link InboundMessage}.
 *
 * Sources: 接收普通消息, 接收事件推送, 自定义菜单事件推送 (see `messages.ts`); protocol README §2.
 *
 * @module
 */
import { XMLParser } from 'fast-xml-parser';
import type {
  EventMessage,
  EventOf,
  InboundMessage,
  KnownEvent,
  OrdinaryMessageBase,
  PicEvent,
  ScanCodeEvent,
  UnknownEvent,
  UnknownMessage,
} from './messages.js';
import { DtdRefusedError, SAFE_XML_PARSER_OPTIONS, findForbiddenMarkup, type ForbiddenMarkup } from './xml.js';

/** Why a body was rejected; stable, for logs and for choosing the HTTP status (all mean 400). */
export type MessageParseErrorCode =
  | 'NOT_XML' // empty, or not well-formed XML
  | 'DOCTYPE_FORBIDDEN' // a <!DOCTYPE, <!ENTITY or other markup declaration, or a processing instruction, outside CDATA and comments
  | 'ATTRIBUTE_FORBIDDEN' // an element with an attribute (WeChat sends none)
  | 'NOT_A_MESSAGE' // root is not <xml>, no MsgType, or an event without Event
  | 'MISSING_FIELD' // a field the doc says is always present is absent
  | 'INVALID_FIELD' // a field is repeated, has child elements, or has the wrong format
  | 'INVALID_ID'; // ToUserName or FromUserName is not 1 to 64 letters, digits, _ or -

/**
 * Thrown by {@link parseMessage}. The message names the problem (`"MsgType is missing: not a WeChat
 * message"`) and never contains the body; `field` names the element concerned, when there is one.
 */
export class MessageParseError extends Error {
  override readonly name = 'MessageParseError';
  readonly code: MessageParseErrorCode;
  readonly field: string | undefined;

  constructor(code: MessageParseErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
  }
}

/**
 * Element names of one message type (or of a nested element): text fields the doc says are always
 * present, optional text fields, and nested elements with their own spec (a list is read from its
 * `<item>` children). Typed against `messages.ts`, so a misspelt or misplaced field, or a nested
 * element read as text, is a compile error.
 */
type FieldSpec<T> = {
  readonly required: readonly RequiredKeys<T, TextKeys<T>>[];
  readonly optional: readonly Exclude<TextKeys<T>, RequiredKeys<T, TextKeys<T>>>[];
} & ([NestedKeys<T>] extends [never]
  ? { readonly nested?: never }
  : {
      readonly nested: {
        readonly [K in NestedKeys<T>]-?: NonNullable<T[K]> extends readonly (infer I)[]
          ? { readonly items: FieldSpec<I> }
          : { readonly fields: FieldSpec<NonNullable<T[K]>>; readonly optional: object extends Pick<T, K> ? true : false };
      };
    });
type OwnKeys<T> = Extract<Exclude<keyof T, keyof OrdinaryMessageBase | 'MsgType' | 'Event'>, string>;
type TextKeys<T> = { [K in OwnKeys<T>]-?: NonNullable<T[K]> extends string ? K : never }[OwnKeys<T>];
type NestedKeys<T> = Exclude<OwnKeys<T>, TextKeys<T>>;
type RequiredKeys<T, K extends keyof T> = { [P in K]-?: object extends Pick<T, P> ? never : P }[K];
type SpecTable<U, D extends string, V extends string> = { readonly [K in V]: FieldSpec<Extract<U, Record<D, K>>> };
type EventSpecTable = { readonly [E in KnownEvent]: FieldSpec<EventOf<E>> };

/** What the reading code sees of a {@link FieldSpec}. */
interface Spec {
  readonly required: readonly string[];
  readonly optional: readonly string[];
  readonly nested?: Readonly<Record<string, { readonly items: Spec } | { readonly fields: Spec; readonly optional: boolean }>>;
}

type OrdinaryType = 'text' | 'image' | 'voice' | 'video' | 'shortvideo' | 'location' | 'link';

/** The one lookup table from `MsgType` (ordinary messages; all also carry `MsgId`) to fields. */
const MESSAGE_FIELDS: SpecTable<InboundMessage, 'MsgType', OrdinaryType> = {
  text: { required: ['Content'], optional: ['MsgDataId', 'Idx'] },
  image: { required: ['PicUrl', 'MediaId'], optional: ['MsgDataId', 'Idx'] },
  voice: { required: ['MediaId', 'Format'], optional: ['Recognition'] },
  video: { required: ['MediaId', 'ThumbMediaId'], optional: [] },
  shortvideo: { required: ['MediaId', 'ThumbMediaId'], optional: [] },
  location: { required: ['Location_X', 'Location_Y', 'Scale', 'Label'], optional: [] },
  link: { required: ['Title', 'Description', 'Url'], optional: [] },
};

const SCAN_CODE: FieldSpec<ScanCodeEvent> = {
  required: ['EventKey'],
  optional: [],
  nested: { ScanCodeInfo: { fields: { required: ['ScanType', 'ScanResult'], optional: [] }, optional: false } },
};
const PICTURES: FieldSpec<PicEvent> = {
  required: ['EventKey'],
  optional: [],
  nested: {
    SendPicsInfo: {
      fields: { required: ['Count'], optional: [], nested: { PicList: { items: { required: ['PicMd5Sum'], optional: [] } } } },
      optional: false,
    },
  },
};
const JOB_RESULT_LIST = { required: [], optional: ['Count'] } as const;

/** ... and from `Event` (documented casing) to fields, for `MsgType=event`. */
const EVENT_FIELDS: EventSpecTable = {
  subscribe: { required: [], optional: ['EventKey', 'Ticket'] },
  unsubscribe: { required: [], optional: [] },
  SCAN: { required: ['EventKey'], optional: ['Ticket'] },
  LOCATION: { required: ['Latitude', 'Longitude', 'Precision'], optional: [] },
  CLICK: { required: ['EventKey'], optional: [] },
  VIEW: { required: ['EventKey'], optional: ['MenuId'] },
  scancode_push: SCAN_CODE,
  scancode_waitmsg: SCAN_CODE,
  pic_sysphoto: PICTURES,
  pic_photo_or_album: PICTURES,
  pic_weixin: PICTURES,
  location_select: {
    required: ['EventKey'],
    optional: [],
    nested: {
      SendLocationInfo: {
        fields: { required: ['Location_X', 'Location_Y', 'Scale', 'Label'], optional: ['Poiname'] },
        optional: false,
      },
    },
  },
  view_miniprogram: { required: ['EventKey'], optional: ['MenuId'] },
  TEMPLATESENDJOBFINISH: { required: ['MsgID', 'Status'], optional: [] },
  MASSSENDJOBFINISH: {
    required: ['MsgID', 'Status'],
    optional: ['TotalCount', 'FilterCount', 'SentCount', 'ErrorCount'],
    nested: {
      CopyrightCheckResult: {
        fields: {
          ...JOB_RESULT_LIST,
          optional: ['Count', 'CheckState'],
          nested: {
            ResultList: {
              items: {
                required: [],
                optional: [
                  'ArticleIdx',
                  'UserDeclareState',
                  'AuditState',
                  'OriginalArticleUrl',
                  'OriginalArticleType',
                  'CanReprint',
                  'NeedReplaceContent',
                  'NeedShowReprintSource',
                ],
              },
            },
          },
        },
        optional: true,
      },
      ArticleUrlResult: {
        fields: { ...JOB_RESULT_LIST, nested: { ResultList: { items: { required: [], optional: ['ArticleIdx', 'ArticleUrl'] } } } },
        optional: true,
      },
    },
  },
};

const EVENT_BY_LOWER_CASE = new Map(Object.keys(EVENT_FIELDS).map((e) => [e.toLowerCase(), e as KnownEvent]));

const MSG_ID = /^\d{1,20}$/;

/**
 * What `ToUserName` and `FromUserName` must be: 1 to 64 ASCII letters, digits, `_` and `-`.
 *
 * WeChat's ids are made of those characters: an openid is 28 of them in practice (protocol README
 * §2.2, "Common fields"; wechatpy's `client/api/message.py` checks `OPENID_RE = ^[\w\-]{28}$`
 * before sending to one), and an account's original id is `gh_` and 12 more (hex digits in every
 * example). The length is left loose, 1 to 64, for other kinds of ids and for test fixtures (the
 * sandbox test account, mini programs, unionid-style ids of 29); the characters are not (ASCII only,
 * where Python's `\w` also takes other scripts), because the ids become storage keys
 * (`{account:openid}`, a Redis Cluster hash tag) and a reply's address: with `:`, `{` or `}`
 * allowed, `gh_a` + `oX:oY` and `gh_a:oX` + `oY` would share one key, and braces in an openid would
 * move its key to another slot.
 */
export const WECHAT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Format checks for required fields: a predicate and what it expects, for the error message. */
interface Format {
  readonly test: (value: string) => boolean;
  readonly expected: string;
}
const SECONDS: Format = { test: (v) => /^\d{1,12}$/.test(v), expected: 'Unix seconds (1 to 12 digits)' };
const ID: Format = { test: (v) => MSG_ID.test(v), expected: 'a 64-bit id (1 to 20 digits)' };
/** Formats of typed fields, by element name (the job-finish events' `MsgID` is a 64-bit id like `MsgId`). */
const FIELD_FORMATS: Readonly<Record<string, Format | undefined>> = { MsgID: ID };

type Element = Readonly<Record<string, unknown>>;

/**
 * One parser for every push: building one sets up its options and entity tables (measurable per
 * request); `parse` keeps no state between calls (its entity decoder is stateless).
 */
const XML_PARSER = new XMLParser(SAFE_XML_PARSER_OPTIONS);

/**
 * Parses one plaintext push body (the decrypted XML in security mode) into a typed message.
 *
 * Every value stays the string WeChat sent (CDATA untouched, not trimmed; `MsgId` never becomes a
 * number); only `CreateTime` becomes a number (seconds). Element order does not matter; unknown
 * elements are ignored. Nested elements of menu and job-finish events (`ScanCodeInfo`,
 * `SendPicsInfo`, `SendLocationInfo`, `CopyrightCheckResult`, `ArticleUrlResult`) become objects, and
 * their `<item>` lists arrays (one item or none included). An unknown `MsgType` gives an
 * {@link UnknownMessage}, an unknown `Event` an {@link UnknownEvent} (both keep every top-level text
 * element in `Fields`); typed events match case-insensitively and come back in the documented casing.
 *
 * @param xml - the body, decoded as UTF-8.
 * @throws {MessageParseError} `DOCTYPE_FORBIDDEN` if the body contains a markup declaration such as
 *   `<!DOCTYPE` or `<!ENTITY`, or a processing instruction other than an XML declaration at the very
 *   start, anywhere outside CDATA and comments (checked before parsing: no entity expansion, no XXE;
 *   a user's text like `<!DOCTYPE html>` inside a CDATA `Content` is fine); `ATTRIBUTE_FORBIDDEN`
 *   if an element has an attribute (WeChat sends none; refusing them is what lets the check above
 *   see every declaration, see `findForbiddenMarkup` in `xml.ts`); `NOT_XML` if not well-formed;
 *   `NOT_A_MESSAGE` if the root is not `<xml>`, `MsgType` is missing, or an event has no `Event`;
 *   `INVALID_ID` if `ToUserName` or `FromUserName` is not 1 to 64 ASCII letters, digits, `_` or `-`
 *   (WeChat's ids are; protocol README §2.2, wechatpy `client/api/message.py`; `field` names which);
 *   `MISSING_FIELD` / `INVALID_FIELD` for an absent or malformed field (`field` names it with its
 *   path, e.g. `SendLocationInfo.Label`).
 */
export function parseMessage(xml: string): InboundMessage {
  const root = readRoot(xml);
  const msgType = text(root, 'MsgType');
  if (!msgType) throw new MessageParseError('NOT_A_MESSAGE', 'MsgType is missing: not a WeChat message', { field: 'MsgType' });
  const kind = `MsgType=${msgType.slice(0, 40)}`;
  const base = {
    ToUserName: wechatId(root, 'ToUserName', kind),
    FromUserName: wechatId(root, 'FromUserName', kind),
    CreateTime: Number(required(root, 'CreateTime', kind, SECONDS)),
  };

  if (Object.hasOwn(MESSAGE_FIELDS, msgType)) {
    const type = msgType as OrdinaryType;
    const head = { ...base, MsgType: type, MsgId: required(root, 'MsgId', kind, ID) };
    return build(root, head, MESSAGE_FIELDS[type], kind);
  }
  if (msgType === 'event') {
    const rawEvent = text(root, 'Event');
    if (!rawEvent) throw new MessageParseError('NOT_A_MESSAGE', 'an event without Event: not a WeChat event push', { field: 'Event' });
    const event = EVENT_BY_LOWER_CASE.get(rawEvent.toLowerCase());
    if (event) return build(root, { ...base, MsgType: 'event', Event: event }, EVENT_FIELDS[event], `Event=${event}`);
    const eventKey = root['EventKey'];
    return {
      ...base,
      MsgType: 'event',
      Event: 'unknown',
      RawEvent: rawEvent,
      ...(Object.hasOwn(root, 'EventKey') && typeof eventKey === 'string' ? { EventKey: eventKey } : {}),
      Fields: topLevelText(root),
    } satisfies UnknownEvent;
  }
  const msgId = root['MsgId'];
  return {
    ...base,
    MsgType: 'unknown',
    RawMsgType: msgType,
    ...(Object.hasOwn(root, 'MsgId') && typeof msgId === 'string' && MSG_ID.test(msgId) ? { MsgId: msgId } : {}),
    Fields: topLevelText(root),
  } satisfies UnknownMessage;
}

/**
 * The `Encrypt` element of a security-mode push (`<xml><ToUserName/><Encrypt/></xml>`, or a
 * compatible-mode body that also carries the plaintext fields), with the same XML safety checks
 * as {@link parseMessage}. Source: 消息加解密说明.
 * @throws {MessageParseError} as {@link parseMessage} for a body that is not safe, well-formed
 *   `<xml>`; `MISSING_FIELD` when `Encrypt` is absent or empty.
 */
export function readEncrypt(xml: string): string {
  const value = text(readRoot(xml), 'Encrypt');
  if (value === undefined || value === '') {
    throw new MessageParseError('MISSING_FIELD', 'Encrypt is missing: an encrypted push (encrypt_type=aes) carries <Encrypt>', {
      field: 'Encrypt',
    });
  }
  return value;
}

/**
 * Rejects declarations, processing instructions, attributes and malformed XML, parses, and returns
 * the children of the `<xml>` root.
 */
function readRoot(xml: string): Element {
  if (typeof xml !== 'string' || xml === '') throw new MessageParseError('NOT_XML', 'the body is empty: expected WeChat XML');
  const forbidden = findForbiddenMarkup(xml, { document: true });
  if (forbidden !== undefined) throw forbiddenMarkupError(forbidden);
  let doc: unknown;
  try {
    doc = XML_PARSER.parse(xml);
  } catch (err) {
    // Not reached while findForbiddenMarkup is right: the parser's own refusal of any DTD.
    if (err instanceof DtdRefusedError) {
      throw new MessageParseError('DOCTYPE_FORBIDDEN', 'the body contains a <!DOCTYPE: WeChat never sends a DTD', { cause: err });
    }
    // fast-xml-parser refuses element names like `constructor`, `__proto__` (prototype pollution).
    throw new MessageParseError('INVALID_FIELD', `the XML parser refused the body: ${String(err).slice(0, 160)}`, { cause: err });
  }
  const roots = isElement(doc) ? Object.keys(doc).filter((k) => k !== '#text') : [];
  if (roots.length !== 1 || roots[0] !== 'xml' || !isElement(doc)) {
    throw new MessageParseError('NOT_A_MESSAGE', `the root element is <${roots.join('>, <').slice(0, 60)}>, not <xml>: not a WeChat message`);
  }
  const root = doc['xml'];
  return isElement(root) ? root : {}; // `<xml></xml>` or `<xml>text</xml>` parse as a string
}

/** The error for markup WeChat never sends (see {@link findForbiddenMarkup}); names what, never the body's text. */
function forbiddenMarkupError(found: ForbiddenMarkup): MessageParseError {
  switch (found.kind) {
    case 'declaration':
      return new MessageParseError('DOCTYPE_FORBIDDEN', `the body contains a markup declaration (${found.name}): WeChat never sends a DTD`);
    case 'processing-instruction':
      return new MessageParseError(
        'DOCTYPE_FORBIDDEN',
        `the body contains a processing instruction (${found.name}) other than an XML declaration at the start: WeChat never sends one`,
      );
    case 'attribute':
      return new MessageParseError('ATTRIBUTE_FORBIDDEN', `the element <${found.name}> has an attribute: WeChat never sends attributes`, {
        field: found.name,
      });
    case 'unbalanced':
      return new MessageParseError('NOT_XML', `the body is not well-formed XML: ${found.name}`);
    case 'malformed': {
      const what =
        found.name === '<![CDATA['
          ? 'a CDATA section is not closed'
          : found.name === '<!--'
            ? 'a comment is not closed'
            : found.name === ''
              ? "a '<' starts no tag"
              : `a tag of <${found.name}> holds more than its name`;
      return new MessageParseError('NOT_XML', `the body is not well-formed XML: ${what} (offset ${found.at})`);
    }
  }
}

/** Copies `spec`'s fields from `root` onto `head`; absent optional fields are omitted. */
function build(root: Element, head: Record<string, unknown>, spec: Spec, kind: string): InboundMessage {
  // Sound because the tables are typed against the message interfaces (FieldSpec above).
  return readFields(root, spec, '', kind, head) as unknown as InboundMessage;
}

/** Reads `spec` from `element` into `out`; `path` (`''` or `'SendPicsInfo.'`) prefixes field names in errors. */
function readFields(element: Element, spec: Spec, path: string, kind: string, out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const name of spec.required) out[name] = required(element, name, kind, FIELD_FORMATS[name], path);
  for (const name of spec.optional) {
    const value = text(element, name, path);
    if (value !== undefined) out[name] = value;
  }
  for (const [name, nested] of Object.entries(spec.nested ?? {})) {
    const child = childElement(element, name, path);
    if ('items' in nested) {
      out[name] = listItems(child).map((item, i) => readFields(item, nested.items, `${path}${name}.item[${i}].`, kind));
    } else if (child !== undefined) {
      out[name] = readFields(child, nested.fields, `${path}${name}.`, kind);
    } else if (!nested.optional) {
      throw new MessageParseError('MISSING_FIELD', `${path}${name} is missing (required in a ${kind} push)`, { field: `${path}${name}` });
    }
  }
  return out;
}

/**
 * The element `name` of `parent` as an object of children; `undefined` if absent. An element with
 * no children (`<ResultList></ResultList>`, or only whitespace) is an empty object.
 * @throws {MessageParseError} `INVALID_FIELD` if repeated or if it holds text instead of elements.
 */
function childElement(parent: Element, name: string, path: string): Element | undefined {
  if (!Object.hasOwn(parent, name)) return undefined;
  const value = parent[name];
  if (isElement(value)) return value;
  if (typeof value === 'string' && value.trim() === '') return {};
  const problem = Array.isArray(value) ? `appears ${value.length} times` : 'holds text';
  throw new MessageParseError('INVALID_FIELD', `${path}${name} ${problem}: expected one element with child elements`, { field: `${path}${name}` });
}

/** The `<item>` children of a list element (`PicList`, `ResultList`): none, one or many, always an array. */
function listItems(list: Element | undefined): Element[] {
  if (list === undefined || !Object.hasOwn(list, 'item')) return [];
  const items: unknown = list['item'];
  return (Array.isArray(items) ? items : [items]).map((item) => (isElement(item) ? item : {}));
}

/** The text of element `name` of `element`, `undefined` if absent. Repeated or nested → INVALID_FIELD. */
function text(element: Element, name: string, path = ''): string | undefined {
  if (!Object.hasOwn(element, name)) return undefined;
  const value = element[name];
  if (typeof value === 'string') return value;
  const problem = Array.isArray(value) ? `appears ${value.length} times` : 'contains child elements';
  throw new MessageParseError('INVALID_FIELD', `${path}${name} ${problem}: expected one text value`, { field: `${path}${name}` });
}

/** A text field the doc says is always present: absent → MISSING_FIELD, bad format → INVALID_FIELD. */
function required(element: Element, name: string, kind: string, format?: Format, path = ''): string {
  const value = text(element, name, path);
  const field = `${path}${name}`;
  if (value === undefined) throw new MessageParseError('MISSING_FIELD', `${field} is missing (required in a ${kind} push)`, { field });
  if (format && !format.test(value)) {
    throw new MessageParseError('INVALID_FIELD', `${field} "${value.slice(0, 40)}" is not ${format.expected}`, { field });
  }
  return value;
}

/** `ToUserName` or `FromUserName`: absent → MISSING_FIELD, not in WeChat's format ({@link WECHAT_ID}) → INVALID_ID. */
function wechatId(root: Element, name: 'ToUserName' | 'FromUserName', kind: string): string {
  const value = required(root, name, kind);
  if (!WECHAT_ID.test(value)) {
    const shown = value.length > 40 ? `${JSON.stringify(value.slice(0, 40)).slice(0, -1)}…" (${value.length} characters)` : JSON.stringify(value);
    throw new MessageParseError('INVALID_ID', `${name} ${shown} is not a WeChat id: 1 to 64 letters, digits, _ or -`, { field: name });
  }
  return value;
}

/** Every top-level element whose value is a string (nested and repeated elements are skipped). */
function topLevelText(root: Element): Record<string, string> {
  return Object.fromEntries(
    Object.entries(root).filter((e): e is [string, string] => e[0] !== '#text' && typeof e[1] === 'string'),
  );
}

function isElement(value: unknown): value is Element {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
