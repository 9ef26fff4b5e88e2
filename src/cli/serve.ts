/**
 * `wechat-dialog serve --router <module>`: the standalone server. Settings come from the
 * environment (and `.env` in the working directory, if present); with `WEB_CONCURRENCY` above 1 a
 * primary runs that many server processes on one port. SIGINT/SIGTERM finish requests in flight
 * and close the store.
 *
 * Startup fails loudly: a bad setting, a router module that cannot be loaded or exports no router,
 * and a port that cannot be bound each print one line on stderr and exit with status 1.
 *
 * @module
 */
import cluster from 'node:cluster';
import { config as loadDotenv } from 'dotenv';
import { runPrimary } from '../cluster.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { createLogger } from '../logging.js';
import { ListenError, startServer } from '../server.js';
import { loadRouter, RouterModuleError } from './load-router.js';

/** How long a shutdown may take before the process exits anyway, in **milliseconds**. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/** Prints `<kind> error: <message>` on stderr and exits 1. */
function fail(kind: string, message: string): never {
  process.stderr.write(`${kind} error: ${message}\n`);
  process.exit(1);
}

/**
 * The settings from the environment, after `.env` (or the file `DOTENV_CONFIG_PATH` names).
 * Exits with one line naming the variable when a setting is missing or invalid.
 */
export function readConfig(): Config {
  loadDotenv({ quiet: true, path: process.env.DOTENV_CONFIG_PATH ?? '.env' });
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail('config', err.message);
    throw err;
  }
}

/** Runs the server (or, with `WEB_CONCURRENCY` above 1 in the primary, the workers) with the router in `routerModule`. */
export async function serve(routerModule: string): Promise<void> {
  const config = readConfig();
  let router;
  try {
    // The primary loads it too, so a bad module stops startup once instead of killing every worker.
    router = await loadRouter(routerModule);
  } catch (err) {
    if (err instanceof RouterModuleError) fail('router', err.message);
    throw err;
  }
  const logger = createLogger(config.logLevel);
  if (config.webConcurrency > 1 && cluster.isPrimary) {
    runPrimary(config.webConcurrency, logger);
    return;
  }
  let server;
  try {
    server = await startServer(config, logger, { router });
  } catch (err) {
    if (err instanceof ListenError) fail('listen', err.message);
    throw err;
  }
  let closing = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    void server.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), SHUTDOWN_TIMEOUT_MS).unref();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}
