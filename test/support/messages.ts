/** Builders for inbound messages in engine-level tests (no XML). */
import type { EventMessage, InboundMessage, TextMessage } from '../../src/wechat/messages.js';

export const ACCOUNT = 'gh_0123456789ab';
let nextMsgId = 7300000000000000000n;

/** A text message from `openid` with a fresh 64-bit MsgId. */
export function textFrom(openid: string, Content: string, CreateTime = 1_700_000_000): TextMessage {
  nextMsgId += 1n;
  return { ToUserName: ACCOUNT, FromUserName: openid, CreateTime, MsgType: 'text', Content, MsgId: String(nextMsgId) };
}

/** An event from `openid`. */
export function eventFrom(openid: string, Event: 'subscribe' | 'unsubscribe' | 'VIEW' | 'CLICK', EventKey = ''): EventMessage {
  const base = { ToUserName: ACCOUNT, FromUserName: openid, CreateTime: 1_700_000_000, MsgType: 'event' as const };
  switch (Event) {
    case 'unsubscribe':
      return { ...base, Event };
    case 'subscribe':
      return EventKey === '' ? { ...base, Event } : { ...base, Event, EventKey };
    default:
      return { ...base, Event, EventKey };
  }
}

/** An image message from `openid`. */
export function imageFrom(openid: string): InboundMessage {
  nextMsgId += 1n;
  return {
    ToUserName: ACCOUNT,
    FromUserName: openid,
    CreateTime: 1_700_000_000,
    MsgType: 'image',
    PicUrl: 'http://example.invalid/p.jpg',
    MediaId: 'media',
    MsgId: String(nextMsgId),
  };
}
