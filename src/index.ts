/**
 * The public API: what dialog authors and embedders import. Internals stay internal.
 * @module
 */

// Dialogs: the contract and the helpers authors use
export {
  defineDialog,
  record,
  handBack,
  RecordedEffectError,
  DialogDefinitionError,
  type Dialog,
  type DialogContext,
  type DialogFunction,
  type DialogGenerator,
  type DialogOptions,
  type DialogReply,
} from './dialog/dialog.js';

// Routing
export { createRouter, RouterError, type Route, type Matcher, type Router, type RouterOptions } from './dialog/router.js';

// The engine and its stores
export { DialogEngine, DEFAULT_APOLOGY, type EngineOptions, type TurnResult, type TurnOutcome } from './dialog/engine.js';
export {
  StoreUnavailableError,
  type DialogStore,
  type DialogState,
  type StateKey,
  type JsonValue,
} from './dialog/store/store.js';

// WeChat messages and replies
export type * from './wechat/messages.js';
export { text, news, ReplyError, MAX_NEWS_ARTICLES, type Reply, type TextReply, type NewsReply, type Article } from './wechat/replies.js';
