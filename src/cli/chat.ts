/**
 * `wechat-dialog chat` (`npm run chat`): talk to your dialogs in the terminal, as a WeChat user
 * would, without WeChat, HTTP or Redis. A line is a text message; lines starting with `/` send
 * other messages and events (`/help` lists them). `--router <module>` names the router table.
 * With `--url <server URL> --token <token>` (`remote-chat.ts`) the same chat talks to a running
 * server over HTTP instead, each message POSTed as WeChat would push it: a smoke test.
 *
 * @module
 */
import { createInterface } from 'node:readline';
import type { Reply } from '../wechat/replies.js';
import { createConversation, type Conversation, type OutgoingMessage } from '../testing/conversation.js';
import { loadRouter } from './load-router.js';
import { createRemoteChat, type RemoteChatOptions } from './remote-chat.js';

const HELP = `Type a message and press Enter. Commands:
  /click KEY            a menu click (CLICK event)
  /subscribe [SCENE]    a follow (through a QR code with SCENE)
  /unsubscribe          an unfollow
  /scan SCENE           a follower scans a QR code (SCAN event)
  /image                an image message
  /voice [TEXT]         a voice message (TEXT: speech recognition result)
  /location LAT LNG     a location message
  /push DIALOG [JSON]   another service starts push dialog DIALOG for you with input JSON
                        (POST /push with "dialog"); its first reply arrives as a
                        customer-service message. Add ! after DIALOG to interrupt a dialog
  /retry                WeChat retries the last push
  /help                 this list
  /quit                 leave (or Ctrl-D)`;

/** How a reply shows in the terminal: text as is, other types in brackets. */
export function describeReply(reply: Reply | undefined): string {
  if (reply === undefined) return '(no reply: WeChat gets "success")';
  switch (reply.MsgType) {
    case 'text':
      return reply.Content;
    case 'news':
      return reply.Articles.map((a) => `[news] ${a.Title}: ${a.Description} <${a.Url}>`).join('\n');
    case 'image':
      return `[image ${reply.Image.MediaId}]`;
    case 'voice':
      return `[voice ${reply.Voice.MediaId}]`;
    case 'video':
      return `[video ${reply.Video.MediaId}${reply.Video.Title === undefined ? '' : ` "${reply.Video.Title}"`}]`;
    case 'music':
      return `[music ${reply.Music.Title ?? ''} ${reply.Music.MusicUrl ?? ''}]`.replace(/\s+]/, ']');
    case 'transfer_customer_service':
      return `[transferred to customer service${reply.TransInfo === undefined ? '' : ` ${reply.TransInfo.KfAccount}`}]`;
  }
}

/** The message a command line (`/click KEY`, …) stands for, or `{ usage }` saying how to write it. */
export function commandMessage(line: string): OutgoingMessage | { readonly usage: string } {
  const [command = '', ...args] = line.trim().split(/\s+/);
  switch (command) {
    case '/click':
      return args[0] === undefined ? { usage: '/click KEY' } : { MsgType: 'event', Event: 'CLICK', EventKey: args[0] };
    case '/subscribe':
      return args[0] === undefined
        ? { MsgType: 'event', Event: 'subscribe' }
        : { MsgType: 'event', Event: 'subscribe', EventKey: `qrscene_${args[0]}`, Ticket: 'TICKET' };
    case '/unsubscribe':
      return { MsgType: 'event', Event: 'unsubscribe' };
    case '/scan':
      return args[0] === undefined ? { usage: '/scan SCENE' } : { MsgType: 'event', Event: 'SCAN', EventKey: args[0], Ticket: 'TICKET' };
    case '/image':
      return { MsgType: 'image', PicUrl: 'http://example.invalid/picture.jpg', MediaId: 'MEDIA_ID' };
    case '/voice':
      return { MsgType: 'voice', MediaId: 'MEDIA_ID', Format: 'amr', ...(args.length > 0 ? { Recognition: args.join(' ') } : {}) };
    case '/location':
      return args.length < 2
        ? { usage: '/location LAT LNG' }
        : { MsgType: 'location', Location_X: args[0]!, Location_Y: args[1]!, Scale: '15', Label: args.slice(2).join(' ') };
    default:
      return { usage: `unknown command ${command}: /help lists them` };
  }
}

/** What the terminal chat talks to: a {@link Conversation} in this process (or a server over HTTP). */
export type ChatTarget = Pick<Conversation, 'openid' | 'say' | 'send' | 'retryLast' | 'warnings' | 'close'> & Partial<Pick<Conversation, 'push'>>;

/**
 * Reads `/push DIALOG [JSON]` (`DIALOG!` to interrupt the user's dialog): the dialog, its input
 * (`{}` when absent) and `ifActive`, or `{ usage }` saying how to write it.
 */
export function pushCommand(line: string): { readonly dialog: string; readonly input: unknown; readonly ifActive: 'refuse' | 'interrupt' } | { readonly usage: string } {
  const match = /^\/push\s+(\S+?)(!?)(?:\s+(.*))?$/.exec(line.trim());
  const usage = 'usage: /push DIALOG [JSON], e.g. /push order-confirmation {"orderId":"123","total":88.5}';
  if (match === null) return { usage };
  const [, dialog = '', bang, json] = match;
  if (json === undefined || json.trim() === '') return { dialog, input: {}, ifActive: bang === '!' ? 'interrupt' : 'refuse' };
  try {
    return { dialog, input: JSON.parse(json) as unknown, ifActive: bang === '!' ? 'interrupt' : 'refuse' };
  } catch {
    return { usage: `the input is not JSON; ${usage}` };
  }
}

/** Options of {@link chat}. */
export interface ChatOptions {
  /** The module that exports the router table (`router` or default export), relative to the working directory. */
  readonly router: string;
  /** The user's openid. @default 'oTestUser0000000000000000001' */
  readonly openid?: string;
}

/**
 * Reads lines from `input` and sends each to `target` as a user would (a text, or a `/command`),
 * writing every reply to `output`, until `/quit` or the end of the input; then closes `target`.
 */
export async function runChat(target: ChatTarget, input: NodeJS.ReadableStream, output: NodeJS.WritableStream, interactive: boolean): Promise<void> {
  const lines = createInterface({ input, output, terminal: interactive });
  // Piped input can end while replies are still coming (an HTTP round trip): readline is closed by
  // then, and Node 24 refuses prompt() on a closed interface, so the prompt is written directly.
  let inputEnded = false;
  lines.once('close', () => {
    inputEnded = true;
  });
  const prompt = (): void => {
    if (inputEnded) output.write('> ');
    else lines.prompt();
  };
  const say = (text: string): void => {
    output.write(`${text}\n`);
  };
  say(`chatting as ${target.openid}. /help lists the commands.`);
  let warned = 0;
  lines.setPrompt('> ');
  prompt();
  for await (const line of lines) {
    const text = line.trim();
    if (text === '/quit') break;
    try {
      if (text === '/help') say(HELP);
      else if (text === '/retry') say(describeReply(await target.retryLast()));
      else if (text === '/push' || text.startsWith('/push ')) {
        const push = pushCommand(text);
        if ('usage' in push) say(push.usage);
        else if (target.push === undefined) say('/push works in the in-process chat; against a server, call its push API (docs/push.md)');
        else {
          const reply = await target.push(push.dialog, push.input, { ifActive: push.ifActive });
          say(reply === undefined ? '(the dialog started and sent nothing)' : `[customer-service message] ${describeReply(reply)}`);
        }
      }
      else if (text.startsWith('/')) {
        const message = commandMessage(text);
        say('usage' in message ? message.usage : describeReply(await target.send(message)));
      } else if (text !== '') say(describeReply(await target.say(line)));
    } catch (err) {
      say(`error: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const warning of target.warnings.slice(warned)) say(`(warning: ${warning})`);
    warned = target.warnings.length;
    prompt();
  }
  lines.close();
  await target.close();
}

/**
 * `wechat-dialog chat --router <module>`: talk to the dialogs of a router table in the terminal,
 * on the real engine and an in-memory store.
 * @throws {RouterModuleError} when the router module cannot be loaded.
 */
export async function chat(options: ChatOptions): Promise<void> {
  const target = createConversation({
    router: await loadRouter(options.router),
    ...(options.openid === undefined ? {} : { openid: options.openid }),
  });
  await runChat(target, process.stdin, process.stdout, process.stdin.isTTY === true);
}

/**
 * `wechat-dialog chat --url <server URL> --token <token> [--aes-key <key> --appid <AppID>]`: the
 * same terminal chat against a running server, each message POSTed to `url` as WeChat pushes it
 * (signed with the Token; encrypted in security mode), each answer read as WeChat reads it. A
 * non-200 answer or a network error is shown as one `error: …` line and the chat goes on.
 * @throws {TypeError} for a URL that does not parse; `DecryptError` `BAD_KEY` for a bad
 *   EncodingAESKey (check with `remoteChatOptionsProblem` first).
 */
export async function remoteChat(options: RemoteChatOptions): Promise<void> {
  const target = createRemoteChat(options);
  const mode = options.security === undefined ? 'plaintext mode' : `security mode, AppID ${options.security.appId}`;
  process.stdout.write(`sending to ${options.url} as WeChat would (${mode}).\n`);
  await runChat(target, process.stdin, process.stdout, process.stdin.isTTY === true);
}
