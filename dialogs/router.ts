/**
 * The demo's router table: first match wins; `help` takes whatever matches nothing.
 * While a dialog is active it gets the user's messages, except for the `interrupt` route below and
 * notification events.
 */
import { createRouter, type Route } from '../src/index.js';
import { accumulator } from './accumulator.js';
import { help, welcome } from './help.js';
import { links } from './links.js';
import { menu } from './menu.js';
import { orderConfirmation } from './order-confirmation.js';
import { sessionRecord } from './session-record.js';

export const routes: readonly Route[] = [
  { match: { text: 'github' }, dialog: links },
  { match: { text: '累加器' }, dialog: accumulator },
  { match: { text: '会话记录' }, dialog: sessionRecord },
  { match: { text: '会话菜单' }, dialog: menu },
  { match: { text: /^(帮助|help)$/i }, dialog: help },
  // A new follower always gets the welcome, even in the middle of a dialog.
  { match: { event: 'subscribe' }, dialog: welcome, interrupt: true },
  // No route is needed for unsubscribe, VIEW, LOCATION and the other notification events: without
  // one they get no reply and never reach a dialog (unsubscribe also ends the active dialog).
];

/** Dialogs other services start with a push (`POST /push` with `"dialog"`). */
export const pushed = [orderConfirmation];

export const router = createRouter({ routes, fallback: help, pushed });
