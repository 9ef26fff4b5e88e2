/**
 * `npm run bench`: this server side by side with bare Express and the npm `wechat` middleware, in
 * one run, every reply checked; then engine-level costs. See bench/README.md.
 *
 *   npm run bench                  the full run (about 2 to 3 minutes): prints the table and the
 *                                  targets, writes bench/results/latest.json and the table in
 *                                  bench/README.md
 *   npm run bench -- --smoke       about 2 s per row, no warm-up, prints, judges nothing, writes nothing
 *   … --no-build                   skip the build (dist/ is already fresh, e.g. in the test)
 *   … --only memory,redis          only these rows (ids: express, wechat, memory, redis, redis-secure,
 *                                  redis-wc2), no engine-level part; judges nothing, writes nothing
 *   … --cpu-prof                   the servers run with `node --cpu-prof`; after each row, a summary
 *                                  of where its time went (bench/profile-summary.ts); judges nothing,
 *                                  writes nothing but the profiles (their directory is printed)
 *
 * Each server runs as a child process of this one; the load generator (autocannon, with the walk's
 * request hooks) runs in this process. Exit status 1 when a row FAILED (a wrong reply, a non-200, a
 * connection error, a server that did not start) or the engine-level part found a wrong reply;
 * a missed target is printed as MISS and does not change the exit status.
 */
import { fork, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { EngineCosts } from './engine-costs.js';
import { failedRow, runRow, type RowSpec, type ServerCommand } from './load.js';
import { describeMachine } from './proc.js';
import { summarizeProfiles } from './profile-summary.js';
import { benchRedisUrl, deleteKeys } from './redis.js';
import { contentionTable, costsTable, judge, judgementsTable, memoryLine, rowsTable, type Judgement } from './report.js';
import { BENCH_AES_KEY, BENCH_APPID, BENCH_TOKEN, type LoadPlan, type RowResult } from './shared.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const build = !args.includes('--no-build');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? '').split(',')) : undefined;
const cpuProf = args.includes('--cpu-prof');
/** A full run judges the targets and writes the results; a smoke, partial or profiled one does not. */
const fullRun = !smoke && only === undefined && !cpuProf;
const root = fileURLToPath(new URL('..', import.meta.url));
const runId = randomBytes(3).toString('hex');
const log = (line = ''): void => console.log(line);

const plan: LoadPlan = smoke
  ? { connections: 32, warmupSeconds: 0, durationSeconds: 2, users: 1024 }
  : { connections: 32, warmupSeconds: 3, durationSeconds: 8, users: 1024 };

/** More CPU than this used by other processes during a row (in cores) gets the row measured again, once (full runs). */
const QUIET_OTHER_CORES = 0.25;

const startedAt = new Date();
const machine = describeMachine();
// Which code ran: the commit, and whether the server's sources differed from it (others may be editing).
const git = (...gitArgs: string[]): string => spawnSync('git', gitArgs, { cwd: root, encoding: 'utf8' }).stdout?.trim() ?? '';
const code = { commit: git('rev-parse', '--short', 'HEAD') || 'unknown', uncommittedServerChanges: git('status', '--porcelain', '--', 'src', 'dialogs') !== '' };
log(`bench ${smoke ? '--smoke ' : ''}(run ${runId}) on ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, load average ${machine.loadAverageAtStart.join(' ')}`);
log(`code: commit ${code.commit}${code.uncommittedServerChanges ? ' plus uncommitted changes under src/ or dialogs/' : ''}`);
log(
  `${plan.connections} connections, ${plan.warmupSeconds} s warm-up + ${plan.durationSeconds} s measured per row, ${plan.users} openids walking the accumulator; ` +
    'each server is a child process, the load generator (autocannon) runs in this process',
);

if (build) {
  // What `npm run build` runs, with this Node.
  const built = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) {
    log('the build failed: the bench runs the built server (dist/), so it stops here');
    process.exit(1);
  }
}

// Redis: REDIS_URL, or the machine's default one in a full run; always database 14 (BENCH_REDIS_DB).
const redisUrl = benchRedisUrl(smoke);
let redis: Redis | undefined;
let redisVersion: string | undefined;
let redisProblem: { status: 'FAILED' | 'SKIPPED'; reason: string } | undefined;
if (redisUrl === undefined) {
  redisProblem = { status: 'SKIPPED', reason: 'no Redis: set REDIS_URL' };
} else {
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null });
  try {
    await client.connect();
    redisVersion = /^redis_version:(\S+)/m.exec(await client.info('server'))?.[1];
    redis = client;
  } catch (err) {
    client.disconnect();
    const reason = `Redis at ${redisUrl} does not answer (${String(err)})`;
    redisProblem = { status: process.env.REDIS_URL ? 'FAILED' : 'SKIPPED', reason };
  }
}
log(redis ? `Redis ${redisVersion ?? '?'} at ${redisUrl} (key prefix wechat-dialog-bench:${runId}:…, removed afterwards)` : `Redis rows: ${redisProblem?.reason}`);

const baseEnv: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };
const profileRoot = join(tmpdir(), `wechat-dialog-bench-profiles-${runId}`);
const profileDir = (row: string): string => join(profileRoot, row);
const profiling = (row: string): string[] => (cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profileDir(row)] : []);
const thisServer = (row: string, extra: Record<string, string>) =>
  (port: number): ServerCommand => ({
    args: [...profiling(row), 'dist/src/cli/main.js', 'serve', '--router', 'dist/dialogs/router.js'],
    env: {
      ...baseEnv,
      // No .env file of the checkout leaks in.
      DOTENV_CONFIG_PATH: '/nonexistent/bench.env',
      WECHAT_TOKEN: BENCH_TOKEN,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      LOG_TURNS: 'false',
      ...extra,
    },
  });
const tsxServer = (row: string, file: string) =>
  (port: number): ServerCommand => ({ args: [...profiling(row), '--import', 'tsx', file], env: { ...baseEnv, PORT: String(port) } });
const redisEnv = (row: string): Record<string, string> => ({ REDIS_URL: redisUrl ?? '', REDIS_KEY_PREFIX: `wechat-dialog-bench:${runId}:${row}:` });

interface PlannedRow extends RowSpec {
  readonly needsRedis: boolean;
}
const rows: PlannedRow[] = [
  { id: 'express', label: 'bare Express 5, fixed reply XML', command: tsxServer('express', 'bench/servers/bare-express.ts'), check: 'fixed', encrypted: false, tag: `${runId}x`, needsRedis: false },
  { id: 'wechat', label: 'npm `wechat` 2.1.0, signature, static reply', command: tsxServer('wechat', 'bench/servers/wechat-peer.ts'), check: 'fixed-addressed', encrypted: false, tag: `${runId}w`, needsRedis: false },
  { id: 'memory', label: 'this server, in-memory store', command: thisServer('memory', {}), check: 'dialog', encrypted: false, tag: `${runId}m`, needsRedis: false },
  { id: 'redis', label: 'this server, Redis (WEB_CONCURRENCY=1)', command: thisServer('redis', { ...redisEnv('redis'), WEB_CONCURRENCY: '1' }), check: 'dialog', encrypted: false, tag: `${runId}r`, needsRedis: true },
  {
    id: 'redis-secure',
    label: 'this server, Redis, security mode (AES)',
    command: thisServer('redis-secure', { ...redisEnv('secure'), WECHAT_APPID: BENCH_APPID, WECHAT_ENCODING_AES_KEY: BENCH_AES_KEY }),
    check: 'dialog',
    encrypted: true,
    tag: `${runId}s`,
    needsRedis: true,
  },
  { id: 'redis-wc2', label: 'this server, Redis, WEB_CONCURRENCY=2', command: thisServer('redis-wc2', { ...redisEnv('wc2'), WEB_CONCURRENCY: '2' }), check: 'dialog', encrypted: false, tag: `${runId}c`, needsRedis: true },
];

const results: RowResult[] = [];
for (const spec of rows.filter((r) => only === undefined || only.has(r.id))) {
  if (spec.needsRedis && redis === undefined) {
    results.push(failedRow(spec, redisProblem?.status ?? 'SKIPPED', redisProblem?.reason ?? 'no Redis'));
    log(`  ${spec.label}: ${redisProblem?.status ?? 'SKIPPED'} (${redisProblem?.reason ?? 'no Redis'})`);
    continue;
  }
  const measure = async (): Promise<RowResult> => {
    const row = await runRow({ ...spec, ...(spec.needsRedis && redis ? { redis } : {}) }, plan, root, log);
    if (spec.needsRedis && redis) await deleteKeys(redis, `wechat-dialog-bench:${runId}:`);
    return row;
  };
  let row = await measure();
  // Other helpers' work on a shared machine takes CPU from the row: measure it once more and keep
  // the quieter measurement (a FAILED one is never set aside).
  if (fullRun && row.status === 'ok' && row.otherCores > QUIET_OTHER_CORES) {
    log(`    other processes used ${row.otherCores} cores during that row: measuring it again`);
    const again = await measure();
    const kept = again.status !== 'ok' || again.otherCores < row.otherCores ? again : row;
    row = { ...kept, attempts: [row, again].map((r) => ({ reqPerSec: r.reqPerSec, p99: r.latencyMs.p99, otherCores: r.otherCores, status: r.status })) };
  }
  results.push(row);
  if (cpuProf) {
    const files = readdirSync(profileDir(spec.id)).filter((f) => f.endsWith('.cpuprofile'));
    log(`    CPU profile of ${spec.id} (${files.length} process(es), warm-up included) in ${profileDir(spec.id)}:`);
    log(summarizeProfiles(files.map((f) => join(profileDir(spec.id), f))).replace(/^/gm, '    '));
  }
}
const bare = results.find((r) => r.id === 'express' && r.status === 'ok');
for (const r of results) if (bare && r.status === 'ok') r.ratio = Math.round((r.reqPerSec / bare.reqPerSec) * 100) / 100;

// Engine-level costs in a child process of their own (with --expose-gc for the memory figure).
log();
if (only === undefined) log('engine-level costs (no HTTP) …');
const costs = only !== undefined ? undefined : await new Promise<EngineCosts | undefined>((resolve) => {
  const child = fork('bench/engine-costs.ts', [...(smoke ? ['--smoke'] : []), ...(redis && redisUrl ? ['--redis', redisUrl] : []), '--prefix', `wechat-dialog-bench:${runId}:costs:`], {
    cwd: root,
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...baseEnv },
  });
  let result: EngineCosts | undefined;
  child.on('message', (message) => {
    result = message as EngineCosts;
  });
  child.on('exit', (code) => {
    if (code !== 0) log(`  the engine-level part exited with ${code}`);
    resolve(result);
  });
});
if (redis) {
  await deleteKeys(redis, `wechat-dialog-bench:${runId}:`);
  redis.disconnect();
}

const judgements: Judgement[] = judge(results, costs, !fullRun);
const finishedAt = new Date();
const loadAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
const failedRows = results.filter((r) => r.status === 'FAILED');
const costProblems = only !== undefined ? [] : costs === undefined ? ['the engine-level part gave no result'] : costs.problems;

const wc1 = results.find((r) => r.id === 'redis');
const wc2 = results.find((r) => r.id === 'redis-wc2');
const notes = [
  `Node ${process.version}; ${machine.cpuModel}, ${machine.cores} cores; Redis ${redisVersion ?? 'not used'}; ${startedAt.toISOString()}.`,
  `Code: commit ${code.commit}${code.uncommittedServerChanges ? ', with uncommitted changes under src/ or dialogs/ (work in progress at the time)' : ''}.`,
  `Load average ${machine.loadAverageAtStart.join(' ')} at the start, ${loadAtEnd.join(' ')} at the end (other work on the machine shows as "other processes" below).`,
  'Server CPU is the server process tree\'s user+system time (/proc/<pid>/stat) over the measured window divided by the requests answered in it; ' +
    'Redis CPU is `INFO cpu` (used_cpu_user + used_cpu_sys) of the whole Redis server over the same window (other clients of that Redis included), not in the server column.',
];

const sections: string[] = [];
sections.push(`### HTTP, side by side (${plan.connections} connections, ${plan.warmupSeconds} s warm-up + ${plan.durationSeconds} s measured per row)\n\n${rowsTable(results)}`);
sections.push(`### Targets${fullRun ? '' : ' (not a full run: not judged)'}\n\n${judgementsTable(judgements)}`);
sections.push(
  `### WEB_CONCURRENCY on Redis\n\n| WEB_CONCURRENCY | req/s | p99 ms |\n|---:|---:|---:|\n` +
    [wc1, wc2].map((r, i) => `| ${i + 1} | ${r && r.status === 'ok' ? Math.round(r.reqPerSec).toLocaleString('en-US') : (r?.status ?? '')} | ${r && r.status === 'ok' ? r.latencyMs.p99 : ''} |`).join('\n'),
);
if (costs) {
  sections.push(
    `### One continuing turn by history length (engine only, no HTTP; median of ${costs.reps} users)\n\n${costsTable(costs)}` +
      (costs.redisSkipped ? `\n\nRedis: ${costs.redisSkipped}` : '') +
      `\n\n${memoryLine(costs)}.`,
  );
}
sections.push(`### Where the CPU went in each row's window\n\n${contentionTable(results)}`);
sections.push(`### Machine\n\n${notes.map((n) => `- ${n}`).join('\n')}`);
const report = sections.join('\n\n');

log();
log(report);
log();
for (const r of results) if (r.wrongSamples.length > 0) log(`${r.id}: e.g. ${r.wrongSamples.join(' | ')}`);
for (const p of costProblems) log(`engine-level: ${p}`);
log(`rows: ${results.map((r) => `${r.id} ${r.status}`).join(', ')}`);
// One line for machines (test/bench-smoke.test.ts reads it).
log(`bench-rows-json ${JSON.stringify(results.map(({ id, status, checked, wrong, non200, errors, reqPerSec }) => ({ id, status, checked, wrong, non200, errors, reqPerSec })))}`);
log(`bench took ${Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000)} s`);

if (fullRun) {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const json = {
    date: startedAt.toISOString(),
    durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000),
    machine: { ...machine, loadAverageAtEnd: loadAtEnd, redisVersion: redisVersion ?? null },
    code,
    plan,
    loadGenerator: 'autocannon 9, in the bench\'s main process; each server in a child process',
    rows: results,
    targets: judgements,
    engineCosts: costs ?? null,
    notes,
  };
  writeFileSync(new URL('./results/latest.json', import.meta.url), `${JSON.stringify(json, null, 2)}\n`);
  const readmeUrl = new URL('./README.md', import.meta.url);
  const start = '<!-- bench:results:start -->';
  const end = '<!-- bench:results:end -->';
  const readme = readFileSync(readmeUrl, 'utf8');
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) {
    log(`bench/README.md has no ${start} … ${end} section: the table was not written there`);
  } else {
    const generated = `${start}\n<!-- generated by npm run bench on ${startedAt.toISOString()}; do not edit by hand -->\n\n${report}\n\n${end}`;
    writeFileSync(readmeUrl, readme.slice(0, from) + generated + readme.slice(to + end.length));
  }
  log('wrote bench/results/latest.json and the table in bench/README.md');
}

process.exit(failedRows.length > 0 || costProblems.length > 0 ? 1 : 0);
