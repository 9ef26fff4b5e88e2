/**
 * Late replies: a reply whose turn outlived WeChat's 5-second window goes to the user as a
 * customer-service message (客服消息) instead (design.md, "WeChat's clock").
 *
 * @module
 */
import { sendCustomMessage, toCustomMessage, WeChatApiError, type ApiOptions } from '../wechat/customer-service.js';
import type { Reply } from '../wechat/replies.js';
import type { SharedAccessToken } from './access-token.js';

/** What became of a late reply. */
export type LateReplyOutcome =
  /** WeChat accepted the customer-service message. */
  | 'sent'
  /** The reply cannot be a customer-service message (`transfer_customer_service`): nothing was sent. */
  | 'not-sendable';

/** Options of {@link CustomerServiceSender}. */
export interface CustomerServiceSenderOptions {
  readonly token: SharedAccessToken;
  /** Where and how to call WeChat's API (tests point `baseUrl` at a local fake). */
  readonly api?: ApiOptions;
  /** Pause before the one retry of a `transient` failure, **milliseconds**. @default 500 */
  readonly retryDelayMs?: number;
}

/** Sends late replies as customer-service messages, with the shared access_token. */
export class CustomerServiceSender {
  constructor(private readonly options: CustomerServiceSenderOptions) {}

  /**
   * Sends `reply` to `openid`. A refused token (40001, 40014, 42001) is forgotten and the send is
   * retried once with a fresh one; a `transient` failure (busy, no answer) is retried once after
   * `retryDelayMs`.
   * @throws {WeChatApiError} when the send still fails (`refused` for 45015 outside the 48-hour
   *   window or after an unfollow, 45047 over the quota; `config` for a missing permission).
   */
  async send(openid: string, reply: Reply): Promise<LateReplyOutcome> {
    const message = toCustomMessage(openid, reply);
    if (message === undefined) return 'not-sendable';
    const { token, api } = this.options;
    let accessToken = await token.get();
    try {
      await sendCustomMessage(accessToken, message, api);
    } catch (err) {
      if (!(err instanceof WeChatApiError) || (err.kind !== 'token' && err.kind !== 'transient')) throw err;
      if (err.kind === 'token') {
        await token.invalidate(accessToken);
        accessToken = await token.get();
      } else {
        await new Promise((resolve) => setTimeout(resolve, this.options.retryDelayMs ?? 500));
      }
      await sendCustomMessage(accessToken, message, api);
    }
    return 'sent';
  }
}
