/**
 * CPU accounting from /proc (Linux): a process tree's user+system time, the whole machine's busy
 * time, and the machine the bench ran on.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

/** Clock ticks per second of /proc's times (`getconf CLK_TCK`; 100 on Linux everywhere in practice). */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  readonly ppid: number;
  /** user + system time, **milliseconds**. */
  readonly cpuMs: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const ppid = Number(fields[1]);
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { ppid, cpuMs: (ticks * 1000) / TICKS_PER_SECOND };
}

/** User+system CPU of `pid` and all its living descendants (a cluster primary's workers), **ms**. */
export function treeCpuMs(pid: number): number {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat === undefined) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(name));
    children.set(stat.ppid, list);
  }
  let total = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    total += readStat(next)?.cpuMs ?? 0;
    pending.push(...(children.get(next) ?? []));
  }
  return total;
}

/** This process's user+system CPU, **ms** (all threads). */
export function selfCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** The machine's CPU time from /proc/stat's first line: busy and total, **ms** summed over all cores. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, ...values] = line.trim().split(/\s+/);
  const n = values.map(Number);
  // user nice system idle iowait irq softirq steal (guest is already in user)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = n;
  const busy = user + nice + system + irq + softirq + steal;
  const toMs = (ticks: number): number => (ticks * 1000) / TICKS_PER_SECOND;
  return { busy: toMs(busy), total: toMs(busy + idle + iowait) };
}

/** The machine, for the results file. */
export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly node: string;
  readonly platform: string;
  readonly loadAverageAtStart: readonly number[];
}

export function describeMachine(): Machine {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match?.[1] !== undefined) model = match[1].trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpuModel: model,
    cores: cpus().length,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
