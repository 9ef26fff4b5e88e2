/**
 * The `DialogStore` contract: where each user's dialog state lives between messages.
 *
 * Implementations: {@link ./memory-store.ts} (in-process, for development and tests) and
 * {@link ./redis-store.ts} (ioredis, shared by every process). One test suite
 * (`test/dialog/store.test.ts`) runs against all of them.
 *
 * @module
 */
import type { DialogMessage } from '../dialog.js';
import type { Reply } from '../../wechat/replies.js';

/** A JSON value: what a recorded effect may hold. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Whose state: one key per (account, openid). */
export interface StateKey {
  /** The Official Account's original id (`ToUserName`, `gh_…`). */
  readonly account: string;
  /** The user's `openid` (`FromUserName`). */
  readonly openid: string;
}

/**
 * The result of one `record()` call, kept so that replay returns it instead of doing the work again.
 * `ok` holds the value (absent for `undefined`); `error` holds the message of what the work threw.
 */
export type RecordedEffect = { readonly ok?: JsonValue } | { readonly error: string };

/** What {@link DialogStore.commit} did, and the snapshot of what is stored afterwards. */
export interface CommitResult {
  /** `true` when `next` was written (or the state removed); `false` when the stored value had changed. */
  readonly committed: boolean;
  /** What is stored now: `next` when committed, otherwise the value that is there instead. */
  readonly snapshot: Snapshot;
  /**
   * Nothing was written because the message given as `handled` was remembered already (another
   * turn handled it meanwhile): what it got then.
   */
  readonly handled?: HandledReply;
}

/** One user's active dialog. */
export interface DialogState {
  /** The dialog's name, as registered with the router. */
  readonly dialog: string;
  /** The dialog's version when it started (an author-set string or a hash of its source). */
  readonly version: string;
  /** Every message the dialog received, the opening message first. Never empty. */
  readonly messages: readonly DialogMessage[];
  /** Results of `record()` calls, in the order the dialog made them. */
  readonly effects: readonly RecordedEffect[];
  /**
   * The dialog has ended (at its last message). The state is kept until its TTL runs out only so
   * that a WeChat retry of one of its messages gets the same reply; new messages are routed afresh.
   */
  readonly ended?: boolean;
  /**
   * The last few messages this user sent (in this dialog or the ones before it) with the reply each
   * got, oldest first: a WeChat retry that arrives after the user moved on to another dialog still
   * gets its own reply and changes nothing. Absent in states written before it existed.
   */
  readonly recent?: readonly RecentReply[];
}

/** A message handled lately and the reply it got. */
export interface RecentReply {
  /** The message's identity (`messageIdentity`: what WeChat's retries of it share). */
  readonly id: string;
  /**
   * The reply it got; `null` for none: WeChat was answered `success` (no reply, or a reply that
   * went to the user another way, as a late customer-service message).
   */
  readonly reply: Reply | null;
}

/**
 * A message just handled, to be remembered for the replay window (issue 10): a WeChat retry or a
 * replayed request carrying the same identity gets `reply` again and never runs a dialog.
 */
export interface HandledMessage {
  /** The message's identity (`messageIdentity`: `MsgId`, or the event identity). */
  readonly id: string;
  /** The reply it got; `null` when WeChat was answered `success` (no reply, or the reply went late). */
  readonly reply: Reply | null;
  /** Its `CreateTime`, Unix **seconds**. */
  readonly createTime: number;
  /** How long to remember it, in **seconds** (a positive integer): at least the freshness window. */
  readonly ttlSeconds: number;
  /**
   * The id of the outbound delivery (a customer-service message queued before this commit) that
   * carries the reply instead, when the reply goes out late or the turn was started by a push.
   * The delivery checks it before sending, so a delivery whose turn never committed sends nothing.
   */
  readonly delivery?: string;
}

/** What a remembered message got: see {@link HandledMessage}. */
export interface HandledReply {
  readonly reply: Reply | null;
  /** See {@link HandledMessage.delivery}. */
  readonly delivery?: string;
}

/**
 * What {@link DialogStore.read} saw: the state, and an opaque token that {@link DialogStore.commit}
 * uses to check that nothing changed in between.
 */
export interface Snapshot {
  /** The state, or `undefined` when there is none (absent, expired or unreadable). */
  readonly state: DialogState | undefined;
  /**
   * What `commit` compares to find out whether anything changed since: the stored value itself
   * (the in-memory store), or a version written with it (Redis: short, so a commit's bytes do not
   * grow with the dialog). `''` when nothing is stored. Opaque: only pass it back to `commit`.
   */
  readonly token: string;
  /**
   * The length of what is stored for the state, in characters (for memory estimates): the value,
   * or on Redis the header and both parts together. @default `token.length`
   */
  readonly storedLength?: number;
  /**
   * The newest `CreateTime` (Unix **seconds**) among this user's remembered messages, `0` when there
   * is none. A message created later cannot have been handled already, so a turn planned from a
   * cached snapshot needs no lookup for it. `undefined`: unknown (a store that does not remember
   * messages): every message is looked up.
   */
  readonly handledUpTo?: number;
  /** Read with an identity: what that message got when it was handled, if it is remembered. */
  readonly handled?: HandledReply;
}

/**
 * Where dialog states live. Every method either completes or throws {@link StoreUnavailableError};
 * a failed call leaves the stored state as it was (a state, in however many keys, is written
 * together or not at all).
 */
export interface DialogStore {
  /**
   * The state for `key`, or `undefined` when there is none, it has expired, or what is stored cannot
   * be read as a state (a corrupt or older-format value is treated as absent).
   * @throws {StoreUnavailableError} when the backend cannot be reached.
   */
  load(key: StateKey): Promise<DialogState | undefined>;
  /**
   * Writes `state` for `key`, replacing any previous one, and (re)sets its time to live.
   * @param ttlSeconds - time to live in **seconds**, a positive integer.
   * @throws {StoreUnavailableError} when the backend cannot be reached.
   */
  save(key: StateKey, state: DialogState, ttlSeconds: number): Promise<void>;
  /**
   * Reads the state for `key` with a token for {@link commit} (compare-and-set), and
   * `handledUpTo`; with `identity`, also whether that message is remembered (`handled`), in the
   * same round trip.
   * @throws {StoreUnavailableError} when the backend cannot be reached.
   */
  read(key: StateKey, identity?: string): Promise<Snapshot>;
  /**
   * Atomically: if what is stored for `key` is still what `expected` saw, writes `next` with a time
   * to live of `ttlSeconds` (or removes the state when `next` is `undefined`) and returns
   * `{ committed: true, snapshot }` with what is stored now; otherwise writes nothing and returns
   * `{ committed: false, snapshot }` with what is stored instead (another turn got there first:
   * plan again from that snapshot, no extra read needed).
   * With `handled`: first, if that message is remembered already, writes nothing and returns
   * `{ committed: false, handled }` with what it got; otherwise remembers it together with the
   * write, atomically (and raises `handledUpTo` to its `createTime`).
   * @param ttlSeconds - time to live in **seconds**, a positive integer.
   * @throws {StoreUnavailableError} when the backend cannot be reached; the state is then either
   *   fully written or untouched.
   */
  commit(key: StateKey, expected: Snapshot, next: DialogState | undefined, ttlSeconds: number, handled?: HandledMessage): Promise<CommitResult>;
  /**
   * Remembers a message whose turn writes no state (a one-shot reply, a notification event),
   * unless it is remembered already: then returns what it got and changes nothing. Atomic.
   * Optional: a store without it remembers only messages whose turn commits.
   * @throws {StoreUnavailableError} when the backend cannot be reached.
   */
  remember?(key: StateKey, handled: HandledMessage): Promise<HandledReply | undefined>;
  /**
   * Removes the state for `key` (no error when there is none).
   * @throws {StoreUnavailableError} when the backend cannot be reached.
   */
  delete(key: StateKey): Promise<void>;
  /**
   * A health check (what `GET /readyz` asks): resolves when the backend answers, within about a
   * second (for Redis: the client is connected and a `PING` was answered within its command
   * timeout, 1000 ms by default). Never queued to be sent later. Optional: a store without it is
   * taken as ready while it is in use.
   * @throws {StoreUnavailableError} when the backend is not connected, does not answer in time, or
   *   the store was closed.
   */
  ping?(): Promise<void>;
  /** Releases connections and timers. The store must not be used afterwards. */
  close(): Promise<void>;
}

/** The backend of a {@link DialogStore} failed (Redis down, timed out, ...). `cause` holds the original error. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly code = 'STORE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Checks a time to live given in **seconds**: a positive safe integer.
 * @throws {RangeError} otherwise, naming the value.
 */
export function assertTtlSeconds(ttlSeconds: number): void {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`ttlSeconds must be a positive integer number of seconds, got ${ttlSeconds}`);
  }
}
