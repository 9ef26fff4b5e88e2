/**
 * Customer-service messages (客服消息) and the `access_token` they need: how a reply that missed
 * WeChat's 5-second window still reaches the user.
 *
 * Sources: 客服消息 / 发送客服消息 (`offiaccount/Customer_Service/Customer_Service_Messages.html`),
 * 获取稳定版接口调用凭据 (`offiaccount/Basic_Information/getStableAccessToken.html`), 全局返回码;
 * protocol README §5.
 *
 * Protocol only: the HTTP calls take a `fetch` and a base URL, and nothing here caches or shares a
 * token (see `src/delivery/`).
 *
 * @module
 */
import { postJson, WECHAT_API_BASE, WeChatApiError, type ApiOptions, type Fetch } from './api.js';
import { defined, type Reply } from './replies.js';

// The API's call and error helpers live in api.ts; they stay importable from here.
export { WECHAT_API_BASE, WeChatApiError, type ApiOptions, type Fetch, type WeChatApiErrorKind } from './api.js';

/** The JSON body of `POST /cgi-bin/message/custom/send` (客服消息), e.g. `{"touser":"…","msgtype":"text","text":{"content":"Hello"}}`. */
export type CustomMessage =
  | { readonly touser: string; readonly msgtype: 'text'; readonly text: { readonly content: string } }
  | { readonly touser: string; readonly msgtype: 'image'; readonly image: { readonly media_id: string } }
  | { readonly touser: string; readonly msgtype: 'voice'; readonly voice: { readonly media_id: string } }
  | {
      readonly touser: string;
      readonly msgtype: 'video';
      readonly video: { readonly media_id: string; readonly title?: string; readonly description?: string };
    }
  | {
      readonly touser: string;
      readonly msgtype: 'music';
      readonly music: {
        readonly title?: string;
        readonly description?: string;
        readonly musicurl?: string;
        readonly hqmusicurl?: string;
        readonly thumb_media_id: string;
      };
    }
  | {
      readonly touser: string;
      readonly msgtype: 'news';
      readonly news: {
        readonly articles: readonly { readonly title: string; readonly description: string; readonly url: string; readonly picurl: string }[];
      };
    };

/**
 * The customer-service message that carries `reply` to `openid`, or `undefined` for a
 * `transfer_customer_service` reply (it only exists as a passive reply). A news reply keeps its
 * first article: the API refuses more than one (errcode 45008). Absent optional fields are left out.
 */
export function toCustomMessage(openid: string, reply: Reply): CustomMessage | undefined {
  const touser = openid;
  switch (reply.MsgType) {
    case 'text':
      return { touser, msgtype: 'text', text: { content: reply.Content } };
    case 'image':
      return { touser, msgtype: 'image', image: { media_id: reply.Image.MediaId } };
    case 'voice':
      return { touser, msgtype: 'voice', voice: { media_id: reply.Voice.MediaId } };
    case 'video': {
      const { MediaId, Title, Description } = reply.Video;
      return { touser, msgtype: 'video', video: { media_id: MediaId, ...defined({ title: Title, description: Description }) } };
    }
    case 'music': {
      const { Title, Description, MusicUrl, HQMusicUrl, ThumbMediaId } = reply.Music;
      const optional = defined({ title: Title, description: Description, musicurl: MusicUrl, hqmusicurl: HQMusicUrl });
      return { touser, msgtype: 'music', music: { ...optional, thumb_media_id: ThumbMediaId } };
    }
    case 'news':
      return {
        touser,
        msgtype: 'news',
        news: {
          articles: reply.Articles.slice(0, 1).map((a) => ({ title: a.Title, description: a.Description, url: a.Url, picurl: a.PicUrl })),
        },
      };
    case 'transfer_customer_service':
      return undefined;
  }
}

/**
 * Sends a customer-service message (`POST /cgi-bin/message/custom/send?access_token=…`). Allowed
 * within 48 hours of a user's message (5 messages), or 1 minute after a click, follow or scan.
 * @throws {WeChatApiError} `token` for an invalid/expired token, `refused` outside the window or
 *   over the quota, `transient` for no answer or system busy, `config` for anything else.
 */
export async function sendCustomMessage(accessToken: string, message: CustomMessage, options: ApiOptions = {}): Promise<void> {
  const url = `${options.baseUrl ?? WECHAT_API_BASE}/cgi-bin/message/custom/send?access_token=${encodeURIComponent(accessToken)}`;
  await postJson(options.fetch ?? (fetch as Fetch), url, message, 'sending a customer-service message', options.timeoutMs ?? 5000, [accessToken]);
}

/** An access_token and how long it stays valid. */
export interface AccessToken {
  readonly accessToken: string;
  /** Validity in **seconds** from when it was fetched. */
  readonly expiresIn: number;
}

/**
 * Gets the stable access_token (`POST /cgi-bin/stable_token`, `grant_type=client_credential`,
 * `force_refresh=false`). Unlike `/cgi-bin/token`, repeated calls return the same token while it is
 * valid, so several processes can call it without revoking each other's tokens.
 * @throws {WeChatApiError} `config` for a wrong AppID/AppSecret or an IP not whitelisted
 *   (`40164`), `transient` when WeChat does not answer, or answers without a token.
 */
export async function fetchStableAccessToken(appId: string, secret: string, options: ApiOptions = {}): Promise<AccessToken> {
  const url = `${options.baseUrl ?? WECHAT_API_BASE}/cgi-bin/stable_token`;
  const body = { grant_type: 'client_credential', appid: appId, secret, force_refresh: false };
  const answer = await postJson(options.fetch ?? (fetch as Fetch), url, body, 'getting the stable access_token', options.timeoutMs ?? 5000, [secret]);
  const { access_token: accessToken, expires_in: expiresIn } = answer;
  if (typeof accessToken !== 'string' || accessToken === '' || typeof expiresIn !== 'number' || !(expiresIn > 0)) {
    throw new WeChatApiError('getting the stable access_token: the answer has no access_token/expires_in', 'transient');
  }
  return { accessToken, expiresIn };
}
