/**
 * Runs once before all tests. Builds `dist/` (what `npm start`, the package and its `bin` run), so
 * the tests of the built server and of the packed tarball see the sources under test. When
 * `REDIS_URL` is set, the real-Redis suites must run: an unreachable Redis fails the whole run here
 * instead of letting those suites skip.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

export default async function setup(): Promise<void> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  const url = process.env.REDIS_URL;
  if (!url) {
    console.log('[tests] REDIS_URL not set: store suites run on the in-memory store and ioredis-mock only');
    return;
  }
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
    console.log(`[tests] REDIS_URL set: store suites also run on real Redis at ${url}`);
  } catch (err) {
    throw new Error(`REDIS_URL is set to ${url} but Redis does not answer (${String(err)}): start Redis or unset REDIS_URL`);
  } finally {
    redis.disconnect();
  }
}
