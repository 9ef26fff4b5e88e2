/**
 * The router: a table that maps messages (text keywords and patterns, events, MsgTypes) to the
 * dialog they start. First match wins; a fallback takes what matches nothing.
 *
 * While a user has an active dialog, their messages go to it, except for routes marked
 * `interrupt` and routes with no reply (`dialog: null`), which are consulted first.
 *
 * Notification events (see {@link isNotification}) report something rather than ask for an answer;
 * they never reach an active dialog and never start the fallback, only a route that names them.
 *
 * @module
 */
import type { EventMessage, EventOf, InboundMessage, KnownEvent, KnownMsgType, TextMessage, UnknownMessage } from '../wechat/messages.js';
import type { AnyPushDialog, Dialog } from './dialog.js';

/** Which messages a route takes. */
export type Matcher =
  /** Text messages whose `Content` equals the string exactly (case-sensitive, not trimmed), or matches the RegExp. */
  | { readonly text: string | RegExp }
  /**
   * Events whose `Event` equals `event` (case-insensitive: `click` matches `CLICK`; an event this
   * version does not type is matched by the value WeChat sent), and, when given, whose `EventKey`
   * equals the string or matches the RegExp (e.g. `/^qrscene_/` for follows through a QR code).
   */
  | { readonly event: KnownEvent | (string & {}); readonly eventKey?: string | RegExp }
  /** Messages of this `MsgType` (`image`, `voice`, `location`, … `event` for every event, or a type this version does not know). */
  | { readonly msgType: KnownMsgType | (string & {}) };

type OrdinaryMsgType = Exclude<KnownMsgType, 'event'>;

/**
 * The messages `M` matches, as a type: `MatchedBy<{ event: 'CLICK' }>` is {@link ClickEvent},
 * `MatchedBy<{ text: 'hi' }>` is {@link TextMessage}, `MatchedBy<{ msgType: 'image' }>` is
 * {@link ImageMessage}. An event named in another casing, or a type this version does not know,
 * gives the wider type ({@link EventMessage}, {@link UnknownMessage}).
 */
export type MatchedBy<M extends Matcher> = M extends { readonly text: string | RegExp }
  ? TextMessage
  : M extends { readonly event: infer E }
    ? E extends KnownEvent
      ? EventOf<E>
      : EventMessage
    : M extends { readonly msgType: infer T }
      ? T extends 'event'
        ? EventMessage
        : T extends OrdinaryMsgType
          ? Extract<InboundMessage, { readonly MsgType: T }>
          : UnknownMessage
      : never;

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

/**
 * A route whose dialog is typed by what the route matches: a dialog written for `ClickEvent`
 * (`function* (first: ClickEvent)`) can be given to `{ event: 'CLICK' }` and to nothing wider,
 * checked at compile time. Untyped dialogs (`first: InboundMessage`) fit every route.
 * @param match - see {@link Matcher}.
 * @param dialog - the dialog to start, or `null` for no reply.
 * @param options - `interrupt`: see {@link Route.interrupt}.
 * @example
 * const today = defineDialog('today', function* (first: ClickEvent) { return text(`你点了 ${first.EventKey}`); });
 * const routes = [route({ event: 'CLICK', eventKey: 'V1001_TODAY' }, today)];
 */
export function route<const M extends Matcher>(
  match: M,
  dialog: Dialog<MatchedBy<M>> | null,
  options: { readonly interrupt?: boolean } = {},
): Route {
  // Sound: the router starts `dialog` only with a message `match` matched, which is a MatchedBy<M>.
  const erased = dialog as Dialog | null;
  return options.interrupt === undefined ? { match, dialog: erased } : { match, dialog: erased, interrupt: options.interrupt };
}

/**
 * `Event` values that report something rather than ask for an answer: the user left
 * (`unsubscribe`), a periodic location report (`LOCATION`, every 5 s), a menu link or Mini Program
 * was opened (`VIEW`, `view_miniprogram`), a template or mass send finished. Nobody reads a reply to
 * them (protocol README §3.1, §7).
 */
export const NOTIFICATION_EVENTS: ReadonlySet<string> = new Set<KnownEvent>([
  'unsubscribe',
  'LOCATION',
  'VIEW',
  'view_miniprogram',
  'TEMPLATESENDJOBFINISH',
  'MASSSENDJOBFINISH',
]);

/**
 * Whether `message` is a notification: an event in {@link NOTIFICATION_EVENTS}, or an event this
 * version does not know. Without a route that names it, a notification gets no reply and never
 * reaches the active dialog or the fallback; `unsubscribe` also ends the active dialog.
 */
export function isNotification(message: InboundMessage): boolean {
  return message.MsgType === 'event' && (message.Event === 'unknown' || NOTIFICATION_EVENTS.has(message.Event));
}

/** Options of {@link createRouter}. */
export interface RouterOptions {
  /** The table, in priority order: first match wins. */
  readonly routes: readonly Route[];
  /** The dialog for messages no route matches, or `null` for no reply. Notification events never reach it. */
  readonly fallback: Dialog | null;
  /**
   * Dialogs a push may start (`POST /push` with `"dialog": name`), defined with `definePushDialog`.
   * No message starts them; the user's messages continue them once started.
   * @default none
   */
  readonly pushed?: readonly AnyPushDialog[];
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
  /** The dialog registered under `name` (by a route, the fallback or `pushed`), if any. */
  dialog(name: string): Dialog | undefined;
  /** The push dialog registered under `name` in `pushed`, if any. */
  pushDialog(name: string): AnyPushDialog | undefined;
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
  const pushed = new Map<string, AnyPushDialog>();
  (options.pushed ?? []).forEach((dialog, index) => {
    // Sound: the engine starts a push dialog only with a PushMessage whose Input its schema produced.
    register(dialog as unknown as Dialog, `pushed ${index}`);
    pushed.set(dialog.name, dialog);
  });
  const routes = [...options.routes];

  const decision = (dialog: Dialog | null, endsActive: boolean): RouteDecision =>
    dialog === null ? { kind: 'no-reply', endsActive } : { kind: 'start', dialog, endsActive };

  return {
    decide(message, dialogActive) {
      const notification = isNotification(message);
      if (dialogActive) {
        const taken = routes.find((r) => (r.interrupt === true || r.dialog === null) && matches(r.match, message));
        if (taken !== undefined) return decision(taken.dialog, taken.interrupt === true);
        if (notification) return { kind: 'no-reply', endsActive: message.MsgType === 'event' && message.Event === 'unsubscribe' };
        return { kind: 'continue' };
      }
      const taken = routes.find((r) => matches(r.match, message));
      if (taken !== undefined) return decision(taken.dialog, false);
      return decision(notification ? null : options.fallback, false);
    },
    dialog: (name) => byName.get(name),
    pushDialog: (name) => pushed.get(name),
  };
}
