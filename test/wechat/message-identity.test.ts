import { describe, expect, it } from 'vitest';
import { messageIdentity } from '../../src/wechat/message-identity.js';
import { parseMessage } from '../../src/wechat/parser.js';
import { dialogMessageIdentity, hasDialogMessageIdentity, type DialogMessage } from '../../src/dialog/dialog.js';

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

describe('hasDialogMessageIdentity: the same answer as comparing dialogMessageIdentity', () => {
  it('agrees with building the identity, for messages, events, unknown types and pushes against many identities', () => {
    const messages: DialogMessage[] = [
      parseMessage(text('u1', '6054768590064713728')),
      parseMessage(text('u1', '7')),
      parseMessage(text('u12', '7')),
      parseMessage(text('u1', '27')),
      parseMessage(click('u1', 1700000000, 'A')),
      parseMessage(push('u1', 1700000000, '<MsgType>file</MsgType>')),
      parseMessage(push('u1', 1700000000, '<MsgType>file</MsgType><MsgId>7</MsgId>')),
      { MsgType: 'push', ToUserName: 'gh_a', FromUserName: 'u1', CreateTime: 1700000000, PushId: '7', Service: 's', Input: null },
    ];
    const identities = [...messages.map(dialogMessageIdentity), 'u1|m|', 'u1|m|77', 'u|m|17', 'u1|m|7 ', 'u1|p|7', 'u1|e|1700000000|CLICK|', '', 'u1|m|6054768590064713729'];
    for (const message of messages) {
      for (const identity of identities) {
        expect(hasDialogMessageIdentity(message, identity), `${dialogMessageIdentity(message)} vs ${identity}`).toBe(dialogMessageIdentity(message) === identity);
      }
    }
  });
});
