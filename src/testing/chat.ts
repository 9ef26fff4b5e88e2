/**
 * `npm run chat`: talk to your dialogs in the terminal, as a WeChat user would, without WeChat,
 * HTTP or Redis. A line is a text message; lines starting with `/` send other messages and events
 * (`/help` lists them). `--router <module>` loads another router table (its `router` export).
 *
 * @module
 */
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Router } from '../dialog/router.js';
import type { Reply } from '../wechat/replies.js';
import { createConversation, type Conversation, type OutgoingMessage } from './conversation.js';

const HELP = `Type a message and press Enter. Commands:
  /click KEY            a menu click (CLICK event)
  /subscribe [SCENE]    a follow (through a QR code with SCENE)
  /unsubscribe          an unfollow
  /scan SCENE           a follower scans a QR code (SCAN event)
  /image                an image message
  /voice [TEXT]         a voice message (TEXT: speech recognition result)
  /location LAT LNG     a location message
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

async function loadRouter(modulePath: string | undefined): Promise<Router> {
  if (modulePath === undefined) return (await import('../../dialogs/router.js')).router;
  const loaded = (await import(pathToFileURL(resolve(modulePath)).href)) as { router?: Router };
  if (loaded.router === undefined) throw new Error(`${modulePath} has no \`router\` export: export const router = createRouter(...)`);
  return loaded.router;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { router: { type: 'string' }, openid: { type: 'string' } } });
  const chat: Conversation = createConversation({
    router: await loadRouter(values.router),
    ...(values.openid === undefined ? {} : { openid: values.openid }),
  });
  const lines = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  const say = (text: string): void => {
    process.stdout.write(`${text}\n`);
  };
  say(`chatting as ${chat.openid}. /help lists the commands.`);
  let warned = 0;
  lines.setPrompt('> ');
  lines.prompt();
  for await (const line of lines) {
    const input = line.trim();
    if (input === '/quit') break;
    try {
      if (input === '/help') say(HELP);
      else if (input === '/retry') say(describeReply(await chat.retryLast()));
      else if (input.startsWith('/')) {
        const message = commandMessage(input);
        say('usage' in message ? message.usage : describeReply(await chat.send(message)));
      } else if (input !== '') say(describeReply(await chat.say(line)));
    } catch (err) {
      say(`error: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const warning of chat.warnings.slice(warned)) say(`(warning: ${warning})`);
    warned = chat.warnings.length;
    lines.prompt();
  }
  lines.close();
  await chat.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`chat: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
