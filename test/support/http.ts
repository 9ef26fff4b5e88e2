/**
 * HTTP test helpers: a server on 127.0.0.1 only, WeChat-signed query strings, inbound XML built
 * from fields, and reply XML parsed back into fields.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Express } from 'express';
import { XMLParser } from 'fast-xml-parser';
import { pino } from 'pino';
import { DialogEngine } from '../../src/dialog/engine.js';
import type { Router } from '../../src/dialog/router.js';
import type { DialogStore } from '../../src/dialog/store/store.js';
import { createApp } from '../../src/http/app.js';
import { computeSignature } from '../../src/wechat/signature.js';
import { SAFE_XML_PARSER_OPTIONS } from '../../src/wechat/xml.js';

export const TOKEN = 'testtoken123';
import { ACCOUNT } from './messages.js';
export { ACCOUNT };

/** A running server bound to 127.0.0.1 on a free port. */
export interface TestServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 only (never all interfaces). */
export async function listenOnLoopback(app: Express): Promise<TestServer> {
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** The engine + app for `router` on `store`, served on loopback; logs go nowhere unless LOG_TESTS is set. */
export async function serveDialogs(router: Router, store: DialogStore, ttlSeconds = 60): Promise<TestServer> {
  const logger = pino({ level: process.env.LOG_TESTS ? 'debug' : 'silent' });
  const engine = new DialogEngine({ router, store, ttlSeconds, logger });
  return listenOnLoopback(createApp({ token: TOKEN, path: '/wechat', engine, logger }));
}

/** `?signature=…&timestamp=…&nonce=…&openid=…`, signed with `token`, as WeChat sends it. */
export function signedQuery(openid?: string, token = TOKEN): string {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(randomBytes(4).readUInt32BE());
  const signature = computeSignature(token, timestamp, nonce);
  const params = new URLSearchParams({ signature, timestamp, nonce });
  if (openid !== undefined) params.set('openid', openid);
  return `?${params.toString()}`;
}

const NUMERIC = new Set(['CreateTime', 'MsgId', 'MsgID', 'Scale', 'Location_X', 'Location_Y']);

/** Inbound XML from fields, as WeChat writes it: strings in CDATA, numbers bare. */
export function messageXml(fields: Readonly<Record<string, string | number>>): string {
  const body = Object.entries(fields)
    .map(([name, value]) =>
      NUMERIC.has(name) ? `<${name}>${value}</${name}>` : `<${name}><![CDATA[${String(value).replaceAll(']]>', ']]]]><![CDATA[>')}]]></${name}>`,
    )
    .join('');
  return `<xml>${body}</xml>`;
}

let lastMsgId = 9_007_199_254_740_993n; // 2^53 + 1: beyond what a JS number holds exactly

/** A fresh 64-bit MsgId, as a string, always above 2^53. */
export function nextMsgId(): string {
  lastMsgId += 1n;
  return String(lastMsgId);
}

/** A complete text message from `openid`. */
export function textXml(openid: string, content: string, msgId = nextMsgId()): string {
  return messageXml({
    ToUserName: ACCOUNT,
    FromUserName: openid,
    CreateTime: Math.floor(Date.now() / 1000),
    MsgType: 'text',
    Content: content,
    MsgId: msgId,
  });
}

const replyParser = new XMLParser({ ...SAFE_XML_PARSER_OPTIONS, isArray: (name) => name === 'item' });

/** A passive reply parsed back into fields (every value a string; `Articles.item` always an array). */
export interface ParsedReply {
  ToUserName: string;
  FromUserName: string;
  CreateTime: string;
  MsgType: string;
  Content?: string;
  ArticleCount?: string;
  Articles?: { item: Array<Record<string, string>> };
}

/** Parses reply XML; throws when it is not `<xml>…</xml>`. */
export function parseReply(xml: string): ParsedReply {
  const parsed = replyParser.parse(xml) as { xml?: ParsedReply };
  if (parsed.xml === undefined) throw new Error(`not a reply: ${xml.slice(0, 200)}`);
  return parsed.xml;
}
