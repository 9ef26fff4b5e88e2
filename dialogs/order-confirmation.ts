/**
 * 订单确认: a dialog another service starts with a push (`POST /push` with `"dialog":
 * "order-confirmation"`). The user gets the question as a customer-service message; their answer
 * continues the dialog like any message, and the result goes back to the order service through
 * `record()` (here: a callback URL the push named, if any).
 *
 * ```sh
 * curl -X POST http://127.0.0.1:3000/push -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' \
 *   -d '{"openid":"oUser…","dialog":"order-confirmation","input":{"orderId":"123","total":88.5}}'
 * ```
 */
import { z } from 'zod';
import { definePushDialog, record, text, type InboundMessage } from '../src/index.js';

/** The input a push must carry; a push with another shape gets 400 naming the field. */
export const OrderInput = z.object({
  /** The order number shown to the user. */
  orderId: z.string().min(1).max(32),
  /** The amount, in yuan. */
  total: z.number().nonnegative(),
  /** Where to POST the user's decision (`{"orderId","confirmed"}`), if anywhere. */
  callbackUrl: z.url().optional(),
});

/** `1` or `2` as typed (half- or full-width, with spaces around), else `undefined`. */
function choice(message: InboundMessage): '1' | '2' | undefined {
  if (message.MsgType !== 'text') return undefined;
  const typed = message.Content.normalize('NFKC').trim();
  return typed === '1' || typed === '2' ? typed : undefined;
}

export const orderConfirmation = definePushDialog('order-confirmation', OrderInput, function* (first) {
  const { orderId, total, callbackUrl } = first.Input;
  let answer = choice(yield text(`确认订单 #${orderId}（${total.toFixed(2)} 元）？回复 1 确认，2 取消`));
  if (answer === undefined) answer = choice(yield text('请回复 1 确认订单，或回复 2 取消订单'));
  if (answer === undefined) return text(`没有收到确认，订单 #${orderId} 保持待确认。`);
  const confirmed = answer === '1';
  if (callbackUrl !== undefined) {
    // Recorded: a replay never calls the order service twice.
    yield* record(async (signal) => {
      const response = await fetch(callbackUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ orderId, confirmed }),
        signal,
      });
      return response.status;
    }, { timeoutMs: 3_000 });
  }
  return text(confirmed ? `订单 #${orderId} 已确认，感谢！` : `订单 #${orderId} 已取消。`);
}, { ttlSeconds: 86_400 }); // the user may read the question hours later: wait a day, not a minute
