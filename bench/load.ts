/**
 * One HTTP row: start the server as its own child process, wait until it answers, drive it with
 * autocannon from this process (warm-up, then the measured window), check every reply, and read
 * the CPU the server, Redis, this process and everything else used in the measured window.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { machineCpuMs, selfCpuMs, treeCpuMs } from './proc.js';
import type { LoadPlan, RowResult } from './shared.js';
import { percentile, Walk, type ReplyCheck } from './walk.js';

/** How to start a row's server. */
export interface ServerCommand {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export interface RowSpec {
  readonly id: string;
  readonly label: string;
  readonly command: (port: number) => ServerCommand;
  readonly check: ReplyCheck;
  readonly encrypted: boolean;
  /** Openid tag: letters and digits, unique per row and run. */
  readonly tag: string;
  /** Redis to read `INFO cpu` from (Redis rows). */
  readonly redis?: Redis;
}

/** A free TCP port on 127.0.0.1 (closed again before the server binds it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A started server process. */
interface Started {
  readonly child: ChildProcess;
  readonly output: () => string;
}

async function startServer(command: ServerCommand, port: number, cwd: string): Promise<Started> {
  const child = spawn(process.execPath, [...command.args], { cwd, env: command.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exited with ${code ?? signal}`;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`the server ${exited} before answering: ${output.trim().slice(-800)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the server did not answer GET /healthz within 30 s: ${output.trim().slice(-800)}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await response.text();
      if (response.status === 200) return { child, output: () => output };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stopServer(started: Started): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function runAutocannon(url: string, connections: number, seconds: number, walk: Walk): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    // autocannon builds each connection's first push while it creates the connections, within
    // this call: those pushes wait for a connection and are not timed.
    walk.timing = false;
    setImmediate(() => {
      walk.timing = true;
    });
    autocannon(
      {
        url,
        connections,
        duration: seconds,
        pipelining: 1,
        timeout: 10,
        requests: [walk.request('/wechat')],
      },
      (err, result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(result)),
    );
  });
}

/** `used_cpu_user + used_cpu_sys` of the whole Redis server, **ms**. */
export async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const value = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (value('used_cpu_user') + value('used_cpu_sys')) * 1000;
}

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Runs one row; never throws (a row that cannot run is FAILED with the reason). */
export async function runRow(spec: RowSpec, plan: LoadPlan, cwd: string, log: (line: string) => void): Promise<RowResult> {
  const port = await freePort();
  let started: Started | undefined;
  try {
    started = await startServer(spec.command(port), port, cwd);
    const walk = new Walk({ users: plan.users, check: spec.check, encrypted: spec.encrypted, tag: spec.tag });
    const url = `http://127.0.0.1:${port}`;
    let warmupErrors = 0;
    if (plan.warmupSeconds > 0) {
      const warm = await runAutocannon(url, plan.connections, plan.warmupSeconds, walk);
      warmupErrors = warm.errors;
      walk.retireInFlight();
    }
    // Only the measured window counts for speed: the checks of the warm-up are set aside (a wrong
    // reply or a non-200 there still fails the row).
    const warmupWrong = walk.counts.wrong;
    const warmupNon200 = walk.counts.non200;
    const warmupSamples = [...walk.counts.wrongSamples];
    Object.assign(walk.counts, { checked: 0, wrong: 0, non200: 0 });
    walk.counts.wrongSamples.length = 0;
    walk.latencies = [];

    const pid = started.child.pid!;
    const redisBefore = spec.redis ? await redisCpuMs(spec.redis) : 0;
    const serverBefore = treeCpuMs(pid);
    const selfBefore = selfCpuMs();
    const machineBefore = machineCpuMs();
    const t0 = performance.now();
    const result = await runAutocannon(url, plan.connections, plan.durationSeconds, walk);
    const seconds = (performance.now() - t0) / 1000;
    const machineAfter = machineCpuMs();
    const selfAfter = selfCpuMs();
    const serverAfter = treeCpuMs(pid);
    const redisAfter = spec.redis ? await redisCpuMs(spec.redis) : 0;
    walk.retireInFlight();

    const requests = result.requests.total;
    const latencies = walk.latencies.sort((a, b) => a - b);
    const perRequest = (ms: number): number => (requests > 0 ? round(ms / requests, 4) : 0);
    const serverMs = serverAfter - serverBefore;
    const selfMs = selfAfter - selfBefore;
    const redisMs = redisAfter - redisBefore;
    const busyMs = machineAfter.busy - machineBefore.busy;
    const totalMs = machineAfter.total - machineBefore.total;
    const otherMs = Math.max(0, busyMs - serverMs - selfMs - (spec.redis ? redisMs : 0));
    const counts = walk.counts;
    const wrong = counts.wrong + warmupWrong;
    const non200 = counts.non200 + warmupNon200;
    const problems: string[] = [];
    if (wrong > 0) problems.push(`${wrong} wrong replies${warmupWrong > 0 ? ` (${warmupWrong} of them in the warm-up)` : ''}`);
    if (non200 > 0) problems.push(`${non200} non-200 answers${warmupNon200 > 0 ? ` (${warmupNon200} of them in the warm-up)` : ''}`);
    const errors = result.errors + warmupErrors;
    if (errors > 0) problems.push(`${errors} connection errors or timeouts${warmupErrors > 0 ? ` (${warmupErrors} of them in the warm-up)` : ''}`);
    if (requests === 0 || counts.checked === 0) problems.push('no answer was measured');
    const row: RowResult = {
      id: spec.id,
      label: spec.label,
      status: problems.length === 0 ? 'ok' : 'FAILED',
      ...(problems.length > 0 ? { reason: problems.join('; ') } : {}),
      requests,
      checked: counts.checked,
      seconds: round(seconds, 2),
      reqPerSec: round(requests / seconds, 0),
      latencyMs: { p50: round(percentile(latencies, 50)), p90: round(percentile(latencies, 90)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? 0) },
      errors,
      timeouts: result.timeouts,
      non200,
      wrong,
      wrongSamples: [...warmupSamples, ...counts.wrongSamples].slice(0, 3),
      serverCpuMsPerReq: perRequest(serverMs),
      ...(spec.redis ? { redisCpuMsPerReq: perRequest(redisMs) } : {}),
      loadCpuMsPerReq: perRequest(selfMs),
      otherCores: round(otherMs / (seconds * 1000), 2),
      machineBusyPct: totalMs > 0 ? round((100 * busyMs) / totalMs, 0) : 0,
    };
    log(
      `  ${spec.label}: ${row.reqPerSec} req/s, p50 ${row.latencyMs.p50} ms, p99 ${row.latencyMs.p99} ms, ` +
        `${row.checked} replies checked, ${row.wrong} wrong, ${row.non200} non-200, ${row.errors} errors` +
        (row.status === 'FAILED' ? ` -> FAILED: ${row.reason}` : ''),
    );
    for (const sample of row.wrongSamples) log(`    e.g. ${sample}`);
    return row;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    log(`  ${spec.label}: FAILED: ${reason}`);
    return failedRow(spec, 'FAILED', reason);
  } finally {
    if (started !== undefined) await stopServer(started);
  }
}

/** A row that did not run, or could not. */
export function failedRow(spec: { id: string; label: string }, status: 'FAILED' | 'SKIPPED', reason: string): RowResult {
  return {
    id: spec.id,
    label: spec.label,
    status,
    reason,
    requests: 0,
    checked: 0,
    seconds: 0,
    reqPerSec: 0,
    latencyMs: { p50: 0, p90: 0, p99: 0, max: 0 },
    errors: 0,
    timeouts: 0,
    non200: 0,
    wrong: 0,
    wrongSamples: [],
    serverCpuMsPerReq: 0,
    loadCpuMsPerReq: 0,
    otherCores: 0,
    machineBusyPct: 0,
  };
}
