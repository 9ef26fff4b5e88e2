/**
 * `GET /metrics` in Prometheus's text format, optionally behind a bearer token. With several
 * server processes (`WEB_CONCURRENCY`), the worker that gets the scrape asks the primary, which
 * sums the metrics of every worker (prom-client's `AggregatorRegistry`), so one scrape sees the
 * whole server whichever worker answers it.
 *
 * @module
 */
import cluster from 'node:cluster';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import type { Metrics } from './metrics.js';

const REQUEST = 'wechat-dialog:metrics-request';
const RESPONSE = 'wechat-dialog:metrics-response';
/** How long a worker waits for the primary's sum, in **milliseconds** (prom-client gives workers 5 s). */
const AGGREGATE_TIMEOUT_MS = 6_000;

interface MetricsRequest {
  readonly type: typeof REQUEST;
  readonly id: string;
}
interface MetricsResponse {
  readonly type: typeof RESPONSE;
  readonly id: string;
  readonly text?: string;
  readonly contentType?: string;
  readonly error?: string;
}

function isMessage<T extends { type: string }>(value: unknown, type: T['type']): value is T {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === type;
}

/** Options of {@link metricsHandler}. */
export interface MetricsHandlerOptions {
  /** When set, a scrape must send `Authorization: Bearer <token>` (compared in constant time); else 401. */
  readonly token?: string;
}

/** `a === b` in time independent of where they differ (and of their lengths). */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The `/metrics` handler, typed with Node's request and response so a host app mounts it where it
 * wants (`app.get('/metrics', metricsHandler(metrics))`). In a cluster worker it answers the sum
 * over all workers (the primary must run {@link serveClusterMetrics}).
 */
export function metricsHandler(metrics: Metrics, options: MetricsHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const { token } = options;
  return (req, res) => {
    const answer = (status: number, contentType: string, body: string): void => {
      res.statusCode = status;
      res.setHeader('Content-Type', contentType);
      res.end(body);
    };
    if (token !== undefined) {
      const header = req.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
      if (!sameSecret(given, token)) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        answer(401, 'text/plain; charset=utf-8', 'unauthorized: send Authorization: Bearer <METRICS_TOKEN>');
        return;
      }
    }
    const scrape = cluster.isWorker && process.send !== undefined ? fromPrimary() : metrics.registry.metrics().then((text) => ({ text, contentType: metrics.registry.contentType }));
    scrape.then(
      ({ text, contentType }) => answer(200, contentType, text),
      (err: unknown) => answer(503, 'text/plain; charset=utf-8', `metrics unavailable: ${err instanceof Error ? err.message : String(err)}`),
    );
  };
}

/** Asks the primary for the sum over all workers. */
function fromPrimary(): Promise<{ text: string; contentType: string }> {
  return new Promise((resolve, reject) => {
    const id = randomUUID();
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error(`the primary did not answer within ${AGGREGATE_TIMEOUT_MS} ms`));
    }, AGGREGATE_TIMEOUT_MS);
    const onMessage = (message: unknown): void => {
      if (!isMessage<MetricsResponse>(message, RESPONSE) || message.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (message.text !== undefined) resolve({ text: message.text, contentType: message.contentType ?? 'text/plain; version=0.0.4; charset=utf-8' });
      else reject(new Error(message.error ?? 'no metrics'));
    };
    process.on('message', onMessage);
    process.send?.({ type: REQUEST, id } satisfies MetricsRequest);
  });
}

/**
 * In a worker: lets the primary's aggregation read `metrics` (instead of prom-client's global
 * registry). Call once per worker process.
 */
export function shareWithPrimary(metrics: Metrics): void {
  if (!cluster.isWorker) return;
  // prom-client answers the primary's requests only once an AggregatorRegistry exists in the worker.
  void new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
}

/** In the primary: answers the workers' requests for the metrics summed over every worker. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: unknown) => {
    if (!isMessage<MetricsRequest>(message, REQUEST)) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: RESPONSE, id: message.id, text, contentType: aggregator.contentType } satisfies MetricsResponse),
      (err: unknown) => worker.send({ type: RESPONSE, id: message.id, error: err instanceof Error ? err.message : String(err) } satisfies MetricsResponse),
    );
  });
}
