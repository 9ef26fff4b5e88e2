#!/usr/bin/env node
/**
 * The package's command, `wechat-dialog`:
 *
 * ```
 * wechat-dialog serve --router ./dialogs/router.js   the server (settings from the environment and .env)
 * wechat-dialog chat --router ./dialogs/router.js    talk to the dialogs in the terminal
 * wechat-dialog healthcheck                          exit 0 when the local server answers a signed handshake
 * ```
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chat } from './chat.js';
import { healthcheck } from './healthcheck.js';
import { RouterModuleError } from './load-router.js';
import { serve } from './serve.js';

const USAGE = `usage: wechat-dialog <command> [options]

commands:
  serve --router <module>        run the server; settings from the environment and .env
                                 (WECHAT_TOKEN, PORT, REDIS_URL, ...: see docs/configuration.md)
  chat --router <module>         talk to the dialogs in the terminal, in this process
       [--openid <openid>]
  healthcheck                    exit 0 when the server on this machine (PORT, WECHAT_PATH)
                                 answers a signed GET handshake, 1 otherwise

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
  let values: { router?: string; openid?: string };
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: command === 'chat' ? { router: { type: 'string' }, openid: { type: 'string' } } : command === 'serve' ? { router: { type: 'string' } } : {},
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
      if (values.router === undefined) usageError('chat needs --router <module>: the module that exports your router table');
      return chat({ router: values.router, ...(values.openid === undefined ? {} : { openid: values.openid }) });
    case 'healthcheck':
      return healthcheck();
    default:
      usageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof RouterModuleError) process.stderr.write(`router error: ${err.message}\n`);
  else process.stderr.write(`wechat-dialog: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
