/**
 * The server process: config from the environment (and `.env` if present), logger, store, engine,
 * app, listen; SIGINT/SIGTERM close the server and the store.
 *
 * Start with `npm start`. A missing or invalid variable stops startup with one line naming it.
 *
 * @module
 */
import 'dotenv/config';
import { pino } from 'pino';
import { router } from '../dialogs/router.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DialogEngine } from './dialog/engine.js';
import { MemoryStore } from './dialog/store/memory-store.js';
import { RedisStore, createRedisClient } from './dialog/store/redis-store.js';
import type { DialogStore } from './dialog/store/store.js';
import { createApp } from './http/app.js';
import { text } from './wechat/replies.js';

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
const logger = pino({ level: config.logLevel, redact: ['token', 'WECHAT_TOKEN'] });

let store: DialogStore;
if (config.redisUrl === undefined) {
  store = new MemoryStore();
  logger.info('REDIS_URL is not set: dialog state is kept in this process only (development mode)');
} else {
  const redis = createRedisClient(config.redisUrl, {
    onError: (err) => logger.warn({ err: err.message }, 'Redis connection error'),
  });
  store = new RedisStore({ redis, keyPrefix: config.redisKeyPrefix });
  logger.info({ keyPrefix: config.redisKeyPrefix }, `dialog state is kept in Redis at ${redactUrl(config.redisUrl)}`);
}

const engine = new DialogEngine({
  router,
  store,
  ttlSeconds: config.dialogTtlSeconds,
  apology: text(config.apologyText),
  logger,
});
const app = createApp({ token: config.token, path: config.path, engine, logger });

const server = app.listen(config.port, config.host, () => {
  logger.info(
    { host: config.host, port: config.port, path: config.path, dialogTtlSeconds: config.dialogTtlSeconds },
    `listening on http://${config.host}:${config.port}${config.path}`,
  );
});
server.on('error', (err) => {
  logger.fatal({ err: err.message }, `cannot listen on ${config.host}:${config.port}`);
  process.exit(1);
});

let closing = false;
function shutdown(signal: string): void {
  if (closing) return;
  closing = true;
  logger.info({ signal }, 'shutting down: finishing requests in flight');
  server.close(() => {
    store.close().finally(() => process.exit(0));
  });
  setTimeout(() => process.exit(0), 10_000).unref();
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));

/** The URL without its password, for logs. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
