/**
 * The public API (`import … from 'wechat-dialog-server'`): what dialog authors and embedders
 * import. Internals stay internal; test helpers are in `wechat-dialog-server/testing`.
 * @module
 */

// Dialogs: the contract and the helpers authors use
export {
  defineDialog,
  definePushDialog,
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
  type EffectWork,
  type RecordOptions,
  type PushMessage,
  type PushDialog,
  type AnyPushDialog,
  type DialogMessage,
  type StandardSchemaV1,
  type StandardSchemaResult,
  type SchemaOutput,
} from './dialog/dialog.js';
export type { Outbox, OutboxPush } from './dialog/outbox.js';
export { DEFAULT_EFFECT_TIMEOUT_MS } from './dialog/replay.js';

// Routing
export {
  createRouter,
  route,
  isNotification,
  NOTIFICATION_EVENTS,
  RouterError,
  type Route,
  type Matcher,
  type MatchedBy,
  type Router,
  type RouterOptions,
} from './dialog/router.js';

// The engine and its stores
export {
  DialogEngine,
  DEFAULT_APOLOGY,
  DEFAULT_TOO_LONG_REPLY,
  DEFAULT_HANDLED_TTL_SECONDS,
  MAX_TURN_ATTEMPTS,
  RECENT_REPLIES,
  type EngineOptions,
  type EngineLogger,
  type TurnResult,
  type TurnOutcome,
  type PushStart,
  type PushStartResult,
} from './dialog/engine.js';
export {
  StoreUnavailableError,
  type DialogStore,
  type DialogState,
  type Snapshot,
  type CommitResult,
  type StateKey,
  type JsonValue,
  type RecordedEffect,
  type RecentReply,
  type HandledMessage,
  type HandledReply,
} from './dialog/store/store.js';
export { MemoryStore, DEFAULT_MAX_ENTRIES, type MemoryStoreOptions, type MemoryStoreLogger } from './dialog/store/memory-store.js';
export { RedisStore, type RedisStoreOptions } from './dialog/store/redis-store.js';
export { createRedisClient, createRedisClusterClient, type RedisClientOptions } from './dialog/store/redis-client.js';

// HTTP: the Express middleware WeChat calls, and the framework-neutral handler under it
export {
  wechatDialog,
  WechatDialogOptionsError,
  IN_PROCESS_STORE_WARNING,
  type WechatDialogOptions,
  type WechatDialogMiddleware,
} from './http/wechat-dialog.js';
export {
  createWeChatHandler,
  BodyReadError,
  DEFAULT_MAX_AGE_SECONDS,
  type HandlerOptions,
  type LateReplyOptions,
  type SecurityOptions,
  type WeChatHttpRequest,
  type WeChatHttpResponse,
  type WeChatRequestHandler,
} from './http/wechat-handler.js';

// WeChat messages and replies
export type * from './wechat/messages.js';
export { parseMessage, MessageParseError, type MessageParseErrorCode } from './wechat/parser.js';
export { messageIdentity } from './wechat/message-identity.js';
export { computeSignature, verifySignature } from './wechat/signature.js';
export { replyToXml, SUCCESS_BODY, type ReplyAddress } from './wechat/reply-xml.js';
export {
  text,
  image,
  voice,
  video,
  music,
  news,
  transferCustomerService,
  isReply,
  replyLimitWarnings,
  ReplyError,
  MAX_NEWS_ARTICLES,
  MAX_TEXT_REPLY_BYTES,
  type Reply,
  type TextReply,
  type ImageReply,
  type VoiceReply,
  type VideoReply,
  type MusicReply,
  type Music,
  type NewsReply,
  type Article,
  type TransferCustomerServiceReply,
} from './wechat/replies.js';

// Late replies: customer-service messages (客服消息) and the shared access_token
export {
  toCustomMessage,
  sendCustomMessage,
  fetchStableAccessToken,
  WeChatApiError,
  WECHAT_API_BASE,
  type CustomMessage,
  type AccessToken,
  type ApiOptions,
  type WeChatApiErrorKind,
} from './wechat/customer-service.js';
export {
  SharedAccessToken,
  MemoryAccessTokenCache,
  RedisAccessTokenCache,
  AccessTokenCacheError,
  type AccessTokenCache,
  type SharedAccessTokenOptions,
} from './delivery/access-token.js';

// The push API: other services send messages and start push dialogs through the account (docs/push.md)
export {
  createPushApi,
  PushApiOptionsError,
  DEFAULT_PUSH_PATH,
  DEFAULT_PUSH_RATE_PER_MINUTE,
  DEFAULT_PUSH_RATE_KEY_PREFIX,
  type PushApiOptions,
  type PushApiHandler,
} from './http/push-api.js';
export { parseApiKeys, ApiKeysError, SERVICE_NAME_FORMAT, API_KEY_FORMAT, type ApiKey } from './push/api-keys.js';
export { PushService, pushIdFor, PUSH_ID_FORMAT, IDEMPOTENCY_KEY_FORMAT, ACCOUNT_ID_FORMAT, type PushServiceOptions, type AcceptResult } from './push/push-service.js';
export { parsePushRequest, MAX_PUSH_TEXT_BYTES, type PushRequest, type PushKind, type IfActive, type PushIssue } from './push/push-request.js';

// Delivery: the queue late replies and pushes go through (BullMQ on Redis, or in the process)
export {
  PUSH_STATUS_TTL_SECONDS,
  type DeliveryQueue,
  type Delivery,
  type DeliveryGuard,
  type OutboundMessage,
  type PushRef,
  type PushState,
  type PushStatus,
} from './delivery/delivery-queue.js';
export { BullmqDeliveryQueue, DELIVERY_QUEUE_NAME, type BullmqDeliveryQueueOptions } from './delivery/bullmq-queue.js';
export { InProcessDeliveryQueue, IN_PROCESS_QUEUE_WARNING, type InProcessDeliveryQueueOptions } from './delivery/in-process-queue.js';
export { DELIVERY_QUEUE_DEFAULTS, type DeliveryQueueOptions } from './delivery/queue-options.js';
export type { DeliveryEvent, DeliveryLogger } from './delivery/delivery-runner.js';
export { outboxOf } from './delivery/outbox.js';
export { WeChatMessageSender, type WeChatMessageSenderOptions, type MessageSender, type AccessTokenSource, type SendOutcome } from './delivery/sender.js';
export { sendTemplateMessage, type TemplateMessage } from './wechat/template-message.js';

// Testing dialogs: see the `wechat-dialog-server/testing` entry (src/testing/index.ts).

// Logging without secrets: the redact paths this server's own logger uses, for a host's logger too
export { createLogger, LOG_REDACT_PATHS, LOG_REDACT_CENSOR, type LogLevel } from './logging.js';

// Health and readiness: GET handlers to mount in a host app (`app.get('/readyz', readinessHandler({ store }))`)
export {
  healthHandler,
  readinessHandler,
  DEFAULT_READINESS_TIMEOUT_MS,
  type HealthRequestHandler,
  type ReadinessHandlerOptions,
} from './http/health.js';

// Metrics and turn logs: prom-client metrics fed by wechatDialog({ metrics }), served by metricsHandler
export { createMetrics, TURN_DURATION_BUCKETS_SECONDS, REPLAY_LENGTH_BUCKETS, type Metrics, type MetricsOptions } from './observability/metrics.js';
export { metricsHandler, serveClusterMetrics, shareWithPrimary, type MetricsHandlerOptions } from './observability/metrics-endpoint.js';
export { turnLog, combineObservers, TURN_LOG_MESSAGE } from './observability/turn-log.js';
export type { EngineObserver, TurnEvent } from './dialog/observer.js';
export type { HttpObserver, RefusalReason } from './http/wechat-handler.js';
