/**
 * What makes two pushes the same message: WeChat retries a push it got no answer to within 5 s
 * (3 attempts in all), with the same identity.
 *
 * Source: 接收普通消息 ("关于重试的消息排重，推荐使用msgid排重") and 接收事件推送 ("关于重试的消息排重，
 * 推荐使用FromUserName + CreateTime 排重").
 *
 * @module
 */
import type { InboundMessage } from './messages.js';

/**
 * The identity WeChat keeps across retries of one push: `FromUserName` + `MsgId` for messages,
 * `FromUserName` + `CreateTime` + `Event` + `EventKey` for events (and `CreateTime` + the raw
 * `MsgType` for an unknown type without `MsgId`). A string; `MsgId` stays exact (never a number).
 *
 * `EventKey` is not in the doc's advice, but `CreateTime` has a resolution of one second: without
 * it, two menu clicks on different buttons within one second would look like one push retried
 * (protocol README §3.1).
 * @example messageIdentity(text) // 'oUser…|m|7300000000000000001'
 */
export function messageIdentity(message: InboundMessage): string {
  if (message.MsgType === 'event') {
    const event = message.Event === 'unknown' ? message.RawEvent : message.Event;
    const eventKey = 'EventKey' in message && message.EventKey !== undefined ? message.EventKey : '';
    return `${message.FromUserName}|e|${message.CreateTime}|${event}|${eventKey}`;
  }
  if (message.MsgId !== undefined) return `${message.FromUserName}|m|${message.MsgId}`;
  const type = message.MsgType === 'unknown' ? message.RawMsgType : message.MsgType;
  return `${message.FromUserName}|u|${message.CreateTime}|${type}`;
}
