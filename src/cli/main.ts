#!/usr/bin/env node
/**
 * The package's command, `wechat-dialog`:
 *
 * ```
 * wechat-dialog serve --router ./dialogs/router.js   the server (settings from the environment and .env)
 * wechat-dialog chat --router ./dialogs/router.js    talk to the dialogs in the terminal
 * wechat-dialog chat --url http://127.0.0.1:3000/wechat --token <token>
 *                                                    the same chat with a running server, over HTTP
 * wechat-dialog healthcheck                          exit 0 when the local server answers a signed handshake
 * wechat-dialog state show <openid> [--account gh_…] [--contents]
 *                                                    that user's dialog state in Redis (docs/operations.md)
 * wechat-dialog state reset <openid> [--account gh_…]
 *                                                    delete it: the user's next message is routed afresh
 * ```
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chat, remoteChat } from './chat.js';
import { healthcheck } from './healthcheck.js';
import { RouterModuleError } from './load-router.js';
import { remoteChatOptionsProblem, type RemoteChatOptions } from './remote-chat.js';
import { serve } from './serve.js';
import { state } from './state.js';

const USAGE = `usage: wechat-dialog <command> [options]

commands:
  serve --router <module>        run the server; settings from the environment and .env
                                 (WECHAT_TOKEN, PORT, REDIS_URL, ...: see docs/configuration.md)
  chat --router <module>         talk to the dialogs in the terminal, in this process
       [--openid <openid>]
  chat --url <server URL>        the same chat with a running server: each message is POSTed to
       [--token <token>]         <server URL> (e.g. http://127.0.0.1:3000/wechat) as WeChat pushes
       [--aes-key <key>          it, signed with the Token (default: WECHAT_TOKEN); with --aes-key
        --appid <AppID>]         (the EncodingAESKey) and --appid, encrypted (security mode).
       [--openid <openid>]       --openid is the user (default oTestUser0000000000000000001),
       [--account <gh_id>]       --account the ToUserName (default gh_test0000000).
                                 --router is ignored with --url.
  healthcheck                    exit 0 when the server on this machine (PORT, WECHAT_PATH)
                                 answers a signed GET handshake, 1 otherwise
  state show <openid>            print that user's dialog state in Redis: dialog, version, ended,
       [--account <gh_id>]       messages and effects (counts), TTL, newest handled CreateTime;
       [--contents]              --contents also prints the messages (what the user wrote)
  state reset <openid>           delete that user's dialog state (the memory of handled messages
       [--account <gh_id>]       stays, against replays); their next message is routed afresh.
                                 Settings as for serve (REDIS_URL, REDIS_CLUSTER, REDIS_KEY_PREFIX);
                                 --account is needed when the openid has a state on several accounts

<module> is a JavaScript module exporting the router table (export const router = createRouter(...)),
relative to the working directory. A TypeScript one needs tsx: npx tsx <this command> ...`;

/** The package's version: package.json is three folders up when built (dist/src/cli), two in the sources. */
function version(): string {
  for (const path of ['../../../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}

/** Prints `<message>` and the usage on stderr and exits 2 (a command-line mistake). */
function usageError(message: string): never {
  process.stderr.write(`wechat-dialog: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

/** The options of `chat`: `--router` for the in-process chat; `--url`, `--token`, `--aes-key`, `--appid`, `--account` for the remote one; `--openid` for both. */
const CHAT_OPTIONS = {
  router: { type: 'string' },
  openid: { type: 'string' },
  url: { type: 'string' },
  token: { type: 'string' },
  'aes-key': { type: 'string' },
  appid: { type: 'string' },
  account: { type: 'string' },
} as const;

/** The options of `state`: `--account` (the ToUserName), `--contents` (show the messages). */
const STATE_OPTIONS = {
  account: { type: 'string' },
  contents: { type: 'boolean' },
} as const;

/** `chat --url`'s options, checked: a bad combination is a usage error (exit 2). */
function remoteChatOptions(
  values: { openid?: string; token?: string; 'aes-key'?: string; appid?: string; account?: string },
  url: string,
): RemoteChatOptions {
  const aesKey = values['aes-key'];
  if (aesKey === undefined && values.appid !== undefined) usageError('--appid is for security mode: give --aes-key <EncodingAESKey> with it');
  if (aesKey !== undefined && values.appid === undefined) usageError('--aes-key needs --appid <AppID>: the AppID is encrypted into every push');
  const token = values.token ?? process.env['WECHAT_TOKEN'];
  if (token === undefined || token === '') usageError('chat --url needs the Token the server uses: --token <token> or WECHAT_TOKEN');
  const options: RemoteChatOptions = {
    url,
    token,
    ...(aesKey === undefined || values.appid === undefined ? {} : { security: { appId: values.appid, encodingAESKey: aesKey } }),
    ...(values.openid === undefined ? {} : { openid: values.openid }),
    ...(values.account === undefined ? {} : { account: values.account }),
  };
  const problem = remoteChatOptionsProblem(options);
  if (problem !== undefined) usageError(problem);
  return options;
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  let values: { router?: string; openid?: string; url?: string; token?: string; 'aes-key'?: string; appid?: string; account?: string; contents?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...rest],
      options: command === 'chat' ? CHAT_OPTIONS : command === 'serve' ? { router: { type: 'string' } } : command === 'state' ? STATE_OPTIONS : {},
      allowPositionals: command === 'state',
      strict: true,
    }));
  } catch (err) {
    usageError(err instanceof Error ? err.message : String(err));
  }
  switch (command) {
    case 'serve':
      if (values.router === undefined) usageError('serve needs --router <module>: the module that exports your router table');
      return serve(values.router);
    case 'chat':
      if (values.url !== undefined) return remoteChat(remoteChatOptions(values, values.url));
      if (values.token !== undefined || values['aes-key'] !== undefined || values.appid !== undefined || values.account !== undefined) {
        usageError('--token, --aes-key, --appid and --account are for chat --url <server URL>');
      }
      if (values.router === undefined) usageError('chat needs --router <module> (the module that exports your router table) or --url <server URL>');
      return chat({ router: values.router, ...(values.openid === undefined ? {} : { openid: values.openid }) });
    case 'healthcheck':
      return healthcheck();
    case 'state': {
      const [action, openid, ...extra] = positionals;
      if (action !== 'show' && action !== 'reset') {
        usageError(action === undefined ? 'state needs an action: state show <openid> or state reset <openid>' : `unknown state action ${action}: show or reset`);
      }
      if (openid === undefined) usageError(`state ${action} needs the user's openid: state ${action} <openid> [--account <gh_id>]`);
      if (extra.length > 0) usageError(`state ${action} takes one openid, got also: ${extra.join(' ')}`);
      if (action === 'reset' && values.contents === true) usageError('--contents is for state show');
      return state({ action, openid, ...(values.account === undefined ? {} : { account: values.account }), contents: values.contents === true });
    }
    default:
      usageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof RouterModuleError) process.stderr.write(`router error: ${err.message}\n`);
  else process.stderr.write(`wechat-dialog: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
