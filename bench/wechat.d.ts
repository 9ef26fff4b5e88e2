/**
 * The little of the npm `wechat` package (node-webot, 2.1.0, plain JavaScript without types) that
 * the bench's peer row uses: `wechat(token, handler)` is Connect/Express middleware that checks the
 * signature, parses the push and calls `handler(req, res, next)` with `res.reply(content)`.
 */
declare module 'wechat' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  type WechatResponse = ServerResponse & { reply(content: string): void };
  type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

  function wechat(token: string, handler: (req: IncomingMessage & { weixin: Record<string, unknown> }, res: WechatResponse, next: (err?: unknown) => void) => void): Middleware;
  export default wechat;
}
