/**
 * Prometheus metrics (prom-client) behind the engine's and the HTTP handler's observer hooks. No
 * label carries an openid or message content: labels are outcomes, reasons and dialog names.
 * Every metric and what it means is listed in docs/operations.md.
 *
 * @module
 */
import type { DeliveryEvent } from '../delivery/delivery-runner.js';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { EngineObserver } from '../dialog/observer.js';
import type { HttpObserver } from '../http/wechat-handler.js';

/** Turn duration buckets, in **seconds**: fine below WeChat's 5 s, and on to 10 s for turns answered late. */
export const TURN_DURATION_BUCKETS_SECONDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 4.5, 5, 6, 8, 10];

/** Replay length buckets, in messages (a dialog holds at most `DIALOG_MAX_MESSAGES`, 100 by default). */
export const REPLAY_LENGTH_BUCKETS: readonly number[] = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

/** The metrics of one process, and the hooks that feed them. */
export interface Metrics {
  /** The registry holding every metric of this process (and Node's default process metrics). */
  readonly registry: Registry;
  /** Give to the engine (`wechatDialog` does): turns, store errors, conflicts, repeats. */
  readonly engine: EngineObserver;
  /** Give to the HTTP handler (`wechatDialog` does): refused requests, late replies. */
  readonly http: HttpObserver;
  /** Counts one access_token fetch from WeChat's API. */
  accessTokenFetched(result: 'ok' | 'failed'): void;
  /** Give to the delivery queue (`wechatDialog` does): each delivery sent, failed, retried or dropped. */
  delivery(event: DeliveryEvent): void;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Also collect Node's default process metrics (CPU, memory, event loop lag, GC). @default true */
  readonly defaultMetrics?: boolean;
}

/**
 * Builds the metrics in a registry of their own (not prom-client's global one, so two servers in
 * one process, or a host's own metrics, do not collide). Names start with `wechat_dialog_`.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const turns = new Counter({
    name: 'wechat_dialog_turns_total',
    help: 'Turns by outcome (started, continued, ended, repeated, no-reply, failed) and dialog name ("none" when no dialog ran).',
    labelNames: ['outcome', 'dialog'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'wechat_dialog_turn_duration_seconds',
    help: "Time from a turn's start to its answer, in seconds; WeChat waits 5 s for a passive reply.",
    labelNames: ['outcome'] as const,
    buckets: [...TURN_DURATION_BUCKETS_SECONDS],
    registers,
  });
  const replayLength = new Histogram({
    name: 'wechat_dialog_replay_messages',
    help: 'Messages a dialog was replayed over in one turn (0 when no dialog ran).',
    buckets: [...REPLAY_LENGTH_BUCKETS],
    registers,
  });
  const repeated = new Counter({
    name: 'wechat_dialog_repeated_total',
    help: 'WeChat retries and replayed requests answered with their first reply, by where it came from: the state, or the memory of handled messages.',
    labelNames: ['from'] as const,
    registers,
  });
  const conflicts = new Counter({
    name: 'wechat_dialog_commit_conflicts_total',
    help: 'Commits refused because another process had moved the state on (the turn was planned again).',
    registers,
  });
  const storeErrors = new Counter({
    name: 'wechat_dialog_store_errors_total',
    help: 'Turns that failed because the store (Redis) did not answer or refused; the user got the apology.',
    registers,
  });
  const refused = new Counter({
    name: 'wechat_dialog_requests_refused_total',
    help: 'Requests refused, by reason: signature, age (freshness window), body, size, decryption, mode, message.',
    labelNames: ['reason'] as const,
    registers,
  });
  const lateReplies = new Counter({
    name: 'wechat_dialog_late_replies_total',
    help: 'Replies of turns that missed the deadline, by result: queued (handed to the delivery queue, see wechat_dialog_deliveries_total), sent, failed, not-sendable.',
    labelNames: ['result'] as const,
    registers,
  });
  const deliveries = new Counter({
    name: 'wechat_dialog_deliveries_total',
    help: 'Messages the server sent on its own (late replies, pushes) through the delivery queue, by kind (reply, template) and outcome: sent, failed (given up), retried (a transient error), dropped (its turn never committed).',
    labelNames: ['kind', 'outcome'] as const,
    registers,
  });
  const tokenFetches = new Counter({
    name: 'wechat_dialog_access_token_fetches_total',
    help: 'access_token fetches from WeChat (stable_token), by result: ok, failed.',
    labelNames: ['result'] as const,
    registers,
  });
  return {
    registry,
    engine: {
      turnEnded(event) {
        turns.inc({ outcome: event.outcome, dialog: event.dialog ?? 'none' });
        duration.observe({ outcome: event.outcome }, event.durationMs / 1000);
        replayLength.observe(event.replayLength);
        if (event.conflicts > 0) conflicts.inc(event.conflicts);
        if (event.outcome === 'repeated' && event.repeatedFrom !== undefined) repeated.inc({ from: event.repeatedFrom });
      },
      storeError() {
        storeErrors.inc();
      },
    },
    http: {
      refused(reason) {
        refused.inc({ reason });
      },
      lateReply(result) {
        lateReplies.inc({ result });
      },
    },
    delivery(event) {
      deliveries.inc({ kind: event.kind, outcome: event.outcome });
    },
    accessTokenFetched(result) {
      tokenFetches.inc({ result });
    },
  };
}
