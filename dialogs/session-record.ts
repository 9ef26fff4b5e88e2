/**
 * 会话记录: remembers when the dialog started and echoes every message with its time until the
 * user says 结束. The start time comes from the clock, so it goes through `record()`: replay gives
 * back the recorded time instead of reading the clock again, in every process.
 */
import { defineDialog, record, text, type InboundMessage } from '../src/index.js';

const format = new Intl.DateTimeFormat('sv-SE', {
  timeZone: 'Asia/Shanghai',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** `YYYY-MM-DD HH:MM:SS` in Beijing time, from milliseconds since the epoch. */
export function beijingTime(epochMs: number): string {
  return format.format(new Date(epochMs));
}

function says(message: InboundMessage): string {
  return message.MsgType === 'text' ? message.Content : `[${message.MsgType}]`;
}

export const sessionRecord = defineDialog('session-record', function* () {
  const startedAtMs = yield* record(() => Date.now());
  const started = beijingTime(startedAtMs);
  let message = yield text(`您在${started}开启了这段对话，随便聊聊吧，回复“结束”结束对话`);
  while (!(message.MsgType === 'text' && message.Content === '结束')) {
    // The message's own CreateTime: the same on every replay, unlike the clock.
    message = yield text(`${beijingTime(message.CreateTime * 1000)}：${says(message)}`);
  }
  return text(`会话结束，这段会话的开始时间是${started}`);
});
