/**
 * `wechat-dialog state show|reset <openid>`: the state inspector, for an operator whose user is
 * stuck in a dialog (docs/operations.md).
 *
 * ```
 * wechat-dialog state show <openid> [--account gh_…] [--contents]   what is stored for that user
 * wechat-dialog state reset <openid> [--account gh_…]               delete it: the next message is routed afresh
 * ```
 *
 * It reads the server's Redis settings (`REDIS_URL`, `REDIS_CLUSTER`, `REDIS_KEY_PREFIX`, from the
 * environment and `.env`, or the file `DOTENV_CONFIG_PATH` names), validated with the server's
 * own rules, and looks at the key {@link stateKeyString} names. Without `--account` it finds the
 * user's state with `SCAN` (on every master of a cluster). `reset` deletes the state's keys (the
 * state key, its version `:v`, its messages `:m` and effects `:e`) only: the
 * memory of handled messages (`<state key>:t`, `<state key>:h:<sha1>`) stays until it expires, so
 * WeChat retries and replayed requests still get their first reply and never start a dialog.
 *
 * Every failure is one line on stderr and exit status 1; the Redis password is never printed.
 *
 * @module
 */
import { config as loadDotenv } from 'dotenv';
import { Cluster, type Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../config.js';
import { stateKeyString } from '../dialog/store/keys.js';
import { createRedisClient, createRedisClusterClient } from '../dialog/store/redis-client.js';
import { effectsKey, messagesKey, stateKeys } from '../dialog/store/redis-store.js';
import { decodeStored } from '../dialog/store/state-codec.js';
import type { DialogState } from '../dialog/store/store.js';
import { redactUrl } from '../logging.js';
import type { DialogMessage } from '../dialog/dialog.js';
// The parser refuses any other id, so no state key holds one.
import { WECHAT_ID } from '../wechat/parser.js';


/** How long to wait for the connection (on a cluster: for the slot map), in **milliseconds**. */
const READY_TIMEOUT_MS = 3_000;

/** Keys per `SCAN` call. */
const SCAN_COUNT = 1_000;

/** What `REDIS_URL` unset means for the inspector. */
export const NO_REDIS_MESSAGE =
  'REDIS_URL is not set: the in-process store of a running server cannot be inspected from outside';

/** A failure of the command: `message` is the one line printed after `state: `; exit status 1. */
export class StateInspectorError extends Error {
  override readonly name = 'StateInspectorError';
}

/** What to do, from the command line (main.ts parses it). */
export interface StateCommandOptions {
  /** `show` prints the state, `reset` deletes it. */
  readonly action: 'show' | 'reset';
  /** The user (`FromUserName`). */
  readonly openid: string;
  /** The Official Account's original id (`ToUserName`, `gh_…`); found with `SCAN` when absent. */
  readonly account?: string;
  /** `show` prints the messages too (what the user wrote: private, hence opt-in). */
  readonly contents?: boolean;
}

/** The Redis settings the inspector shares with the server. */
export interface InspectorSettings {
  /** `REDIS_URL` (may hold a password: print it only through `redactUrl`). */
  readonly redisUrl: string;
  /** `REDIS_CLUSTER`: `redisUrl` is one node of a Redis Cluster. */
  readonly redisCluster: boolean;
  /** `REDIS_KEY_PREFIX`. */
  readonly keyPrefix: string;
}

/**
 * The Redis settings from `env`, validated by the server's own {@link loadConfig}: only
 * `REDIS_URL`, `REDIS_CLUSTER` and `REDIS_KEY_PREFIX` are passed to it (with a placeholder Token),
 * so the inspector needs no `WECHAT_TOKEN` and the server's other settings cannot stop it.
 * @throws {StateInspectorError} when `REDIS_URL` is unset or empty ({@link NO_REDIS_MESSAGE}), or a
 *   setting is invalid (the server's one-line message naming the variable).
 */
export function inspectorSettings(env: Readonly<Record<string, string | undefined>>): InspectorSettings {
  if ((env['REDIS_URL'] ?? '') === '') throw new StateInspectorError(NO_REDIS_MESSAGE);
  try {
    const config = loadConfig({
      WECHAT_TOKEN: 'inspector0',
      REDIS_URL: env['REDIS_URL'],
      REDIS_CLUSTER: env['REDIS_CLUSTER'],
      REDIS_KEY_PREFIX: env['REDIS_KEY_PREFIX'],
    });
    if (config.redisUrl === undefined) throw new StateInspectorError(NO_REDIS_MESSAGE);
    return { redisUrl: config.redisUrl, redisCluster: config.redisCluster, keyPrefix: config.redisKeyPrefix };
  } catch (err) {
    if (err instanceof ConfigError) throw new StateInspectorError(err.message);
    throw err;
  }
}

/**
 * Checks an openid or account id given on the command line.
 * @throws {StateInspectorError} when it is not 1 to 64 letters, digits, `_` or `-`.
 */
export function checkId(what: 'openid' | 'account', value: string): void {
  if (!WECHAT_ID.test(value)) {
    throw new StateInspectorError(`the ${what} ${JSON.stringify(value.slice(0, 80))} is not a WeChat id: 1 to 64 letters, digits, _ or -`);
  }
}

/** `prefix` with Redis glob characters (`* ? [ ] \`) escaped, for `SCAN MATCH`. */
export function escapeGlob(prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * The account of `key` when it is exactly the state key of `openid` under `prefix`
 * (`<prefix>{<account>:<openid>}`, the account a WeChat id), else `undefined`: a `SCAN MATCH`
 * pattern's `*` could also match longer keys.
 */
export function accountOfKey(key: string, prefix: string, openid: string): string | undefined {
  const head = `${prefix}{`;
  const tail = `:${openid}}`;
  if (!key.startsWith(head) || !key.endsWith(tail) || key.length < head.length + tail.length) return undefined;
  const account = key.slice(head.length, key.length - tail.length);
  return WECHAT_ID.test(account) ? account : undefined;
}

/** What {@link formatState} prints: one user's stored state and what Redis knows around it. */
export interface StateReport {
  readonly account: string;
  readonly openid: string;
  /** The storage key. */
  readonly key: string;
  readonly state: DialogState;
  /** The key's remaining time to live in **seconds** (Redis `TTL`); `-1` when it has no expiry. */
  readonly ttlSeconds: number;
  /** The newest remembered `CreateTime` (Unix **seconds**) of this user's handled messages, if any. */
  readonly handledUpTo?: number;
}

/** `seconds` (Unix) as an ISO time, or the number as it is when it is not a valid time. */
function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

/**
 * `value` quoted as JSON, so that one message stays one line and what a user wrote cannot drive
 * the terminal: JSON escapes the C0 controls (newlines, ESC); the C1 controls, the line and
 * paragraph separators and the bidirectional overrides are escaped here too.
 */
export function quote(value: string): string {
  return JSON.stringify(value).replace(
    /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * One message on one line: its `CreateTime` as an ISO time, its `MsgType`, then `Content` (text),
 * `Event` and `EventKey` (events), `PushId` and `Service` (the push that opened a push dialog), each
 * quoted with {@link quote}; other types show only their type.
 * A type or event this version does not know shows as WeChat sent it (`RawMsgType`, `RawEvent`).
 * Fields are read defensively: a stored state is checked only for the fields every message has.
 */
export function formatMessage(message: DialogMessage): string {
  const fields = message as unknown as Readonly<Record<string, unknown>>;
  const field = (name: string): string | undefined => (typeof fields[name] === 'string' ? fields[name] : undefined);
  const type = message.MsgType === 'unknown' ? (field('RawMsgType') ?? 'unknown') : message.MsgType;
  const parts = [isoTime(message.CreateTime), quote(type).slice(1, -1)];
  if (message.MsgType === 'text') parts.push(quote(field('Content') ?? ''));
  if (message.MsgType === 'event') {
    parts.push(quote((message.Event === 'unknown' ? field('RawEvent') : field('Event')) ?? 'unknown'));
    const eventKey = field('EventKey');
    if (eventKey !== undefined) parts.push(quote(eventKey));
  }
  if (message.MsgType === 'push') parts.push(quote(field('PushId') ?? ''), quote(field('Service') ?? ''));
  return parts.join(' ');
}

/**
 * The text `state show` prints (lines ending in `\n`): account, openid, key, dialog, version,
 * ended, messages (count), effects (count), TTL, `handledUpTo`, and with `contents` one line per
 * message ({@link formatMessage}). Pure.
 */
export function formatState(report: StateReport, options: { readonly contents?: boolean } = {}): string {
  const { state } = report;
  const rows: [string, string][] = [
    ['account', report.account],
    ['openid', report.openid],
    ['key', report.key],
    ['dialog', state.dialog],
    ['version', state.version],
    ['ended', state.ended === true ? 'yes (kept only to answer WeChat retries; the next new message is routed afresh)' : 'no'],
    ['messages', String(state.messages.length)],
    ['effects', String(state.effects.length)],
    ['ttl', report.ttlSeconds < 0 ? 'none (the key has no expiry)' : `${report.ttlSeconds} s`],
    ['handledUpTo', report.handledUpTo === undefined ? 'none' : `${report.handledUpTo} (${isoTime(report.handledUpTo)})`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const lines = rows.map(([label, value]) => `${label.padEnd(width)}${value}`);
  if (options.contents === true) {
    lines.push('messages, oldest first:');
    for (const message of state.messages) lines.push(`  ${formatMessage(message)}`);
  } else {
    lines.push('(message contents not shown: add --contents to print them)');
  }
  return `${lines.join('\n')}\n`;
}

/** Where the command writes: stdout and stderr (tests may pass their own). */
export interface StateOutput {
  out(text: string): void;
  err(text: string): void;
}

/** The password in `url` (decoded), if it has one: scrubbed from any error text printed. */
function passwordOf(url: string): string | undefined {
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password === '' ? undefined : password;
  } catch {
    return undefined;
  }
}

/** `text` on one line, without `url`'s password. */
function scrub(text: string, url: string): string {
  const password = passwordOf(url);
  const clean = password === undefined ? text : text.split(password).join('***');
  return clean.replace(/\s+/g, ' ').trim();
}

/** Resolves when `client` is `ready`; rejects after `timeoutMs` or when the client is closed. */
function whenReady(client: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onReady = (): void => finish();
    const onEnd = (): void => finish(new Error('the connection was closed'));
    const timer = setTimeout(() => finish(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    client.on('ready', onReady);
    client.on('end', onEnd);
  });
}

/**
 * A client connected to the server's Redis (or Cluster), built by the server's own factories
 * (fail fast: every command fails after 1 s).
 * @throws {StateInspectorError} `cannot reach Redis at <url without password> (…): check REDIS_URL`
 *   when it is not ready within 3 s.
 */
async function connect(settings: InspectorSettings): Promise<Redis | Cluster> {
  const { redisUrl: url } = settings;
  let lastError: Error | undefined;
  const onError = (err: Error): void => {
    lastError = err;
  };
  const where = settings.redisCluster ? `Redis Cluster at ${redactUrl(url)}` : `Redis at ${redactUrl(url)}`;
  let client: Redis | Cluster;
  try {
    client = settings.redisCluster ? createRedisClusterClient(url, { onError }) : createRedisClient(url, { onError });
  } catch (err) {
    // createRedisClusterClient's RangeError never repeats the URL.
    throw new StateInspectorError(`cannot reach ${where} (${scrub(err instanceof Error ? err.message : String(err), url)}): check REDIS_URL`);
  }
  try {
    await whenReady(client, READY_TIMEOUT_MS);
  } catch (err) {
    client.disconnect();
    const detail = lastError?.message ?? (err instanceof Error ? err.message : String(err));
    throw new StateInspectorError(`cannot reach ${where} (${scrub(detail, url)}): check REDIS_URL`);
  }
  return client;
}

/**
 * The accounts under which `openid` has a state key: `SCAN MATCH <prefix>{*:<openid>}` over the
 * whole keyspace (every master of a cluster), sorted.
 */
async function accountsOf(client: Redis | Cluster, prefix: string, openid: string): Promise<string[]> {
  const pattern = `${escapeGlob(prefix)}{*:${openid}}`;
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const accounts = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      for (const key of keys) {
        const account = accountOfKey(key, prefix, openid);
        if (account !== undefined) accounts.add(account);
      }
      cursor = next;
    } while (cursor !== '0');
  }
  return [...accounts].sort();
}

/**
 * The account to look at: `--account` when given, else the only one `SCAN` finds; `undefined`
 * when there is none.
 * @throws {StateInspectorError} when the openid has a state on more than one account.
 */
async function resolveAccount(client: Redis | Cluster, prefix: string, openid: string, account: string | undefined): Promise<string | undefined> {
  if (account !== undefined) return account;
  const accounts = await accountsOf(client, prefix, openid);
  if (accounts.length > 1) {
    throw new StateInspectorError(`${openid} has a state on ${accounts.length} accounts (${accounts.join(', ')}): choose one with --account <gh_id>`);
  }
  return accounts[0];
}

/** An ioredis error Redis answered (e.g. `WRONGTYPE`), as opposed to a connection problem. */
function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

/**
 * What is stored at one state key: the raw value (`null`: none; a format-2 header or a format-1
 * state), the state's messages and effects parts (`''` when absent), its TTL and the user's
 * `handledUpTo`.
 */
interface Stored {
  readonly raw: string | null;
  readonly messages: string;
  readonly effects: string;
  readonly ttlSeconds: number;
  readonly handledUpTo: number | undefined;
}

/**
 * `GET` and `TTL` of the state key and `GET` of `<key>:t`, `<key>:m` and `<key>:e` in one `MULTI`
 * (one hash slot, so one node of a cluster): a consistent view.
 * @throws {StateInspectorError} when the key holds something other than a string.
 */
async function readStored(client: Redis | Cluster, key: string): Promise<Stored> {
  const results = (await client.multi().get(key).ttl(key).get(`${key}:t`).get(messagesKey(key)).get(effectsKey(key)).exec()) ?? [];
  const [[getError, raw] = [null, null], [, ttl] = [null, -2], [, upTo] = [null, null], [, messages] = [null, null], [, effects] = [null, null]] = results;
  if (getError !== null) {
    if (isReplyError(getError) && /WRONGTYPE/.test(getError.message)) {
      throw new StateInspectorError(`${key} holds a value that is not a dialog state (not a string): check REDIS_KEY_PREFIX`);
    }
    throw getError;
  }
  const handledUpTo = typeof upTo === 'string' && /^\d+$/.test(upTo) && upTo !== '0' ? Number(upTo) : undefined;
  return {
    raw: typeof raw === 'string' ? raw : null,
    messages: typeof messages === 'string' ? messages : '',
    effects: typeof effects === 'string' ? effects : '',
    ttlSeconds: typeof ttl === 'number' ? ttl : -2,
    handledUpTo,
  };
}

/** `openid` and, when known, ` on <account>` for messages. */
function whose(openid: string, account: string | undefined): string {
  return account === undefined ? openid : `${openid} on ${account}`;
}

/** What `reset` says about the memory of handled messages it leaves. */
const MEMORY_KEPT =
  'the memory of handled messages is kept until it expires, so WeChat retries and replayed requests still get their first reply and start no dialog';

/**
 * Runs `state show` or `state reset` on `client` (which it does not close).
 * @returns the exit status: 0, or 1 (a problem, already printed on `output.err`).
 */
async function inspect(client: Redis | Cluster, settings: InspectorSettings, options: StateCommandOptions, output: StateOutput): Promise<number> {
  const { openid } = options;
  const prefix = settings.keyPrefix;
  const account = await resolveAccount(client, prefix, openid, options.account);
  if (account === undefined) {
    output.out(`no state for ${openid} (no key ${prefix}{*:${openid}})${options.action === 'reset' ? ': nothing deleted' : ''}\n`);
    return 0;
  }
  const key = stateKeyString(prefix, { account, openid });
  const stored = await readStored(client, key);
  if (stored.raw === null) {
    output.out(`no state for ${whose(openid, account)} (no key ${key})${options.action === 'reset' ? ': nothing deleted' : ''}\n`);
    return 0;
  }
  const state = decodeStored(stored.raw, stored.messages, stored.effects);
  if (options.action === 'show') {
    if (state === undefined) {
      throw new StateInspectorError(`${key} holds a value that is not a dialog state (corrupt, or another format than this version writes): \`state reset\` deletes it`);
    }
    const report: StateReport = { account, openid, key, state, ttlSeconds: stored.ttlSeconds, ...(stored.handledUpTo === undefined ? {} : { handledUpTo: stored.handledUpTo }) };
    output.out(formatState(report, { contents: options.contents === true }));
    return 0;
  }
  // A value that does not decode is one the server treats as absent (and overwrites): deleting it is safe.
  // The version, messages and effects go with it: a server that still has the old state cached then finds it gone.
  const [deleted] = ((await client.multi().del(key).del(stateKeys(key).slice(1)).exec()) ?? []).map(([, n]) => Number(n));
  if (deleted === 0) {
    output.out(`no state for ${whose(openid, account)} (${key} expired meanwhile): nothing deleted\n`);
    return 0;
  }
  const what =
    state === undefined
      ? 'a value that was not a readable dialog state'
      : `dialog ${state.dialog}, ${state.messages.length} message${state.messages.length === 1 ? '' : 's'}${state.ended === true ? ', ended' : ''}`;
  output.out(`deleted the state of ${whose(openid, account)} (${what}; key ${key}): their next message is routed afresh\n`);
  output.out(`not deleted: ${MEMORY_KEPT} (${key}:t, ${key}:h:*)\n`);
  return 0;
}

/**
 * Runs the command with the settings from `env` and prints to `output`.
 * @returns the exit status: 0 (done, also when there is no state), 1 (one line on `output.err`).
 */
export async function runStateCommand(
  options: StateCommandOptions,
  env: Readonly<Record<string, string | undefined>>,
  output: StateOutput,
): Promise<number> {
  let client: Redis | Cluster | undefined;
  let settings: InspectorSettings | undefined;
  try {
    checkId('openid', options.openid);
    if (options.account !== undefined) checkId('account', options.account);
    settings = inspectorSettings(env);
    client = await connect(settings);
    return await inspect(client, settings, options, output);
  } catch (err) {
    if (err instanceof StateInspectorError) {
      output.err(`state: ${err.message}\n`);
    } else {
      // A command that failed or timed out once connected; ioredis's messages name no argument.
      const detail = err instanceof Error ? err.message : String(err);
      if (settings === undefined) output.err(`state: ${scrub(detail, '')}\n`);
      else output.err(`state: Redis at ${redactUrl(settings.redisUrl)} failed (${scrub(detail, settings.redisUrl)}): check REDIS_URL and that Redis is running\n`);
    }
    return 1;
  } finally {
    client?.disconnect();
  }
}

/**
 * `wechat-dialog state …`: loads `.env` (or `DOTENV_CONFIG_PATH`) as the server does, runs the
 * command on `process.env`, prints to stdout and stderr, and sets `process.exitCode` (the process
 * then ends by itself once the connection is closed, after its output is written).
 */
export async function state(options: StateCommandOptions): Promise<void> {
  loadDotenv({ quiet: true, path: process.env.DOTENV_CONFIG_PATH ?? '.env' });
  process.exitCode = await runStateCommand(options, process.env, {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  });
}
