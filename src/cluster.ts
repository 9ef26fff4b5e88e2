/**
 * Several server processes on one port (`WEB_CONCURRENCY`), with Node's cluster module: the
 * primary forks the workers, replaces one that dies, and stops them all on SIGINT/SIGTERM. Every
 * worker is a full server; they share dialog state through Redis.
 *
 * @module
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { serveClusterMetrics } from './observability/metrics-endpoint.js';

/** Shortest time between two replacements of dead workers, in **milliseconds** (no fork storm). */
const RESPAWN_DELAY_MS = 1000;
/** How long the primary waits for workers to finish their requests on shutdown, in **milliseconds**. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * Runs in the primary process: forks `workers` workers (each runs the `serve` command again and
 * starts a server), keeps that many alive (a worker that dies before it ever listened stops
 * everything with exit status 1: a startup failure would only repeat), and forwards shutdown. Resolves never; exits the process on
 * SIGINT/SIGTERM once the workers are gone.
 */
export function runPrimary(workers: number, logger: Logger): void {
  let stopping = false;
  let lastRespawn = 0;
  const fork = (): Worker => cluster.fork();

  const listened = new Set<number>();
  cluster.on('listening', (worker) => listened.add(worker.id));
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    if (!listened.has(worker.id)) {
      // It never served: a startup failure (its own error line says why), which a new worker would repeat.
      logger.fatal({ worker: worker.process.pid, code, signal }, 'a worker exited before it could listen: stopping');
      stopping = true;
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      process.exitCode = 1;
      setTimeout(() => process.exit(1), 200).unref();
      return;
    }
    listened.delete(worker.id);
    logger.error({ pid: worker.process.pid, code, signal }, 'a worker died; starting a new one');
    const wait = Math.max(0, lastRespawn + RESPAWN_DELAY_MS - Date.now());
    lastRespawn = Date.now() + wait;
    setTimeout(fork, wait);
  });

  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: stopping the workers');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    const check = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    }, 50);
    setTimeout(() => {
      clearInterval(check);
      process.exit(0);
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  // A scrape of /metrics lands on one worker, which asks here for the sum over all of them.
  serveClusterMetrics();
  logger.info({ workers }, `starting ${workers} server processes (WEB_CONCURRENCY)`);
  for (let i = 0; i < workers; i += 1) fork();
}
