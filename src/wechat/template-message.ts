/**
 * Template messages (模板消息): the message an account may send outside the 48-hour
 * customer-service window, with a template chosen in the console.
 *
 * Source: 模板消息接口 (`offiaccount/Message_Management/Template_Message_Interface.html`).
 *
 * @module
 */

/** A template message as a push names it: the template, its fields, and where a tap leads. */
export interface TemplateMessage {
  /** The `template_id` from the account's console. */
  readonly id: string;
  /** The template's fields: `{ "first": "…" }` or `{ "first": { "value": "…", "color": "#173177" } }`. */
  readonly data: Readonly<Record<string, string | { readonly value: string; readonly color?: string }>>;
  /** Where a tap on the message leads (optional). */
  readonly url?: string;
}
