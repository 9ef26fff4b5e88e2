/**
 * What a push does, without HTTP: validates the body, gives the push its id, queues its message or
 * starts its dialog, and reads a push's status for the service that made it. `src/http/push-api.ts`
 * is the HTTP face of it.
 *
 * Idempotency: with an `Idempotency-Key`, the push id is derived from (service, key), so a retried
 * call gets the first call's id, and nothing is sent twice: the delivery queue sends an id once
 * (`enqueue` answers `created: false`), and a dialog push finds the push's status (kept 24 hours,
 * {@link PUSH_STATUS_TTL_SECONDS}) or the engine's memory of handled pushes (`repeated`).
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DeliveryQueue, PushState, PushStatus } from '../delivery/delivery-queue.js';
import { validatePushInput } from '../dialog/dialog.js';
import { maskOpenid, type DialogEngine, type EngineLogger } from '../dialog/engine.js';
import type { Router } from '../dialog/router.js';
import { parsePushRequest, type IfActive, type PushIssue, type PushKind, type PushRequest } from './push-request.js';

export { PUSH_STATUS_TTL_SECONDS } from '../delivery/delivery-queue.js';

/** A push id: `p_` and 22 to 64 base64url characters (random, or derived from an `Idempotency-Key`). */
export const PUSH_ID_FORMAT = /^p_[A-Za-z0-9_-]{22,64}$/;

/** An `Idempotency-Key` header: 1 to 255 printable ASCII characters (Stripe's convention). */
export const IDEMPOTENCY_KEY_FORMAT = /^[\x20-\x7e]{1,255}$/;

/** The Official Account's original id (原始ID): `gh_` and more letters, digits, `_` or `-` (`gh_0123456789ab`). */
export const ACCOUNT_ID_FORMAT = /^gh_[A-Za-z0-9_-]{1,61}$/;

/**
 * The id of a push: `p_` + 24 random base64url characters (144 bits), or, with an
 * `idempotencyKey`, `p_` + the first 32 base64url characters (192 bits) of SHA-256(service NUL key),
 * the same for every call of that service with that key, and different for another service.
 */
export function pushIdFor(service: string, idempotencyKey?: string): string {
  if (idempotencyKey === undefined) return `p_${randomBytes(18).toString('base64url')}`;
  return `p_${createHash('sha256').update(`${service}\u0000${idempotencyKey}`, 'utf8').digest('base64url').slice(0, 32)}`;
}

/** Options of {@link PushService}. */
export interface PushServiceOptions {
  /** Where pushed messages go, and where push statuses are kept (24 hours). */
  readonly queue: DeliveryQueue;
  /**
   * The engine that starts push dialogs; it must have been built with this `queue` as its `outbox`
   * (through the queue's outbox adapter), so a dialog's first reply is queued like any push.
   * @default none: dialog pushes are answered `dialogs-off`
   */
  readonly engine?: DialogEngine;
  /** The router whose `pushed` dialogs a push may start. @default none: dialog pushes are answered `dialogs-off` */
  readonly router?: Router;
  /**
   * The Official Account's original id (原始ID, `gh_…`; the `ToUserName` of its users' messages,
   * `WECHAT_ACCOUNT`): the key of a user's dialog state is (account, openid), so a push dialog
   * needs it to land where the user's next message looks.
   * @default none: dialog pushes are answered `dialogs-off`
   */
  readonly account?: string;
  /** One `info` line per accepted push (service, push id, kind, masked openid); errors. @default none */
  readonly logger?: EngineLogger;
}

/** What {@link PushService.accept} did with a push. */
export type AcceptResult =
  /**
   * Accepted: queued (`status` `queued`), or, for a repeated call (`repeated`), the first call's
   * push, whatever its status is now. `dialog`: the dialog a dialog push started.
   */
  | { readonly outcome: 'accepted'; readonly id: string; readonly kind: PushKind; readonly status: PushState; readonly repeated: boolean; readonly dialog?: string }
  /** The body (or the `Idempotency-Key`, or a dialog's `input`) is not valid: every issue, each naming its field. */
  | { readonly outcome: 'invalid'; readonly issues: readonly PushIssue[] }
  /** A dialog push, and the user is in another dialog (`ifActive` `refuse`): nothing was done. */
  | { readonly outcome: 'active'; readonly id: string; readonly dialog: string }
  /** A dialog push, but this service has no account, engine or router for them: `reason` says what to set. */
  | { readonly outcome: 'dialogs-off'; readonly reason: string }
  /**
   * Nothing was sent: the delivery queue or the dialog store failed (`queue`, `store`: retry later),
   * or the dialog threw on its first message (`dialog`: a bug in the dialog; the log has it).
   */
  | { readonly outcome: 'failed'; readonly reason: 'queue' | 'store' | 'dialog' };

/** See the module doc. */
export class PushService {
  private readonly queue: DeliveryQueue;
  private readonly engine: DialogEngine | undefined;
  private readonly router: Router | undefined;
  private readonly account: string | undefined;
  private readonly logger: EngineLogger | undefined;

  /** @throws {RangeError} for an `account` that is not an original id (`gh_…`). */
  constructor(options: PushServiceOptions) {
    if (options.account !== undefined && !ACCOUNT_ID_FORMAT.test(options.account)) {
      throw new RangeError("PushService: account must be the Official Account's original id (原始ID), e.g. gh_0123456789ab");
    }
    this.queue = options.queue;
    this.engine = options.engine;
    this.router = options.router;
    this.account = options.account;
    this.logger = options.logger;
  }

  /**
   * Accepts a push from `service`.
   * @param service - the calling service's name (authenticated by its key).
   * @param body - the JSON body, parsed (see `push-request.ts`).
   * @param idempotencyKey - the `Idempotency-Key` header: a retried call with the same key gets the
   *   first call's id and sends nothing again (for 24 hours). The id depends on (service, key) only:
   *   a second call with another body gets the first push, not a new one.
   * @returns what happened; never throws for a failing queue or store (`failed`).
   */
  async accept(service: string, body: unknown, idempotencyKey?: string): Promise<AcceptResult> {
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY_FORMAT.test(idempotencyKey)) {
      return { outcome: 'invalid', issues: [{ path: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters, e.g. a UUID' }] };
    }
    const parsed = parsePushRequest(body);
    if (!parsed.ok) return { outcome: 'invalid', issues: parsed.issues };
    const id = pushIdFor(service, idempotencyKey);
    const request = parsed.request;
    if (request.kind === 'dialog') return this.startDialog(service, id, request, idempotencyKey !== undefined);
    try {
      // Always enqueued, never answered from a status alone: the queue dedupes by id, and a first
      // call whose enqueue failed (503) must be queued by its retry.
      const { created } = await this.queue.enqueue({ id, openid: request.openid, message: request.message, push: { id, service } });
      if (created) return this.accepted(service, id, request, 'queued', false);
      return this.accepted(service, id, request, (await this.known(service, id))?.status ?? 'queued', true);
    } catch (err) {
      this.logger?.error({ service, pushId: id, kind: request.kind, err }, 'a push could not be queued: the delivery queue failed; nothing was sent');
      return { outcome: 'failed', reason: 'queue' };
    }
  }

  /**
   * The status of push `pushId`, if `service` made it.
   * @returns `undefined` for an id that is not a push id, unknown, older than 24 hours, or made by
   *   another service (a service sees only its own pushes).
   * @throws what the queue's `pushStatus` throws (its store is unavailable).
   */
  async status(service: string, pushId: string): Promise<PushStatus | undefined> {
    if (!PUSH_ID_FORMAT.test(pushId)) return undefined;
    return this.known(service, pushId);
  }

  private async known(service: string, id: string): Promise<PushStatus | undefined> {
    const status = await this.queue.pushStatus(id);
    return status?.service === service ? status : undefined;
  }

  private accepted(service: string, id: string, request: PushRequest, status: PushState, repeated: boolean, dialog?: string): AcceptResult {
    this.logger?.info(
      { service, pushId: id, kind: request.kind, openid: maskOpenid(request.openid), repeated, ...(dialog === undefined ? {} : { dialog }) },
      repeated ? 'push repeated (same Idempotency-Key): nothing sent again' : 'push accepted',
    );
    return dialog === undefined ? { outcome: 'accepted', id, kind: request.kind, status, repeated } : { outcome: 'accepted', id, kind: request.kind, status, repeated, dialog };
  }

  private async startDialog(
    service: string,
    id: string,
    request: Extract<PushRequest, { kind: 'dialog' }>,
    idempotent: boolean,
  ): Promise<AcceptResult> {
    const { engine, router, account } = this;
    if (account === undefined) {
      return { outcome: 'dialogs-off', reason: "dialog pushes need the account's original id: set WECHAT_ACCOUNT (gh_…, the ToUserName of its users' messages)" };
    }
    if (engine === undefined || router === undefined) return { outcome: 'dialogs-off', reason: 'dialog pushes need a dialog engine and router on this server' };
    const dialog = router.pushDialog(request.dialog);
    if (dialog === undefined) {
      return { outcome: 'invalid', issues: [{ path: 'dialog', message: `no push dialog is named ${JSON.stringify(request.dialog)}: list it in the router's pushed dialogs` }] };
    }
    const log = { service, pushId: id, kind: 'dialog', openid: maskOpenid(request.openid), dialog: dialog.name };
    let input: Awaited<ReturnType<typeof validatePushInput>>;
    try {
      input = await validatePushInput(dialog, request.input);
    } catch (err) {
      this.logger?.error({ ...log, err }, "the dialog's input schema threw: a bug in the schema; nothing was sent");
      return { outcome: 'failed', reason: 'dialog' };
    }
    if ('issues' in input) {
      return { outcome: 'invalid', issues: input.issues.map((issue) => ({ path: issue.path === '' ? 'input' : `input.${issue.path}`, message: issue.message })) };
    }
    try {
      if (idempotent) {
        const known = await this.known(service, id);
        if (known !== undefined) return this.accepted(service, id, request, known.status, true, dialog.name);
      }
      const ifActive: IfActive = request.ifActive;
      const started = await engine.startPushed({ account, openid: request.openid, dialog, input: input.value, push: { id, service }, ifActive });
      switch (started.outcome) {
        case 'started':
        case 'ended':
          if (started.delivery !== undefined) return this.accepted(service, id, request, 'queued', false, dialog.name);
          // A first step that sends nothing has nothing left to send: the push is done, and says so.
          await this.queue.recordSent({ id, service });
          return this.accepted(service, id, request, 'sent', false, dialog.name);
        case 'repeated':
          return this.accepted(service, id, request, (await this.known(service, id))?.status ?? 'queued', true, dialog.name);
        case 'active':
          this.logger?.info({ ...log, active: started.dialog }, 'dialog push refused: the user is in another dialog (ifActive refuse)');
          return { outcome: 'active', id, dialog: started.dialog };
        case 'failed':
          return { outcome: 'failed', reason: started.reason };
      }
    } catch (err) {
      this.logger?.error({ ...log, err }, 'a dialog push failed; nothing was sent');
      return { outcome: 'failed', reason: 'queue' };
    }
  }
}
