/**
 * Prometheus metrics and turn logs (issue 11, items 2 and 3), through the middleware as a host app
 * mounts it: turns by outcome and dialog, the duration histogram, refused requests by reason, the
 * bearer token, and one log line per turn without content.
 */
import express from 'express';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { router } from '../../dialogs/router.js';
import { defineDialog, record } from '../../src/dialog/dialog.js';
import { createRouter } from '../../src/dialog/router.js';
import { MemoryStore } from '../../src/dialog/store/memory-store.js';
import { wechatDialog, type WechatDialogMiddleware } from '../../src/http/wechat-dialog.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import { metricsHandler } from '../../src/observability/metrics-endpoint.js';
import { text } from '../../src/wechat/replies.js';
import { listenOnLoopback, signedQuery, textXml, TOKEN, type TestServer } from '../support/http.js';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** The value of one sample line of the exposition, e.g. `wechat_dialog_turns_total{outcome="started",dialog="accumulator"}`. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics and turn logs through the middleware', () => {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
  let metrics: Metrics;
  let middleware: WechatDialogMiddleware;
  let server: TestServer;
  beforeAll(async () => {
    metrics = createMetrics();
    middleware = wechatDialog({ token: TOKEN, router, store: new MemoryStore({ sweepIntervalMs: 0 }), logger, metrics });
    const app = express();
    app.use('/wechat', middleware);
    app.get('/metrics', metricsHandler(metrics));
    app.get('/secured-metrics', metricsHandler(metrics, { token: 's3cret-token' }));
    server = await listenOnLoopback(app);
  });
  afterAll(async () => {
    await server.close();
    await middleware.close();
  });

  const say = (openid: string, content: string) =>
    fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: textXml(openid, content) });
  const scrape = async () => (await fetch(`${server.url}/metrics`)).text();

  it('counts turns by outcome and dialog, with no openid or content in any label', async () => {
    const openid = 'oMetrics000000000000000001';
    for (const content of ['累加器', '1', '41']) expect((await say(openid, content)).status).toBe(200);
    expect((await say('oMetrics000000000000000002', '随便说点什么')).status).toBe(200);
    const exposition = await scrape();
    expect(sample(exposition, 'wechat_dialog_turns_total{outcome="started",dialog="accumulator"}')).toBe(1);
    expect(sample(exposition, 'wechat_dialog_turns_total{outcome="continued",dialog="accumulator"}')).toBe(1);
    expect(sample(exposition, 'wechat_dialog_turns_total{outcome="ended",dialog="accumulator"}')).toBe(1);
    expect(sample(exposition, 'wechat_dialog_turns_total{outcome="ended",dialog="help"}')).toBe(1);
    expect(sample(exposition, 'wechat_dialog_turn_duration_seconds_count{outcome="started"}')).toBe(1);
    expect(sample(exposition, 'wechat_dialog_replay_messages_bucket{le="2"}')).toBe(3); // replays over 1, 2 and 3 messages, and help's 1
    expect(sample(exposition, 'wechat_dialog_replay_messages_bucket{le="5"}')).toBe(4);
    expect(sample(exposition, 'wechat_dialog_replay_messages_bucket{le="1"}')).toBe(2);
    expect(exposition).toContain('process_cpu_user_seconds_total'); // Node's default metrics
    expect(exposition).not.toMatch(/oMetrics|累加器|随便/);
  });

  it('counts refused requests by reason', async () => {
    const openid = 'oMetrics000000000000000003';
    await fetch(`${server.url}/wechat${signedQuery(openid, 'wrongtoken')}`, { method: 'POST', body: textXml(openid, 'x') });
    await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: '<xml>not a message</xml>' });
    const exposition = await scrape();
    expect(sample(exposition, 'wechat_dialog_requests_refused_total{reason="signature"}')).toBe(1);
    expect(sample(exposition, 'wechat_dialog_requests_refused_total{reason="message"}')).toBe(1);
  });

  it('a WeChat retry counts as repeated, from the state', async () => {
    const openid = 'oMetrics000000000000000004';
    const push = textXml(openid, '累加器');
    await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: push });
    await fetch(`${server.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: push });
    expect(sample(await scrape(), 'wechat_dialog_repeated_total{from="state"}')).toBe(1);
  });

  it('with a token, a scrape without it gets 401', async () => {
    expect((await fetch(`${server.url}/secured-metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/secured-metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await fetch(`${server.url}/secured-metrics`, { headers: { authorization: 'Bearer s3cret-token' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('logs one info line per turn: masked openid, MsgId, MsgType, dialog, outcome, replay length, duration; never the content', async () => {
    lines.length = 0;
    const openid = 'oMetrics000000000000000005';
    await say(openid, '累加器');
    await say(openid, '7');
    const turns = lines.filter((line) => line.msg === 'turn');
    expect(turns).toHaveLength(2);
    expect(turns[0]).toMatchObject({ level: 30, openid: 'oMetri…0005', MsgType: 'text', dialog: 'accumulator', outcome: 'started', replayLength: 1 });
    expect(turns[1]).toMatchObject({ outcome: 'continued', replayLength: 2 });
    expect(typeof turns[0]?.durationMs).toBe('number');
    expect(turns[0]?.MsgId).toMatch(/^\d+$/);
    expect(JSON.stringify(lines)).not.toMatch(/oMetrics000000000000000005|累加器/);
  });

  it('logTurns: false turns the turn lines off', async () => {
    const quiet: LogLine[] = [];
    const mw = wechatDialog({
      token: TOKEN,
      router,
      store: new MemoryStore({ sweepIntervalMs: 0 }),
      logger: pino({ level: 'info' }, { write: (line: string) => quiet.push(JSON.parse(line) as LogLine) }),
      logTurns: false,
    });
    const app = express();
    app.use('/wechat', mw);
    const s = await listenOnLoopback(app);
    try {
      const openid = 'oMetrics000000000000000006';
      await fetch(`${s.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: textXml(openid, '累加器') });
      expect(quiet.filter((line) => line.msg === 'turn')).toEqual([]);
    } finally {
      await s.close();
      await mw.close();
    }
  });
});

describe('the turn duration histogram', () => {
  it('a turn that takes 4.6 s lands in the le="5" bucket and not in le="4.5"', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const slow = defineDialog('slow', function* () {
      yield* record(() => new Promise<null>((resolve) => setTimeout(() => resolve(null), 4_600)));
      return text('done');
    });
    const mw = wechatDialog({
      token: TOKEN,
      router: createRouter({ routes: [], fallback: slow }),
      store: new MemoryStore({ sweepIntervalMs: 0 }),
      logger: pino({ level: 'silent' }),
      metrics,
    });
    const app = express();
    app.use('/wechat', mw);
    const s = await listenOnLoopback(app);
    try {
      const openid = 'oMetricsSlow00000000000001';
      const response = await fetch(`${s.url}/wechat${signedQuery(openid)}`, { method: 'POST', body: textXml(openid, 'hi') });
      expect(response.status).toBe(200);
      const exposition = await metrics.registry.metrics();
      expect(sample(exposition, 'wechat_dialog_turn_duration_seconds_bucket{le="4.5",outcome="ended"}')).toBe(0);
      expect(sample(exposition, 'wechat_dialog_turn_duration_seconds_bucket{le="5",outcome="ended"}')).toBe(1);
      expect(sample(exposition, 'wechat_dialog_turn_duration_seconds_bucket{le="10",outcome="ended"}')).toBe(1);
    } finally {
      await s.close();
      await mw.close();
    }
  }, 15_000);
});
