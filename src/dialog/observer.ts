/**
 * What the engine reports about its turns, for metrics and turn logs (design.md, "Growing without
 * tangling"): one small interface the engine calls; prom-client and pino live behind it, in the
 * process layer. Every hook is optional, is called synchronously, and must not throw (an observer
 * that throws is ignored: a turn never fails because of it).
 *
 * @module
 */
import type { TurnOutcome } from './engine.js';

/** One finished turn. Carries no message content and only a masked openid. */
export interface TurnEvent {
  /** The openid, masked as in every log line (`oUser0…0001`). */
  readonly openid: string;
  /** `MsgId` (or `MsgID`), when the message has one. */
  readonly msgId: string | undefined;
  readonly msgType: string;
  /** The dialog that ran (or would have), when known. */
  readonly dialog: string | undefined;
  readonly outcome: TurnOutcome;
  /**
   * Where a `repeated` answer came from: `state` (the user's state: its messages or `recent`) or
   * `memory` (the memory of handled messages, for a retry or a replay the state no longer holds).
   */
  readonly repeatedFrom?: 'state' | 'memory';
  /** How many messages the dialog was replayed over in the turn's last attempt (0: none ran). */
  readonly replayLength: number;
  /** From the turn's start (after waiting for this user's previous turn) to its answer, in **milliseconds**. */
  readonly durationMs: number;
  /** Compare-and-set conflicts: how often another process had moved the state on. */
  readonly conflicts: number;
}

/** The hooks; see the module doc. */
export interface EngineObserver {
  /** A turn finished (also a failed one: `outcome` `failed`). */
  turnEnded?(event: TurnEvent): void;
  /** The store failed during a turn (the user gets the apology). */
  storeError?(): void;
}

/** Calls `hook` and swallows what it throws: an observer never breaks a turn. */
export function notify<A extends unknown[]>(hook: ((...args: A) => void) | undefined, ...args: A): void {
  if (hook === undefined) return;
  try {
    hook(...args);
  } catch {
    // an observer's own failure is not the turn's
  }
}
