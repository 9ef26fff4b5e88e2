/**
 * Template messages (模板消息): the message an account may send outside the 48-hour
 * customer-service window, with a template chosen in the console.
 *
 * Source: 模板消息接口 (`offiaccount/Message_Management/Template_Message_Interface.html`).
 *
 * @module
 */
import { postJson, WECHAT_API_BASE, type ApiOptions, type Fetch } from './api.js';

/** A template message as a push names it: the template, its fields, and where a tap leads. */
export interface TemplateMessage {
  /** The `template_id` from the account's console. */
  readonly id: string;
  /** The template's fields: `{ "first": "…" }` or `{ "first": { "value": "…", "color": "#173177" } }`. */
  readonly data: Readonly<Record<string, string | { readonly value: string; readonly color?: string }>>;
  /** Where a tap on the message leads (optional). */
  readonly url?: string;
}

/**
 * The JSON body of `POST /cgi-bin/message/template/send` (模板消息接口, 发送模板消息), e.g.
 * `{"touser":"OPENID","template_id":"…","url":"https://…","data":{"first":{"value":"…","color":"#173177"}}}`.
 */
export interface TemplateMessageBody {
  readonly touser: string;
  readonly template_id: string;
  /** Where a tap leads; left out when absent. */
  readonly url?: string;
  /**
   * Re-entry guard (防重入id): for one openid, WeChat sends one message per `client_msg_id`
   * within 10 minutes (not guaranteed after). Left out when absent.
   */
  readonly client_msg_id?: string;
  readonly data: Readonly<Record<string, { readonly value: string; readonly color?: string }>>;
}

/**
 * The body that sends `template` to `openid`: every field becomes `{ value, color? }` (a plain
 * string is the value), absent `url` and `color` are left out.
 */
export function toTemplateMessageBody(openid: string, template: TemplateMessage, clientMsgId?: string): TemplateMessageBody {
  const data: Record<string, { value: string; color?: string }> = {};
  for (const [name, field] of Object.entries(template.data)) {
    data[name] = typeof field === 'string' ? { value: field } : field.color === undefined ? { value: field.value } : { value: field.value, color: field.color };
  }
  return {
    touser: openid,
    template_id: template.id,
    ...(template.url === undefined ? {} : { url: template.url }),
    ...(clientMsgId === undefined ? {} : { client_msg_id: clientMsgId }),
    data,
  };
}

/** Options of {@link sendTemplateMessage}. */
export interface SendTemplateMessageOptions extends ApiOptions {
  /** Sent as `client_msg_id` (see {@link TemplateMessageBody.client_msg_id}). @default undefined (none) */
  readonly clientMsgId?: string;
}

/**
 * Sends a template message (`POST /cgi-bin/message/template/send?access_token=…`). Unlike a
 * customer-service message it needs no recent interaction, only that the user follows the account
 * and the template is one of the account's (a verified service account, or the sandbox account).
 * @returns WeChat's `msgid` (the `MsgID` of the later `TEMPLATESENDJOBFINISH` event), `undefined`
 *   when the answer has none.
 * @throws {WeChatApiError} `token` for an invalid/expired token; `refused` for 43004 (the user does
 *   not follow), 43101 (the user refused it), 40003 (invalid openid); `transient` for no answer,
 *   system busy (-1) or a quota to wait out (45009); `config` for anything else (40037 invalid
 *   template_id, 47001 malformed data, 48001 no permission, …).
 */
export async function sendTemplateMessage(
  accessToken: string,
  openid: string,
  template: TemplateMessage,
  options: SendTemplateMessageOptions = {},
): Promise<number | undefined> {
  const url = `${options.baseUrl ?? WECHAT_API_BASE}/cgi-bin/message/template/send?access_token=${encodeURIComponent(accessToken)}`;
  const body = toTemplateMessageBody(openid, template, options.clientMsgId);
  const answer = await postJson(options.fetch ?? (fetch as Fetch), url, body, 'sending a template message', options.timeoutMs ?? 5000, [accessToken]);
  const msgid = answer['msgid'];
  return typeof msgid === 'number' ? msgid : undefined;
}
