/**
 * The bench's report: the table of rows, the targets judged against it, the engine-level costs,
 * and the generated section of bench/README.md.
 */
import type { EngineCosts, LengthCost } from './engine-costs.js';
import type { RowResult } from './shared.js';

/** A target (must hold) or an aim (where this should get to), and how the run did. */
export interface Judgement {
  readonly kind: 'target' | 'aim';
  readonly name: string;
  /** PASS / MISS; `n/a` when what it compares did not run; `not judged` in smoke mode. */
  readonly status: 'PASS' | 'MISS' | 'n/a' | 'not judged';
  readonly detail: string;
}

/** Thresholds, in one place. */
export const LIMITS = {
  ratioToBare: 0.5,
  p99ToBare: 1.5,
  /** Bytes of a continuing turn at 1,000 messages over those at 10: "independent of length". */
  bytesGrowth: 1.25,
  /** Redis time of a continuing turn at 1,000 over 10 (INFO commandstats, noisy at tens of µs). */
  redisTimeGrowth: 2,
} as const;

const fmt = (x: number, digits = 2): string => x.toFixed(digits);
const thousands = (x: number): string => Math.round(x).toLocaleString('en-US');

function find(rows: readonly RowResult[], id: string): RowResult | undefined {
  const row = rows.find((r) => r.id === id);
  return row?.status === 'ok' ? row : undefined;
}

const costAt = (costs: readonly LengthCost[] | undefined, length: number): LengthCost | undefined => costs?.find((c) => c.length === length);

/** Judges the targets and the aim. */
export function judge(rows: readonly RowResult[], costs: EngineCosts | undefined, smoke: boolean): Judgement[] {
  const bare = find(rows, 'express');
  const peer = find(rows, 'wechat');
  const out: Judgement[] = [];
  const verdict = (ok: boolean | undefined): Judgement['status'] => (smoke ? 'not judged' : ok === undefined ? 'n/a' : ok ? 'PASS' : 'MISS');

  for (const id of ['memory', 'redis']) {
    const row = find(rows, id);
    const label = id === 'memory' ? 'in-memory store' : 'Redis store';
    const ratio = row && bare ? row.reqPerSec / bare.reqPerSec : undefined;
    out.push({
      kind: 'target',
      name: `this server, ${label}: req/s ≥ ${LIMITS.ratioToBare} × bare Express`,
      status: verdict(ratio === undefined ? undefined : ratio >= LIMITS.ratioToBare),
      detail: ratio === undefined ? 'a row it needs did not run' : `${fmt(ratio)} ×`,
    });
  }
  {
    const row = find(rows, 'redis');
    const ratio = row && bare ? row.reqPerSec / bare.reqPerSec : undefined;
    const peerRatio = peer && bare ? peer.reqPerSec / bare.reqPerSec : undefined;
    out.push({
      kind: 'aim',
      name: 'this server on Redis ≥ the npm `wechat` row (× bare Express)',
      status: verdict(ratio === undefined || peerRatio === undefined ? undefined : ratio >= peerRatio),
      detail: ratio === undefined || peerRatio === undefined ? 'a row it needs did not run' : `${fmt(ratio)} × against ${fmt(peerRatio)} ×`,
    });
  }
  for (const id of ['memory', 'redis']) {
    const row = find(rows, id);
    const label = id === 'memory' ? 'in-memory store' : 'Redis store';
    const ratio = row && bare && bare.latencyMs.p99 > 0 ? row.latencyMs.p99 / bare.latencyMs.p99 : undefined;
    out.push({
      kind: 'target',
      name: `this server, ${label}: p99 ≤ ${LIMITS.p99ToBare} × bare Express's p99`,
      status: verdict(ratio === undefined ? undefined : ratio <= LIMITS.p99ToBare),
      detail: ratio === undefined || !row || !bare ? 'a row it needs did not run' : `${row.latencyMs.p99} ms against ${bare.latencyMs.p99} ms (${fmt(ratio)} ×)`,
    });
  }
  {
    const ran = rows.filter((r) => r.status !== 'SKIPPED');
    const bad = ran.filter((r) => r.wrong > 0 || r.non200 > 0 || r.errors > 0 || r.status === 'FAILED');
    const wrong = ran.reduce((n, r) => n + r.wrong, 0);
    const non200 = ran.reduce((n, r) => n + r.non200, 0);
    out.push({
      kind: 'target',
      name: 'zero wrong replies (and no non-200, no connection error) in every row',
      status: verdict(ran.length === 0 ? undefined : bad.length === 0),
      detail: bad.length === 0 ? `${ran.length} rows, every reply as expected` : `${wrong} wrong, ${non200} non-200 in ${bad.map((r) => r.id).join(', ')}`,
    });
  }
  {
    const at10 = costAt(costs?.redis, 10);
    const at1000 = costAt(costs?.redis, 1000);
    const bytes = at10?.bytes && at1000?.bytes !== undefined ? at1000.bytes / at10.bytes : undefined;
    out.push({
      kind: 'target',
      name: `Redis bytes of a continuing turn independent of the dialog's length (1,000 vs 10 messages ≤ ${LIMITS.bytesGrowth} ×)`,
      status: verdict(bytes === undefined ? undefined : bytes <= LIMITS.bytesGrowth),
      detail: bytes === undefined ? 'no Redis' : `${thousands(at1000!.bytes!)} B against ${thousands(at10!.bytes!)} B: ${fmt(bytes)} ×`,
    });
    const usec = at10?.redisUsec && at1000?.redisUsec !== undefined ? at1000.redisUsec / at10.redisUsec : undefined;
    out.push({
      kind: 'target',
      name: `Redis time of a continuing turn independent of the dialog's length (1,000 vs 10 messages ≤ ${LIMITS.redisTimeGrowth} ×)`,
      status: verdict(usec === undefined ? undefined : usec <= LIMITS.redisTimeGrowth),
      detail: usec === undefined ? 'no Redis' : `${at1000!.redisUsec} µs against ${at10!.redisUsec} µs: ${fmt(usec)} × (INFO commandstats of the whole Redis)`,
    });
    const counts = costs?.redis?.map((c) => c.commands ?? 0);
    out.push({
      kind: 'target',
      name: 'one Redis round trip per continuing turn (at every length)',
      status: verdict(counts === undefined ? undefined : counts.every((n) => n === 1)),
      detail: counts === undefined ? 'no Redis' : `commands per continuing turn at ${costs!.redis!.map((c) => c.length).join(', ')} messages: ${counts.join(', ')}`,
    });
  }
  return out;
}

/** The main table as Markdown. */
export function rowsTable(rows: readonly RowResult[]): string {
  const lines = [
    '| row | req/s | × bare Express | p50 ms | p99 ms | errors / non-200 / wrong | server CPU ms/req | Redis CPU ms/req | status |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    if (r.status === 'SKIPPED') {
      lines.push(`| ${r.label} | | | | | | | | SKIPPED: ${r.reason ?? ''} |`);
      continue;
    }
    const status = r.status === 'ok' ? 'ok' : `**FAILED**: ${r.reason ?? ''}`;
    lines.push(
      `| ${r.label} | ${thousands(r.reqPerSec)} | ${r.ratio === undefined ? '' : fmt(r.ratio)} | ${r.latencyMs.p50} | ${r.latencyMs.p99} | ` +
        `${r.errors} / ${r.non200} / ${r.wrong} | ${fmt(r.serverCpuMsPerReq, 3)} | ${r.redisCpuMsPerReq === undefined ? '' : fmt(r.redisCpuMsPerReq, 3)} | ${status} |`,
    );
  }
  return lines.join('\n');
}

/** Where else the CPU went in each row's window: the load generator, other processes. */
export function contentionTable(rows: readonly RowResult[]): string {
  const lines = [
    '| row | replies checked | load generator CPU ms/req | machine busy | other processes (cores) | measured |',
    '|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows.filter((x) => x.status !== 'SKIPPED' && x.requests > 0)) {
    const measured =
      r.attempts === undefined
        ? 'once'
        : `twice (other processes busy): ${r.attempts.map((a) => `${thousands(a.reqPerSec)} req/s with ${fmt(a.otherCores)} cores busy elsewhere`).join(', then ')}; the quieter one kept`;
    lines.push(`| ${r.label} | ${thousands(r.checked)} | ${fmt(r.loadCpuMsPerReq, 3)} | ${r.machineBusyPct} % | ${fmt(r.otherCores)} | ${measured} |`);
  }
  return lines.join('\n');
}

export function judgementsTable(judgements: readonly Judgement[]): string {
  const lines = ['| | what | result | measured |', '|---|---|---|---|'];
  for (const j of judgements) lines.push(`| ${j.kind} | ${j.name} | ${j.status === 'MISS' ? '**MISS**' : j.status} | ${j.detail} |`);
  return lines.join('\n');
}

export function costsTable(costs: EngineCosts): string {
  const lines = [
    '| history (messages) | turn, in-memory store (ms) | turn, Redis (ms) | Redis bytes per turn (written + read) | Redis commands per turn | Redis time per turn (µs) |',
    '|---:|---:|---:|---:|---:|---:|',
  ];
  for (const m of costs.memory) {
    const r = costAt(costs.redis, m.length);
    lines.push(
      `| ${thousands(m.length)} | ${fmt(m.turnMs, 3)} | ${r ? fmt(r.turnMs, 3) : ''} | ` +
        `${r?.bytes === undefined ? '' : `${thousands(r.bytes)} (${thousands(r.bytesWritten ?? 0)} + ${thousands(r.bytesRead ?? 0)})`} | ` +
        `${r?.commands === undefined ? '' : `${r.commands} (${(r.commandNames ?? []).join(', ')})`} | ${r?.redisUsec ?? ''} |`,
    );
  }
  return lines.join('\n');
}

export function memoryLine(costs: EngineCosts): string {
  const m = costs.memoryPerDialog;
  return (
    `Memory per active dialog, in-memory store: ${thousands(m.heapBytesPerDialog)} bytes of heap` +
    (m.externalBytesPerDialog >= 64 ? ` (+ ${thousands(m.externalBytesPerDialog)} external)` : '') +
    ` per user, ${thousands(m.users)} users each ${m.messagesPerDialog} messages into the accumulator ` +
    `(store entries, handled-message records and the engine's state cache together; ` +
    (m.exactGc ? 'heap measured after a full GC)' : 'approximate: no --expose-gc, measured without a forced GC)')
  );
}
