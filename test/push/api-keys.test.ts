/**
 * PUSH_API_KEYS parsing (errors never quote a key) and bearer authentication; the rate limit on a
 * shared Redis (ioredis-mock): counters under the limiter's own prefix, shared by two handlers.
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import RedisMock from 'ioredis-mock';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createPushApi } from '../../src/http/push-api.js';
import { ApiKeysError, createAuthenticator, parseApiKeys } from '../../src/push/api-keys.js';
import { FakeQueue, RecordingLogger } from './support.js';

const A = 'a'.repeat(16);
const B = `B:bb${'x'.repeat(12)}`; // a key may hold colons

describe('parseApiKeys', () => {
  it('reads name:key pairs, split at the first colon', () => {
    expect(parseApiKeys(`orders:${A}, ci.build-2:${B}`)).toEqual([
      { service: 'orders', key: A },
      { service: 'ci.build-2', key: B },
    ]);
  });

  it.each([
    ['', /has no name:key entry/],
    [`orders ${A}`, /entry 1 is not name:key/],
    [`:${A}`, /entry 1: the service name must be/],
    [`o/rders:${A}`, /entry 1: the service name must be/],
    [`${'n'.repeat(65)}:${A}`, /entry 1: the service name must be/],
    [`orders:${A},ci:${'k'.repeat(15)}`, /entry 2 \(ci\): the key must be 16 to 256/],
    [`orders:${A} x`, /entry 1 \(orders\): the key must be/],
    [`orders:${A}é`, /entry 1 \(orders\): the key must be/],
    [`orders:${A},orders:${B}`, /entry 2: the service name orders is used twice/],
    [`orders:${A},ci:${A}`, /entry 2 \(ci\) has the same key as orders/],
  ])('refuses %j, without quoting a key', (text, message) => {
    let caught: unknown;
    try {
      parseApiKeys(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ApiKeysError);
    expect((caught as Error).message).toMatch(message);
    for (const key of [A, B, 'k'.repeat(15)]) expect((caught as Error).message).not.toContain(key);
  });
});

describe('createAuthenticator', () => {
  const authenticate = createAuthenticator(parseApiKeys(`orders:${A},ci:${B}`));

  it('returns the service whose key the bearer header carries', () => {
    expect(authenticate(`Bearer ${A}`)).toBe('orders');
    expect(authenticate(`bearer ${B}`)).toBe('ci');
    expect(authenticate(`Bearer  ${B} `)).toBe('ci');
  });

  it.each([undefined, '', 'Bearer', `Bearer ${A}a`, `Bearer ${A.slice(1)}`, `Basic ${A}`, A, `Bearer ${A} ${B}`])('refuses %j', (header) => {
    expect(authenticate(header)).toBeUndefined();
  });
});

describe('the rate limit on Redis', () => {
  it('is shared by every handler on the same Redis, under its own key prefix', async () => {
    const redis = new RedisMock({ host: `mock-${randomBytes(6).toString('hex')}`, port: 6379 });
    const queue = new FakeQueue();
    const options = { keys: parseApiKeys(`orders:${A}`), queue, redis, ratePerMinute: 2, rateLimitKeyPrefix: 'test:push-rate', logger: new RecordingLogger() };
    const processA = express().use(createPushApi(options));
    const processB = express().use(createPushApi(options));
    const push = (app: express.Express) => request(app).post('/push').set('Authorization', `Bearer ${A}`).send({ openid: 'oUser000000000000000000000001', text: 'hi' });
    expect((await push(processA)).status).toBe(202);
    expect((await push(processB)).status).toBe(202);
    const refused = await push(processA);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(await redis.keys('*')).toEqual(['test:push-rate:orders']);
    expect(queue.enqueued).toHaveLength(2);
    redis.disconnect();
  });
});
