/**
 * 累加器: asks how many numbers to add, then asks for each one, then answers the sum.
 * Anything that is not an integer ends the dialog with a hint on how to start again.
 */
import { defineDialog, text, type InboundMessage } from '../src/index.js';

const INTEGER = /^\s*([+\-＋－]?)([0-9０-９]+)\s*$/;
const INVALID = '输入不合法！我们需要一个整数，请输入"累加器"重新开启累加器';

/**
 * Reads an integer as a Chinese input method types it: surrounding spaces (also the full-width
 * space), a sign, ASCII or full-width digits (`１０` is 10). `3.5`, `abc` and non-text messages are
 * not integers. Exact for any size (BigInt).
 */
export function readInteger(message: InboundMessage): bigint | undefined {
  if (message.MsgType !== 'text') return undefined;
  const match = INTEGER.exec(message.Content);
  if (match === null) return undefined;
  const [, sign, digits] = match as unknown as [string, string, string];
  const magnitude = BigInt(digits.normalize('NFKC')); // full-width digits -> ASCII
  return sign === '-' || sign === '－' ? -magnitude : magnitude;
}

export const accumulator = defineDialog('accumulator', function* () {
  const count = readInteger(yield text('您需要累加几个数字？'));
  if (count === undefined) return text(INVALID);
  let sum = 0n;
  for (let i = 1n; i <= count; i += 1n) {
    const value = readInteger(yield text(`请输入第${i}个数字, 目前累加和:${sum}`));
    if (value === undefined) return text(INVALID);
    sum += value;
  }
  return text(`累加结束，累加和: ${sum}`);
});
