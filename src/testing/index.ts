/**
 * `wechat-dialog-server/testing`: helpers for testing dialogs, kept out of the main entry.
 * @module
 */
export {
  createConversation,
  ConversationError,
  type Conversation,
  type ConversationOptions,
  type OutgoingMessage,
} from './conversation.js';
