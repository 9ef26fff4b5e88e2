/**
 * One log line per turn, at `info`, from the engine's observer hook: the masked openid, `MsgId`,
 * `MsgType`, the dialog, the outcome, the replay length and the duration in milliseconds. Never
 * the message's content. `LOG_TURNS=false` (or `wechatDialog({ logTurns: false })`) turns it off.
 *
 * @module
 */
import type { EngineLogger } from '../dialog/engine.js';
import type { EngineObserver } from '../dialog/observer.js';

/** The message of every turn line, to filter on (`msg == "turn"`). */
export const TURN_LOG_MESSAGE = 'turn';

/** An observer that logs each finished turn with `logger.info`. */
export function turnLog(logger: Pick<EngineLogger, 'info'>): EngineObserver {
  return {
    turnEnded(event) {
      logger.info(
        {
          openid: event.openid,
          MsgId: event.msgId,
          MsgType: event.msgType,
          dialog: event.dialog,
          outcome: event.outcome,
          ...(event.repeatedFrom === undefined ? {} : { repeatedFrom: event.repeatedFrom }),
          replayLength: event.replayLength,
          durationMs: Math.round(event.durationMs * 10) / 10,
          ...(event.conflicts > 0 ? { conflicts: event.conflicts } : {}),
        },
        TURN_LOG_MESSAGE,
      );
    },
  };
}

/** One observer calling each of `observers` in turn (each hook guarded by the engine). */
export function combineObservers(...observers: ReadonlyArray<EngineObserver | undefined>): EngineObserver {
  const present = observers.filter((o): o is EngineObserver => o !== undefined);
  return {
    turnEnded(event) {
      for (const observer of present) {
        try {
          observer.turnEnded?.(event);
        } catch {
          // one observer's failure does not silence the others
        }
      }
    },
    storeError() {
      for (const observer of present) {
        try {
          observer.storeError?.();
        } catch {
          // as above
        }
      }
    },
  };
}
