/**
 * The logger this project creates (the `serve` command, and `wechatDialog()` without a `logger`):
 * pino, JSON lines, with a second guard against secrets in log lines (docs/security.md,
 * "Secrets in logs").
 *
 * The first guard is at the source: errors that could carry a secret (ioredis errors with the
 * command's arguments, WeChat API errors with the `access_token=` URL) are wrapped or rewritten
 * before they reach a logger. The redact paths below censor the fields that would still carry
 * one if a new error path forgot to.
 *
 * @module
 */
import pretty from 'pino-pretty';
import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Log fields pino replaces with `[redacted]` (fast-redact paths; `*` is any one key).
 *
 * - `err.command`, `err.args` (and on a cause): ioredis attaches the failed command and its
 *   arguments to reply and abort errors, e.g. `SET <key> <access_token> EX 6900`, or `AUTH <password>`;
 * - `err.input`: Node's `ERR_INVALID_URL` carries the URL, which for WeChat's API holds `access_token=`;
 * - the names secrets go by in this project and in WeChat's API, at the top level and one level down
 *   (`{ config: { appSecret } }`): the access_token, the AppSecret, the EncodingAESKeys, passwords,
 *   the Redis URL (it may hold a password), API keys;
 * - request headers that carry credentials.
 */
export const LOG_REDACT_PATHS: readonly string[] = [
  'err.args',
  'err.command',
  'err.input',
  'err.cause.args',
  'err.cause.command',
  'err.cause.input',
  ...[
    'accessToken',
    'access_token',
    'appSecret',
    'secret',
    'encodingAESKey',
    'previousEncodingAESKey',
    'password',
    'redisUrl',
    'apiKey',
    'api_key',
  ].flatMap((name) => [name, `*.${name}`]),
  'req.headers.authorization',
  'req.headers.cookie',
];

/** What a redacted field is replaced with. */
export const LOG_REDACT_CENSOR = '[redacted]';

/** Levels {@link createLogger} accepts (`LOG_LEVEL`). */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * The project's logger: pino at `level`, with {@link LOG_REDACT_PATHS} censored. Without a
 * `destination`: human-readable lines (pino-pretty) when stdout is a terminal, JSON lines
 * otherwise (a log collector, a file, a pipe).
 * @param level - the lowest level written (`LOG_LEVEL`, `info` by default in the server).
 * @param destination - where the JSON lines go; stdout by default (tests pass a stream to read them).
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR } };
  if (destination !== undefined) return pino(options, destination);
  if (process.stdout.isTTY === true) return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' }));
  return pino(options);
}

/** What {@link withoutSecrets} puts where a secret was. */
const SCRUBBED = '[redacted]';

/**
 * `text` with every occurrence of each of `secrets` (as is, URL-encoded and JSON-escaped), every
 * `access_token=`/`secret=` query value, every `"secret": "…"` JSON value and every URL userinfo
 * (`scheme://user:password@`) replaced by `[redacted]`. For messages that may quote a request:
 * an error of `fetch`, an `errmsg` of WeChat's API, a Redis reply.
 * @param secrets - values known to be secret in this context (the access_token of the call, the
 *   AppSecret); empty strings are ignored.
 */
export function withoutSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text
    .replace(/\b(access_token|secret|appsecret|password)=[^&\s"'<>#]*/gi, `$1=${SCRUBBED}`)
    .replace(/("(?:access_token|secret|appsecret|password)"\s*:\s*")(?:[^"\\]|\\.)*"/gi, `$1${SCRUBBED}"`)
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]+@/gi, `$1${SCRUBBED}@`);
  for (const secret of secrets) {
    if (secret === '') continue;
    for (const form of new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])) {
      out = out.split(form).join(SCRUBBED);
    }
  }
  return out;
}

/**
 * A copy of `err` that is safe to keep as a `cause` or to log: the same `name`, `message` and
 * `stack` through {@link withoutSecrets}, a string or number `code`, and the same for its own
 * cause (three levels at most); none of its other properties (ioredis's `command`/`args`, Node's
 * `input`, a request or its options). A non-Error becomes an `Error` with its string as message.
 */
export function scrubbedError(err: unknown, secrets: readonly string[] = []): Error {
  return scrubbed(err, secrets, 0);
}

function scrubbed(err: unknown, secrets: readonly string[], depth: number): Error {
  const source = err instanceof Error ? err : new Error(String(err));
  const cause = depth < 3 && source.cause !== undefined ? { cause: scrubbed(source.cause, secrets, depth + 1) } : undefined;
  const copy = new Error(withoutSecrets(source.message, secrets), cause);
  copy.name = source.name;
  copy.stack = source.stack === undefined ? undefined : withoutSecrets(source.stack, secrets);
  const { code } = source as { code?: unknown };
  if (typeof code === 'string' || typeof code === 'number') Object.assign(copy, { code });
  return copy;
}

/**
 * A Redis URL as it may appear in a log line: the password replaced by `***`
 * (`rediss://user:***@host:6380/0`, `redis://:***@host`), and a user name without a password too
 * (`redis://***@host`: it is likely a password without its colon). A URL that does not parse, or
 * has an `@` after its host (a password with an unencoded `/`, `?` or `#`), is shown as its scheme
 * only (`redis://[redacted]`): where the password ends is unknown.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0] ?? '';
    return `${scheme}[redacted]`;
  }
  // An '@' after the host means a password with an unencoded '/', '?' or '#': the host is part of it.
  if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) return `${parsed.protocol}//[redacted]`;
  if (parsed.password !== '') parsed.password = '***';
  else if (parsed.username !== '') parsed.username = '***';
  return parsed.href;
}
