import { describe, expect, it } from 'vitest';
import { messageIdentity } from '../../src/wechat/message-identity.js';
import { parseMessage } from '../../src/wechat/parser.js';

const push = (from: string, time: number, inner: string): string =>
  `<xml><ToUserName>gh_a</ToUserName><FromUserName>${from}</FromUserName><CreateTime>${time}</CreateTime>${inner}</xml>`;
const id = (xml: string): string => messageIdentity(parseMessage(xml));
const text = (from: string, msgId: string, time = 1700000000): string => push(from, time, `<MsgType>text</MsgType><Content>x</Content><MsgId>${msgId}</MsgId>`);
const click = (from: string, time: number, key: string): string => push(from, time, `<MsgType>event</MsgType><Event>CLICK</Event><EventKey>${key}</EventKey>`);

describe('messageIdentity: what a retry of one push shares, and two pushes do not', () => {
  it('a retried message (same sender and MsgId) has the same identity, even with another CreateTime', () => {
    expect(id(text('u1', '6054768590064713728'))).toBe(id(text('u1', '6054768590064713728', 1700000005)));
  });

  it('MsgIds that differ only beyond 2^53 stay different', () => {
    expect(id(text('u1', '6054768590064713728'))).not.toBe(id(text('u1', '6054768590064713729')));
  });

  it('one MsgId from two users is two messages (MsgIds have collided across users)', () => {
    expect(id(text('u1', '7'))).not.toBe(id(text('u2', '7')));
  });

  it('events: same sender, second, event and EventKey is a retry; another EventKey or second is a new push', () => {
    expect(id(click('u1', 1700000000, 'A'))).toBe(id(click('u1', 1700000000, 'A')));
    expect(id(click('u1', 1700000000, 'A'))).not.toBe(id(click('u1', 1700000000, 'B')));
    expect(id(click('u1', 1700000000, 'A'))).not.toBe(id(click('u1', 1700000001, 'A')));
    expect(id(click('u1', 1700000000, 'A'))).not.toBe(id(click('u2', 1700000000, 'A')));
  });

  it('an unknown type without MsgId is identified by sender, time and raw type', () => {
    const file = (time: number): string => push('u1', time, '<MsgType>file</MsgType>');
    expect(id(file(1700000000))).toBe(id(file(1700000000)));
    expect(id(file(1700000000))).not.toBe(id(file(1700000001)));
  });
});
