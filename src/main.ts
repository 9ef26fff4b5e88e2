/**
 * The server process: config from the environment (and `.env` if present), then one server, or,
 * with `WEB_CONCURRENCY` above 1, a primary that runs that many server processes on one port.
 * SIGINT/SIGTERM finish requests in flight and close the store.
 *
 * Start with `npm start`. A missing or invalid variable stops startup with one line naming it.
 *
 * @module
 */
import 'dotenv/config';
import cluster from 'node:cluster';
import { pino } from 'pino';
import { runPrimary } from './cluster.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startServer } from './server.js';

function readConfig(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const config = readConfig();
const logger = pino({ level: config.logLevel });

if (config.webConcurrency > 1 && cluster.isPrimary) {
  runPrimary(config.webConcurrency, logger);
} else {
  try {
    const server = await startServer(config, logger);
    let closing = false;
    const shutdown = (signal: NodeJS.Signals): void => {
      if (closing) return;
      closing = true;
      logger.info({ signal }, 'shutting down: finishing requests in flight');
      void server.close().finally(() => process.exit(0));
      setTimeout(() => process.exit(0), 10_000).unref();
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, `cannot listen on ${config.host}:${config.port}`);
    process.exit(1);
  }
}
