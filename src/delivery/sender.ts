/**
 * Sends one outbound message (a customer-service message or a template message) with the shared
 * access_token: the step a delivery queue retries.
 *
 * @module
 */
import { WeChatApiError, type ApiOptions } from '../wechat/api.js';
import { sendCustomMessage, toCustomMessage } from '../wechat/customer-service.js';
import { sendTemplateMessage } from '../wechat/template-message.js';
import type { OutboundMessage } from './delivery-queue.js';

/** The access_token a sender uses: a {@link SharedAccessToken} (or a test double). */
export interface AccessTokenSource {
  /** A valid token. @throws when none can be had (a `transient` {@link WeChatApiError} is retried). */
  get(): Promise<string>;
  /** Forgets `token` after WeChat refused it (errcode 40001, 40014, 42001). */
  invalidate(token: string): Promise<void>;
}

/** What became of a send. */
export type SendOutcome =
  /** WeChat accepted the message. */
  | 'sent'
  /** The message cannot be sent this way (a `transfer_customer_service` reply): nothing was sent. */
  | 'not-sendable';

/** Sends one message to one user. The delivery queues take any implementation (tests use doubles). */
export interface MessageSender {
  /**
   * Sends `message` to `openid`, once (a refused token may be renewed and the send repeated once).
   * @param deliveryId - the delivery's id, for senders that pass a re-entry guard to WeChat.
   * @throws {WeChatApiError} when WeChat does not accept it; `kind` says whether to retry.
   */
  send(openid: string, message: OutboundMessage, deliveryId?: string): Promise<SendOutcome>;
}

/** Options of {@link WeChatMessageSender}. */
export interface WeChatMessageSenderOptions {
  /** The access_token every process shares (`SharedAccessToken`). */
  readonly token: AccessTokenSource;
  /** Where and how to call WeChat's API (tests point `baseUrl` at a local fake). @default WeChat's */
  readonly api?: ApiOptions;
}

/**
 * Sends customer-service messages (`/cgi-bin/message/custom/send`, protocol README §5.1) and
 * template messages (`/cgi-bin/message/template/send`, 模板消息接口) with the shared access_token.
 * A token WeChat refuses (40001, 40014, 42001) is forgotten and the send made once more, at once,
 * with a fresh one; nothing else is retried here (the queue does, with backoff).
 */
export class WeChatMessageSender implements MessageSender {
  constructor(private readonly options: WeChatMessageSenderOptions) {}

  /**
   * @throws {WeChatApiError} when WeChat does not accept the message (after one token renewal),
   *   or the token cannot be had; `AccessTokenCacheError` when Redis fails the token cache.
   */
  async send(openid: string, message: OutboundMessage): Promise<SendOutcome> {
    const { token, api } = this.options;
    let call: (accessToken: string) => Promise<unknown>;
    if (message.kind === 'reply') {
      const custom = toCustomMessage(openid, message.reply);
      if (custom === undefined) return 'not-sendable';
      call = (accessToken) => sendCustomMessage(accessToken, custom, api);
    } else {
      call = (accessToken) => sendTemplateMessage(accessToken, openid, message.template, api);
    }
    const accessToken = await token.get();
    try {
      await call(accessToken);
    } catch (err) {
      if (!(err instanceof WeChatApiError) || err.kind !== 'token') throw err;
      await token.invalidate(accessToken);
      await call(await token.get());
    }
    return 'sent';
  }
}
