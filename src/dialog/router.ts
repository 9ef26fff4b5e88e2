/**
 * The router: a table that maps messages (text keywords and patterns, events, MsgTypes) to the
 * dialog they start. First match wins; a fallback takes what matches nothing.
 *
 * While a user has an active dialog, their messages go to it, except for routes marked
 * `interrupt` and routes with no reply (`dialog: null`), which are consulted first.
 *
 * @module
 */
import type { InboundMessage } from '../wechat/messages.js';
import type { Dialog } from './dialog.js';

/** Which messages a route takes. */
export type Matcher =
  /** Text messages whose `Content` equals the string exactly (case-sensitive, not trimmed), or matches the RegExp. */
  | { readonly text: string | RegExp }
  /**
   * Events whose `Event` equals `event` (case-insensitive: `click` matches `CLICK`), and, when
   * given, whose `EventKey` equals the string or matches the RegExp.
   */
  | { readonly event: string; readonly eventKey?: string | RegExp }
  /** Messages of this `MsgType` (`image`, `voice`, `location`, ... or a type this version does not know). */
  | { readonly msgType: string };

/** One row of the router table. */
export interface Route {
  /** Which messages this route takes. */
  readonly match: Matcher;
  /**
   * The dialog to start, or `null` for no reply: WeChat is answered `success`. A no-reply route is
   * consulted even while a dialog is active, and leaves that dialog as it is (unless `interrupt`).
   */
  readonly dialog: Dialog | null;
  /**
   * Take the message even while another dialog is active, and end that dialog.
   * @default false: while a dialog is active, it gets the message instead.
   */
  readonly interrupt?: boolean;
}

/** Options of {@link createRouter}. */
export interface RouterOptions {
  /** The table, in priority order: first match wins. */
  readonly routes: readonly Route[];
  /** The dialog for messages no route matches, or `null` for no reply. */
  readonly fallback: Dialog | null;
}

/** What to do with a message. */
export type RouteDecision =
  /** Give the message to the user's active dialog. */
  | { readonly kind: 'continue' }
  /** Start `dialog` with the message; `endsActive`: the active dialog (if any) ends. */
  | { readonly kind: 'start'; readonly dialog: Dialog; readonly endsActive: boolean }
  /** Answer nothing; `endsActive`: the active dialog (if any) ends. */
  | { readonly kind: 'no-reply'; readonly endsActive: boolean };

/** A compiled router table. */
export interface Router {
  /**
   * Decides what to do with `message`.
   * @param dialogActive - whether the user has an active dialog (of a known, current version).
   */
  decide(message: InboundMessage, dialogActive: boolean): RouteDecision;
  /** The dialog registered under `name` (by a route or the fallback), if any. */
  dialog(name: string): Dialog | undefined;
}

/** Thrown by {@link createRouter} for a table that cannot work; the message says what to change. */
export class RouterError extends Error {
  override readonly name = 'RouterError';
  readonly code = 'INVALID_ROUTE';
}

function matchesValue(pattern: string | RegExp, value: string): boolean {
  return typeof pattern === 'string' ? pattern === value : pattern.test(value);
}

function matches(matcher: Matcher, message: InboundMessage): boolean {
  if ('text' in matcher) {
    return message.MsgType === 'text' && matchesValue(matcher.text, message.Content);
  }
  if ('event' in matcher) {
    if (message.MsgType !== 'event') return false;
    const event = message.Event === 'unknown' ? message.RawEvent : message.Event;
    if (event.toLowerCase() !== matcher.event.toLowerCase()) return false;
    if (matcher.eventKey === undefined) return true;
    const eventKey = 'EventKey' in message ? message.EventKey : undefined;
    return eventKey !== undefined && matchesValue(matcher.eventKey, eventKey);
  }
  const msgType = message.MsgType === 'unknown' ? message.RawMsgType : message.MsgType;
  return msgType === matcher.msgType;
}

function checkPattern(pattern: string | RegExp | undefined, index: number): void {
  if (pattern instanceof RegExp && (pattern.global || pattern.sticky)) {
    throw new RouterError(
      `route ${index}: ${String(pattern)} has the g or y flag, which makes test() depend on the previous call; remove the flag`,
    );
  }
}

/**
 * Compiles a router table.
 * @throws {RouterError} when two different dialogs share a name, or a RegExp has the `g`/`y` flag.
 */
export function createRouter(options: RouterOptions): Router {
  const byName = new Map<string, Dialog>();
  const register = (dialog: Dialog | null, where: string): void => {
    if (dialog === null) return;
    const known = byName.get(dialog.name);
    if (known !== undefined && known !== dialog) {
      throw new RouterError(`${where}: two different dialogs are named ${JSON.stringify(dialog.name)}; give each a unique name`);
    }
    byName.set(dialog.name, dialog);
  };
  options.routes.forEach((route, index) => {
    const { match } = route;
    if ('text' in match) checkPattern(match.text, index);
    if ('event' in match) checkPattern(match.eventKey, index);
    register(route.dialog, `route ${index}`);
  });
  register(options.fallback, 'fallback');
  const routes = [...options.routes];

  const decision = (dialog: Dialog | null, endsActive: boolean): RouteDecision =>
    dialog === null ? { kind: 'no-reply', endsActive } : { kind: 'start', dialog, endsActive };

  return {
    decide(message, dialogActive) {
      if (dialogActive) {
        const route = routes.find((r) => (r.interrupt === true || r.dialog === null) && matches(r.match, message));
        if (route === undefined) return { kind: 'continue' };
        return decision(route.dialog, route.interrupt === true);
      }
      const route = routes.find((r) => matches(r.match, message));
      return decision(route === undefined ? options.fallback : route.dialog, false);
    },
    dialog: (name) => byName.get(name),
  };
}
