/**
 * Inbound messages and events as WeChat pushes them to the server URL (服务器地址).
 *
 * Sources: 接收普通消息 (`offiaccount/Message_Management/Receiving_standard_messages.html`),
 * 接收事件推送 (`offiaccount/Message_Management/Receiving_event_pushes.html`),
 * 自定义菜单事件推送 (`offiaccount/Custom_Menus/Custom_Menu_Push_Events.html`).
 *
 * Every value is kept as the string WeChat sent, except `CreateTime` (the protocol defines it as an
 * integer number of seconds). `MsgId` is a 64-bit integer that routinely exceeds 2^53, so it is a
 * string everywhere and never passes through a JS number.
 *
 * @module
 */

/** The `MsgType` values this version types in full or in part. */
export type KnownMsgType = 'text' | 'image' | 'voice' | 'video' | 'shortvideo' | 'location' | 'link' | 'event';

/** Fields every push carries (接收普通消息, common fields). */
export interface MessageBase {
  /** The Official Account's original id (`gh_…`): the account the message was sent to. */
  readonly ToUserName: string;
  /** The sender's `openid`. */
  readonly FromUserName: string;
  /** When WeChat created the message, Unix time in **seconds**. */
  readonly CreateTime: number;
}

/** Fields of ordinary (non-event) messages that identify them: `MsgId` is a 64-bit integer kept as a decimal string. */
export interface OrdinaryMessageBase extends MessageBase {
  /** 64-bit message id as a decimal string (`/^\d{1,20}$/`); never a JS number. */
  readonly MsgId: string;
}

/** `MsgType=text`. */
export interface TextMessage extends OrdinaryMessageBase {
  readonly MsgType: 'text';
  /** The text the user sent, verbatim (not trimmed). */
  readonly Content: string;
  /** Present when the message was sent from an article (图文消息): the article's data id. */
  readonly MsgDataId?: string;
  /** Present with `MsgDataId`: 1-based index of the article. */
  readonly Idx?: string;
}

/** `MsgType=image`. */
export interface ImageMessage extends OrdinaryMessageBase {
  readonly MsgType: 'image';
  /** A WeChat-generated URL of the picture. */
  readonly PicUrl: string;
  readonly MediaId: string;
  /** Present when the picture was sent from an article (图文消息): the article's data id. */
  readonly MsgDataId?: string;
  /** Present with `MsgDataId`: 1-based index of the article. */
  readonly Idx?: string;
}

/** `MsgType=voice`. `Recognition` is present only when speech recognition (语音识别) is on, and may be empty. */
export interface VoiceMessage extends OrdinaryMessageBase {
  readonly MsgType: 'voice';
  readonly MediaId: string;
  /** Audio format, e.g. `amr`, `speex`. */
  readonly Format: string;
  readonly Recognition?: string;
}

/** `MsgType=video`. */
export interface VideoMessage extends OrdinaryMessageBase {
  readonly MsgType: 'video';
  readonly MediaId: string;
  readonly ThumbMediaId: string;
}

/** `MsgType=shortvideo`. */
export interface ShortVideoMessage extends OrdinaryMessageBase {
  readonly MsgType: 'shortvideo';
  readonly MediaId: string;
  readonly ThumbMediaId: string;
}

/** `MsgType=location`. Coordinates stay decimal strings, as sent. */
export interface LocationMessage extends OrdinaryMessageBase {
  readonly MsgType: 'location';
  /** Latitude, decimal string. */
  readonly Location_X: string;
  /** Longitude, decimal string. */
  readonly Location_Y: string;
  /** Map zoom level, integer string. */
  readonly Scale: string;
  /** Address text. */
  readonly Label: string;
}

/** `MsgType=link`. */
export interface LinkMessage extends OrdinaryMessageBase {
  readonly MsgType: 'link';
  readonly Title: string;
  readonly Description: string;
  readonly Url: string;
}

/** Fields common to every event push (`MsgType=event`). */
export interface EventBase extends MessageBase {
  readonly MsgType: 'event';
}

/** `Event=subscribe`: the user followed the account; with a parametric QR code, `EventKey` is `qrscene_<scene>` and `Ticket` is set. */
export interface SubscribeEvent extends EventBase {
  readonly Event: 'subscribe';
  readonly EventKey?: string;
  readonly Ticket?: string;
}

/** `Event=unsubscribe`: the user unfollowed. No reply can reach them. */
export interface UnsubscribeEvent extends EventBase {
  readonly Event: 'unsubscribe';
}

/** `Event=SCAN`: a follower scanned a parametric QR code; `EventKey` is the scene value (no `qrscene_` prefix). */
export interface ScanEvent extends EventBase {
  readonly Event: 'SCAN';
  readonly EventKey: string;
  readonly Ticket?: string;
}

/** `Event=LOCATION`: periodic location report (every 5 s while the user is in the chat, if enabled). */
export interface LocationEvent extends EventBase {
  readonly Event: 'LOCATION';
  readonly Latitude: string;
  readonly Longitude: string;
  readonly Precision: string;
}

/** `Event=CLICK`: a `click` menu button; `EventKey` is the button's key. */
export interface ClickEvent extends EventBase {
  readonly Event: 'CLICK';
  readonly EventKey: string;
}

/** `Event=VIEW`: a `view` menu button opened a URL (`EventKey`). */
export interface ViewEvent extends EventBase {
  readonly Event: 'VIEW';
  readonly EventKey: string;
  readonly MenuId?: string;
}

/** `ScanCodeInfo` of a scancode menu event: what the user scanned. */
export interface ScanCodeInfo {
  /** What was scanned, e.g. `qrcode`, `barcode`. */
  readonly ScanType: string;
  /** The decoded content (a URL, a number, any text). */
  readonly ScanResult: string;
}

/**
 * `Event=scancode_push` (the scan result is also shown to the user) or `Event=scancode_waitmsg`
 * (WeChat shows "receiving" and waits for the reply): a `scancode_*` menu button (自定义菜单事件推送).
 */
export interface ScanCodeEvent extends EventBase {
  readonly Event: 'scancode_push' | 'scancode_waitmsg';
  /** The menu button's `key`. */
  readonly EventKey: string;
  readonly ScanCodeInfo: ScanCodeInfo;
}

/** One picture of `SendPicsInfo.PicList`. */
export interface SentPicture {
  /** MD5 of the picture, hex; the pictures themselves arrive afterwards as `image` messages. */
  readonly PicMd5Sum: string;
}

/** `SendPicsInfo` of a picture menu event. */
export interface SendPicsInfo {
  /** Number of pictures, a decimal string as sent. */
  readonly Count: string;
  /** One entry per `<item>` (empty when WeChat sent none). */
  readonly PicList: readonly SentPicture[];
}

/**
 * `Event=pic_sysphoto` (camera), `pic_photo_or_album` (camera or album) or `pic_weixin` (WeChat
 * album): a picture menu button. The pictures then arrive as separate `image` messages.
 */
export interface PicEvent extends EventBase {
  readonly Event: 'pic_sysphoto' | 'pic_photo_or_album' | 'pic_weixin';
  /** The menu button's `key`. */
  readonly EventKey: string;
  readonly SendPicsInfo: SendPicsInfo;
}

/** `SendLocationInfo` of a `location_select` event. Coordinates stay decimal strings, as sent. */
export interface SendLocationInfo {
  /** Latitude, decimal string. */
  readonly Location_X: string;
  /** Longitude, decimal string. */
  readonly Location_Y: string;
  /** Map zoom level, integer string. */
  readonly Scale: string;
  /** Address text. */
  readonly Label: string;
  /** Name of the point of interest; often empty, absent when WeChat leaves it out. */
  readonly Poiname?: string;
}

/** `Event=location_select`: a location-picker menu button; the user sent a location. */
export interface LocationSelectEvent extends EventBase {
  readonly Event: 'location_select';
  /** The menu button's `key`. */
  readonly EventKey: string;
  readonly SendLocationInfo: SendLocationInfo;
}

/** `Event=view_miniprogram`: a menu button opened a Mini Program page; `EventKey` is the page path. */
export interface ViewMiniprogramEvent extends EventBase {
  readonly Event: 'view_miniprogram';
  /** The Mini Program page path, e.g. `pages/index/index`. */
  readonly EventKey: string;
  /** The id of the menu (personalised menus), as a string. */
  readonly MenuId?: string;
}

/**
 * `Event=TEMPLATESENDJOBFINISH`: the result of sending a template message (模板消息) to the user in
 * `FromUserName`. Not a user action. Note `MsgID` with a capital D: the job's id, not a push id.
 */
export interface TemplateSendJobFinishEvent extends EventBase {
  readonly Event: 'TEMPLATESENDJOBFINISH';
  /** The template send job's 64-bit id, a decimal string (`/^\d{1,20}$/`). */
  readonly MsgID: string;
  /** `success`, `failed:user block`, `failed: system failed` (with the space), `failed:freq limit`, … */
  readonly Status: string;
}

/** `CopyrightCheckResult.ResultList` item of a mass send: the originality check of one article. */
export interface CopyrightCheckItem {
  readonly ArticleIdx?: string;
  readonly UserDeclareState?: string;
  readonly AuditState?: string;
  readonly OriginalArticleUrl?: string;
  readonly OriginalArticleType?: string;
  readonly CanReprint?: string;
  readonly NeedReplaceContent?: string;
  readonly NeedShowReprintSource?: string;
}

/** `CopyrightCheckResult` of a mass send (群发 originality check). */
export interface CopyrightCheckResult {
  readonly Count?: string;
  /** One entry per `<item>`; empty when the list is empty. */
  readonly ResultList: readonly CopyrightCheckItem[];
  /** `1` not checked / passed, `2` rejected for copyright, as sent. */
  readonly CheckState?: string;
}

/** `ArticleUrlResult.ResultList` item: the URL of one sent article. */
export interface ArticleUrlItem {
  readonly ArticleIdx?: string;
  readonly ArticleUrl?: string;
}

/** `ArticleUrlResult` of a mass send. */
export interface ArticleUrlResult {
  readonly Count?: string;
  readonly ResultList: readonly ArticleUrlItem[];
}

/**
 * `Event=MASSSENDJOBFINISH`: the result of a broadcast (群发). Not a user action. Counts stay
 * decimal strings; they are optional because a failed job may leave them out.
 */
export interface MassSendJobFinishEvent extends EventBase {
  readonly Event: 'MASSSENDJOBFINISH';
  /** The broadcast's id (capital D), a decimal string. */
  readonly MsgID: string;
  /** `send success`, `send fail`, or `err(<code>)`. */
  readonly Status: string;
  readonly TotalCount?: string;
  readonly FilterCount?: string;
  readonly SentCount?: string;
  readonly ErrorCount?: string;
  readonly CopyrightCheckResult?: CopyrightCheckResult;
  readonly ArticleUrlResult?: ArticleUrlResult;
}

/**
 * An event this version does not know (events WeChat adds later). `Event` is `'unknown'` so that
 * `switch (m.Event)` narrows the typed events; the value WeChat sent is in `RawEvent`, every
 * top-level string field in `Fields`.
 */
export interface UnknownEvent extends EventBase {
  readonly Event: 'unknown';
  /** The `Event` value as WeChat sent it. */
  readonly RawEvent: string;
  readonly EventKey?: string;
  /** Every top-level element whose value is a string, by element name. */
  readonly Fields: Readonly<Record<string, string>>;
}

/** Every event, discriminated on `Event`. */
export type EventMessage =
  | SubscribeEvent
  | UnsubscribeEvent
  | ScanEvent
  | LocationEvent
  | ClickEvent
  | ViewEvent
  | ScanCodeEvent
  | PicEvent
  | LocationSelectEvent
  | ViewMiniprogramEvent
  | TemplateSendJobFinishEvent
  | MassSendJobFinishEvent
  | UnknownEvent;

/** Every `Event` value this version types, in the documented casing. */
export type KnownEvent = Exclude<EventMessage['Event'], 'unknown'>;

/**
 * The event of type `E`: `EventOf<'CLICK'>` is {@link ClickEvent}, `EventOf<'scancode_push'>` is
 * {@link ScanCodeEvent} with `Event: 'scancode_push'`.
 */
export type EventOf<E extends KnownEvent> = EventMessage extends infer U
  ? U extends { readonly Event: infer V }
    ? E extends V
      ? [V] extends [E]
        ? U
        : U & { readonly Event: E }
      : never
    : never
  : never;

/**
 * A message whose `MsgType` this version does not know (e.g. `file`, `miniprogrampage`). It never
 * makes the request fail: `MsgType` is `'unknown'`, the value WeChat sent is in `RawMsgType`.
 */
export interface UnknownMessage extends MessageBase {
  readonly MsgType: 'unknown';
  /** The `MsgType` value as WeChat sent it. */
  readonly RawMsgType: string;
  /** `MsgId` when the push had one. */
  readonly MsgId?: string;
  /** Every top-level element whose value is a string, by element name. */
  readonly Fields: Readonly<Record<string, string>>;
}

/** Every inbound push, discriminated on `MsgType` (and on `Event` for events). */
export type InboundMessage =
  | TextMessage
  | ImageMessage
  | VoiceMessage
  | VideoMessage
  | ShortVideoMessage
  | LocationMessage
  | LinkMessage
  | EventMessage
  | UnknownMessage;
