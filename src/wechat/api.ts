/**
 * WeChat's server API (`https://api.weixin.qq.com/cgi-bin/…`): how a call is made and how its
 * errors are told apart. Shared by customer-service messages, template messages and the
 * access_token.
 *
 * Sources: 全局返回码 (`doc/offiaccount/Getting_Started/Global_Return_Code.html`), 模板消息接口
 * (`offiaccount/Message_Management/Template_Message_Interface.html`); protocol README §5.3.
 *
 * @module
 */
import { scrubbedError, withoutSecrets } from '../logging.js';

/** Where WeChat's server API lives. Tests point it at a local fake. */
export const WECHAT_API_BASE = 'https://api.weixin.qq.com';

/**
 * What a WeChat API call can do about an error (protocol README §5.3). A queue retries `token`
 * once with a fresh token and `transient` with backoff; it never retries `refused` or `config`.
 */
export type WeChatApiErrorKind =
  /** `40001`, `40014`, `42001`: the access_token is invalid, not the latest, or expired: get a new one and retry once. */
  | 'token'
  /**
   * `-1` (system busy), `45009` (the API's daily quota is used up: "back off"), `45011` (called
   * too often, try again later), or no answer / not JSON / HTTP 5xx: retrying later may work.
   */
  | 'transient'
  /**
   * About this user, do not retry: `45015` (outside the 48-hour window, or the user unfollowed),
   * `45047` (customer-service quota: 5 messages per user message), `43004` (the user does not
   * follow the account, template messages), `43101` (the user refused the message), `40003`
   * (invalid openid).
   */
  | 'refused'
  /**
   * Anything else: fix the configuration or the message, do not retry (`40164` IP not
   * whitelisted, `48001` no permission, `40037` invalid template_id, `47001` malformed data, a
   * wrong AppSecret, …).
   */
  | 'config';

/**
 * A WeChat server API call failed. `errcode` and `errmsg` are WeChat's (`errcode` is never 0, and
 * `undefined` when the call got no JSON answer); `kind` says what to do about it.
 */
export class WeChatApiError extends Error {
  override readonly name = 'WeChatApiError';
  readonly code = 'WECHAT_API';
  /** WeChat's `errmsg` (secrets of the call taken out), when it answered one. */
  readonly errmsg?: string;
  constructor(
    message: string,
    readonly kind: WeChatApiErrorKind,
    readonly errcode?: number,
    options?: { cause?: unknown; errmsg?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.errmsg !== undefined) this.errmsg = options.errmsg;
  }
}

const TOKEN_ERRCODES = new Set([40001, 40014, 42001]);
const TRANSIENT_ERRCODES = new Set([-1, 45009, 45011]);
const REFUSED_ERRCODES = new Set([45015, 45047, 43004, 43101, 40003]);

/** The {@link WeChatApiErrorKind} of a non-zero `errcode`. */
export function errorKindOf(errcode: number): WeChatApiErrorKind {
  if (TOKEN_ERRCODES.has(errcode)) return 'token';
  if (TRANSIENT_ERRCODES.has(errcode)) return 'transient';
  if (REFUSED_ERRCODES.has(errcode)) return 'refused';
  return 'config';
}

/** The `fetch` these calls use (the global one by default). */
export type Fetch = (url: string, init: { method: 'POST'; headers: Record<string, string>; body: string; signal?: AbortSignal }) => Promise<{
  readonly status: number;
  json(): Promise<unknown>;
}>;

/** Options shared by the API calls. */
export interface ApiOptions {
  /** @default the global `fetch` */
  readonly fetch?: Fetch;
  /** @default {@link WECHAT_API_BASE} */
  readonly baseUrl?: string;
  /** Give up on a call after this many **milliseconds**. @default 5000 */
  readonly timeoutMs?: number;
}

/**
 * POSTs JSON and returns WeChat's JSON answer.
 *
 * The URL may hold the access_token (`?access_token=…`) and the body the AppSecret: neither may
 * reach an error. `fetch` quotes the URL in some of its errors ("Failed to parse URL from …", a URL
 * with credentials) and Node's URL errors carry it as `input`; a proxy or WeChat may quote the
 * request in `errmsg` or an HTML page. So every message is passed through {@link withoutSecrets}
 * with `secrets` (the access_token or the AppSecret of this call), and the `cause` is a
 * {@link scrubbedError} copy, without the original's other properties.
 *
 * @param what - what the call does, for error messages ("sending a template message").
 * @param timeoutMs - give up after this many **milliseconds**.
 * @throws {WeChatApiError} on `errcode` ≠ 0 (kind from {@link errorKindOf}), and `transient` on no
 *   answer, HTTP 5xx, or an answer that is not a JSON object.
 */
export async function postJson(
  fetchImpl: Fetch,
  url: string,
  body: unknown,
  what: string,
  timeoutMs: number,
  secrets: readonly string[],
): Promise<Record<string, unknown>> {
  let answer: unknown;
  try {
    const response = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      // Chinese stays UTF-8, not \uXXXX (old error 40033 refused escapes in some APIs).
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status >= 500) throw new Error(`HTTP ${response.status}`);
    answer = await response.json();
  } catch (err) {
    const why = withoutSecrets(err instanceof Error ? err.message : String(err), secrets);
    throw new WeChatApiError(`${what}: no answer from WeChat (${why})`, 'transient', undefined, { cause: scrubbedError(err, secrets) });
  }
  if (typeof answer !== 'object' || answer === null) throw new WeChatApiError(`${what}: WeChat answered no JSON object`, 'transient');
  const result = answer as Record<string, unknown>;
  const errcode = result['errcode'];
  if (typeof errcode === 'number' && errcode !== 0) {
    const errmsg = withoutSecrets(String(result['errmsg'] ?? ''), secrets);
    throw new WeChatApiError(`${what}: errcode ${errcode} ${errmsg}`.trim(), errorKindOf(errcode), errcode, { errmsg });
  }
  return result;
}
