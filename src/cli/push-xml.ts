/**
 * An inbound message as the XML WeChat pushes to the server URL: the reverse of
 * `src/wechat/parser.ts`, for `wechat-dialog chat --url` (the terminal chat talking to a running
 * server over HTTP).
 *
 * Source: 接收普通消息, 接收事件推送, 自定义菜单事件推送; protocol README §2.1 (strings in CDATA,
 * numbers bare, lists as `<item>`).
 *
 * @module
 */
import type { InboundMessage } from '../wechat/messages.js';
import { cdata } from '../wechat/xml.js';

/** Fields WeChat writes bare (no CDATA) when they hold digits: `CreateTime` and the 64-bit ids. */
const BARE_WHEN_DIGITS = new Set(['CreateTime', 'MsgId', 'MsgID']);
/** The fields every push opens with, in the doc's order. */
const HEAD = ['ToUserName', 'FromUserName', 'CreateTime', 'MsgType', 'Event'] as const;
const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * Serialises `message` as one WeChat push body (plaintext mode; in security mode this is the XML
 * that gets encrypted into `<Encrypt>`), e.g.
 * `<xml><ToUserName><![CDATA[gh_…]]></ToUserName><FromUserName><![CDATA[o…]]></FromUserName>
 * <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content>
 * <MsgId>9007199254740993</MsgId></xml>` (one line, no XML declaration).
 *
 * The common fields come first in the doc's order, then the message's own fields in object order,
 * `MsgId` last. Strings are in CDATA (`]]>` split across two sections, forbidden XML characters
 * removed); `CreateTime` (Unix **seconds**), `MsgId` and `MsgID` are bare digits. A nested object
 * (`ScanCodeInfo`, `SendPicsInfo`, …) becomes nested elements, an array (`PicList`, `ResultList`)
 * repeated `<item>` elements. An unknown `MsgType` or `Event` is written with its raw name and its
 * `Fields`. `parseMessage` reads the result back into an equal message.
 *
 * @param message - a typed inbound message (as `parseMessage` returns).
 * @returns the XML body (send as `text/xml`).
 * @throws {RangeError} for a field name that is not a plain XML name, or a value that is not a
 *   string, a finite number, an object or an array.
 */
export function pushToXml(message: InboundMessage): string {
  const fields: Record<string, unknown> = {};
  if (message.MsgType === 'unknown') {
    Object.assign(fields, message.Fields, head(message), { MsgType: message.RawMsgType });
    if (message.MsgId !== undefined) fields['MsgId'] = message.MsgId;
  } else if (message.MsgType === 'event' && message.Event === 'unknown') {
    Object.assign(fields, message.Fields, head(message), { MsgType: 'event', Event: message.RawEvent });
    if (message.EventKey !== undefined) fields['EventKey'] = message.EventKey;
  } else {
    Object.assign(fields, message);
  }
  const names = [
    ...HEAD.filter((name) => Object.hasOwn(fields, name)),
    ...Object.keys(fields).filter((name) => !(HEAD as readonly string[]).includes(name) && name !== 'MsgId'),
    ...(Object.hasOwn(fields, 'MsgId') ? ['MsgId'] : []),
  ];
  return `<xml>${names.map((name) => element(name, fields[name])).join('')}</xml>`;
}

function head(message: InboundMessage): Record<string, unknown> {
  return { ToUserName: message.ToUserName, FromUserName: message.FromUserName, CreateTime: message.CreateTime };
}

/** `<name>value</name>`; `undefined` gives nothing. */
function element(name: string, value: unknown): string {
  if (value === undefined) return '';
  if (!XML_NAME.test(name)) throw new RangeError(`cannot write a field named ${JSON.stringify(name.slice(0, 40))} as an XML element`);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`${name} is ${value}: not a number WeChat would send`);
    return `<${name}>${value}</${name}>`;
  }
  if (typeof value === 'string') {
    return BARE_WHEN_DIGITS.has(name) && /^\d+$/.test(value) ? `<${name}>${value}</${name}>` : `<${name}>${cdata(value)}</${name}>`;
  }
  if (Array.isArray(value)) return `<${name}>${value.map((item: unknown) => element('item', item)).join('')}</${name}>`;
  if (typeof value === 'object' && value !== null) {
    return `<${name}>${Object.entries(value).map(([child, v]) => element(child, v)).join('')}</${name}>`;
  }
  throw new RangeError(`${name} is ${value === null ? 'null' : typeof value}: expected a string, a number, an object or an array`);
}
