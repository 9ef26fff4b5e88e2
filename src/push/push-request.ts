/**
 * The JSON bodies of `POST /push`, validated with zod: each refusal names the field at fault
 * (`reply.news.articles.0.url`), so the calling service's developer sees what to fix.
 *
 * | body | sends |
 * |---|---|
 * | `{ "openid", "text" }` | a text customer-service message (客服消息) |
 * | `{ "openid", "reply": { "msgtype": "image", "image": { "media_id" } } }` | any reply the customer-service API carries (text, image, voice, video, music, news), in that API's own JSON without `touser` |
 * | `{ "openid", "template": { "id", "data", "url"? } }` | a template message (模板消息) |
 * | `{ "openid", "dialog", "input"?, "ifActive"? }` | starts a push dialog (see `definePushDialog`) |
 *
 * Exactly one of `text`, `reply`, `template`, `dialog`; unknown fields are refused, not ignored (a
 * misspelt `ifActive` must not silently become `refuse`).
 *
 * Sources: 客服消息 / 发送客服消息 (`offiaccount/Customer_Service/Customer_Service_Messages.html`,
 * protocol README §5.1), 模板消息接口 (`offiaccount/Message_Management/Template_Message_Interface.html`).
 *
 * @module
 */
import { z } from 'zod';
import type { OutboundMessage } from '../delivery/delivery-queue.js';
import { WECHAT_ID } from '../wechat/parser.js';
import { defined, image, MAX_TEXT_REPLY_BYTES, music, news, text, video, voice, type Reply } from '../wechat/replies.js';
import type { TemplateMessage } from '../wechat/template-message.js';

/**
 * Longest text a push may send, in UTF-8 **bytes**: 2048. The customer-service doc states no
 * limit (protocol README §5.1); this is the passive reply's documented one (§3.3,
 * {@link MAX_TEXT_REPLY_BYTES}), about 680 Chinese characters, so a push text is never one WeChat
 * might drop.
 */
export const MAX_PUSH_TEXT_BYTES = MAX_TEXT_REPLY_BYTES;

/** What a push asks for: the field it names. */
export type PushKind = 'text' | 'reply' | 'template' | 'dialog';

/** The push kinds, in the order error messages list them. */
export const PUSH_KINDS: readonly PushKind[] = ['text', 'reply', 'template', 'dialog'];

/** What to do when the user is in another dialog: refuse the push (409), or end that dialog. */
export type IfActive = 'refuse' | 'interrupt';

/** A valid push body. */
export type PushRequest =
  /** A message to send as it is (`text`, `reply` or `template`). */
  | { readonly kind: 'text' | 'reply' | 'template'; readonly openid: string; readonly message: OutboundMessage }
  /** A dialog to start; `input` is not validated yet (the dialog's own schema does that). */
  | { readonly kind: 'dialog'; readonly openid: string; readonly dialog: string; readonly input: unknown; readonly ifActive: IfActive };

/** One reason a body was refused: the field (dotted path, `''` for the whole body) and why. */
export interface PushIssue {
  readonly path: string;
  readonly message: string;
}

/** What {@link parsePushRequest} found. */
export type ParsedPush = { readonly ok: true; readonly request: PushRequest } | { readonly ok: false; readonly issues: readonly PushIssue[] };

const openid = z.string().regex(WECHAT_ID, "must be the user's openid: 1 to 64 letters, digits, _ or -");

const textContent = z
  .string()
  .min(1, 'must not be empty')
  .refine((content) => Buffer.byteLength(content, 'utf8') <= MAX_PUSH_TEXT_BYTES, {
    message: `must be at most ${MAX_PUSH_TEXT_BYTES} bytes of UTF-8 (about ${Math.floor(MAX_PUSH_TEXT_BYTES / 3)} Chinese characters)`,
  });

const mediaId = z.string().min(1, 'must not be empty: upload the material first and pass its media_id').max(256, 'must be at most 256 characters');
const optionalText = z.string().max(2048, 'must be at most 2048 characters').optional();
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).max(2048, 'must be at most 2048 characters');

/**
 * A customer-service message without `touser` (发送客服消息's JSON): the types a {@link Reply}
 * carries. Not carried: `mpnews`, `msgmenu`, `wxcard`, `miniprogrampage`, `customservice`, and a
 * video's `thumb_media_id` (the reply values have no field for them).
 */
const CustomReply = z.discriminatedUnion('msgtype', [
  z.strictObject({ msgtype: z.literal('text'), text: z.strictObject({ content: textContent }) }),
  z.strictObject({ msgtype: z.literal('image'), image: z.strictObject({ media_id: mediaId }) }),
  z.strictObject({ msgtype: z.literal('voice'), voice: z.strictObject({ media_id: mediaId }) }),
  z.strictObject({
    msgtype: z.literal('video'),
    video: z.strictObject({ media_id: mediaId, title: optionalText, description: optionalText }),
  }),
  z.strictObject({
    msgtype: z.literal('music'),
    music: z.strictObject({
      title: optionalText,
      description: optionalText,
      musicurl: httpUrl.optional(),
      hqmusicurl: httpUrl.optional(),
      thumb_media_id: mediaId,
    }),
  }),
  z.strictObject({
    msgtype: z.literal('news'),
    news: z.strictObject({
      articles: z
        .array(
          z.strictObject({
            title: z.string().min(1, 'must not be empty').max(2048, 'must be at most 2048 characters'),
            description: optionalText,
            url: httpUrl,
            picurl: httpUrl.optional(),
          }),
        )
        .min(1, 'must hold one article')
        .max(1, 'must hold one article: the customer-service API refuses more (errcode 45008)'),
    }),
  }),
]);
type CustomReply = z.infer<typeof CustomReply>;

const templateField = z.union([
  z.string().max(2048, 'must be at most 2048 characters'),
  z.strictObject({
    value: z.string().max(2048, 'must be at most 2048 characters'),
    color: z.string().regex(/^#[0-9A-Fa-f]{6}$/, 'must be a colour like #173177').optional(),
  }),
]);

const Template = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "must be the template's template_id from the console (letters, digits, _ and -)"),
  data: z.record(z.string().regex(/^[A-Za-z0-9_.]{1,64}$/, 'must be a field name of the template, such as first or keyword1'), templateField),
  url: httpUrl.optional(),
});

const bodies = {
  text: z.strictObject({ openid, text: textContent }),
  reply: z.strictObject({ openid, reply: CustomReply }),
  template: z.strictObject({ openid, template: Template }),
  dialog: z.strictObject({
    openid,
    dialog: z.string().min(1, 'must name a push dialog').max(64, 'must be at most 64 characters: a dialog name'),
    input: z.unknown().optional(),
    ifActive: z.enum(['refuse', 'interrupt'], { error: 'must be refuse (the default: 409 while the user is in another dialog) or interrupt' }).default('refuse'),
  }),
} as const;

/** The {@link Reply} a customer-service message's JSON describes: the reverse of `toCustomMessage`. */
function toReply(custom: CustomReply): Reply {
  switch (custom.msgtype) {
    case 'text':
      return text(custom.text.content);
    case 'image':
      return image(custom.image.media_id);
    case 'voice':
      return voice(custom.voice.media_id);
    case 'video': {
      const { media_id, title, description } = custom.video;
      return video(media_id, defined({ Title: title, Description: description }));
    }
    case 'music': {
      const { title, description, musicurl, hqmusicurl, thumb_media_id } = custom.music;
      return music({ ThumbMediaId: thumb_media_id, ...defined({ Title: title, Description: description, MusicUrl: musicurl, HQMusicUrl: hqmusicurl }) });
    }
    case 'news':
      return news(custom.news.articles.map((a) => ({ Title: a.title, Description: a.description ?? '', Url: a.url, PicUrl: a.picurl ?? '' })));
  }
}

function toTemplate(template: z.infer<typeof Template>): TemplateMessage {
  return { id: template.id, data: template.data, ...defined({ url: template.url }) };
}

const REPLY_TYPES = 'text, image, voice, video, music or news (the customer-service message types this server sends)';

/** Why an unknown field is refused, for the fields a caller is likely to copy from WeChat's docs. */
function unknownFieldMessage(path: string): string {
  if (path === 'reply.touser') return "is not allowed: the recipient is the push's openid";
  if (path === 'reply.video.thumb_media_id') return 'is not supported: leave it out (the video is sent by its media_id)';
  if (path === 'reply.customservice') return 'is not supported: messages are sent as the account, not as one agent';
  if (path === 'input' || path === 'ifActive') return 'is only allowed with dialog';
  return 'is not a known field';
}

const article = (word: string): string => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

/** zod's issues as {@link PushIssue}s, one per field, with messages saying what the field must be. */
function issuesOf(error: z.ZodError): PushIssue[] {
  const out: PushIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path.map(String).join('.');
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          const field = path === '' ? key : `${path}.${key}`;
          out.push({ path: field, message: unknownFieldMessage(field) });
        }
        break;
      case 'invalid_type':
        out.push({ path, message: issue.input === undefined ? 'is required' : `must be ${article(issue.expected)}` });
        break;
      case 'invalid_union':
        out.push({
          path,
          message:
            path.endsWith('msgtype') ? `must be ${REPLY_TYPES}` : issue.input === undefined ? 'is required' : 'must be a string or { "value", "color"? }',
        });
        break;
      case 'invalid_key':
        out.push({ path, message: issue.issues[0]?.message ?? 'is not an allowed name' });
        break;
      default:
        out.push({ path, message: issue.message });
    }
  }
  return out;
}

/**
 * Validates a `POST /push` body (already parsed from JSON).
 * @returns the request, or every issue found (each naming its field as a dotted path: `openid`,
 *   `reply.news.articles.0.url`, `template.data.first.color`; `''` for the body itself).
 */
export function parsePushRequest(body: unknown): ParsedPush {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, issues: [{ path: '', message: 'must be a JSON object: { "openid", and one of "text", "reply", "template", "dialog" }' }] };
  }
  const kinds = PUSH_KINDS.filter((kind) => kind in body);
  if (kinds.length !== 1) {
    const got = kinds.length === 0 ? 'none' : kinds.join(' and ');
    return { ok: false, issues: [{ path: '', message: `must have exactly one of text, reply, template or dialog (got ${got})` }] };
  }
  const kind = kinds[0] as PushKind;
  switch (kind) {
    case 'text': {
      const parsed = bodies.text.safeParse(body, { reportInput: true });
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) };
      return { ok: true, request: { kind, openid: parsed.data.openid, message: { kind: 'reply', reply: text(parsed.data.text) } } };
    }
    case 'reply': {
      const parsed = bodies.reply.safeParse(body, { reportInput: true });
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) };
      return { ok: true, request: { kind, openid: parsed.data.openid, message: { kind: 'reply', reply: toReply(parsed.data.reply) } } };
    }
    case 'template': {
      const parsed = bodies.template.safeParse(body, { reportInput: true });
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) };
      return { ok: true, request: { kind, openid: parsed.data.openid, message: { kind: 'template', template: toTemplate(parsed.data.template) } } };
    }
    case 'dialog': {
      const parsed = bodies.dialog.safeParse(body, { reportInput: true });
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) };
      const { openid: to, dialog, input, ifActive } = parsed.data;
      return { ok: true, request: { kind, openid: to, dialog, input, ifActive } };
    }
  }
}
