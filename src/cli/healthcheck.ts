/**
 * `wechat-dialog healthcheck`: asks the server on this machine for a signed GET handshake, as
 * WeChat does when the URL is saved in the console, and exits 0 when it echoes `echostr`, 1
 * otherwise (a container's `HEALTHCHECK`). It reads the same settings as the server (`WECHAT_TOKEN`,
 * `PORT`, `HOST`, `WECHAT_PATH`, from the environment and `.env`).
 *
 * @module
 */
import { randomBytes, randomInt } from 'node:crypto';
import { computeSignature } from '../wechat/signature.js';
import { readConfig } from './serve.js';

/** How long the handshake may take, in **milliseconds**. */
const TIMEOUT_MS = 3_000;

/**
 * The URL of a signed handshake (`?signature&timestamp&nonce&echostr`) for `token` at `url`.
 * Source: 接入概述 (protocol README §1.1).
 */
export function handshakeUrl(url: string, token: string, echostr: string, nowMs: number = Date.now()): string {
  const timestamp = String(Math.floor(nowMs / 1000));
  const nonce = String(randomInt(1, 2 ** 31));
  const query = new URLSearchParams({ signature: computeSignature(token, timestamp, nonce), timestamp, nonce, echostr });
  return `${url}${url.includes('?') ? '&' : '?'}${query.toString()}`;
}

/** Runs the check and exits: 0 when the server answered the handshake, 1 with one line on stderr otherwise. */
export async function healthcheck(): Promise<never> {
  const config = readConfig();
  const host = config.host === '0.0.0.0' || config.host === '::' || config.host === '' ? '127.0.0.1' : config.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}${config.path}`;
  const echostr = randomBytes(8).toString('hex');
  try {
    const response = await fetch(handshakeUrl(url, config.token, echostr), { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = await response.text();
    if (response.status === 200 && body === echostr) process.exit(0);
    process.stderr.write(`healthcheck: ${url} answered ${response.status} ${JSON.stringify(body.slice(0, 100))}\n`);
  } catch (err) {
    process.stderr.write(`healthcheck: ${url} did not answer: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
}
