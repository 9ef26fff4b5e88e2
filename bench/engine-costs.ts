/**
 * The engine-level part of the bench (no HTTP), run as a child process of bench/run.ts with
 * `--expose-gc` and the result sent back over IPC (or printed when run on its own):
 *
 * - the cost of one continuing turn at history lengths 1, 10, 100 and 1,000 messages: a
 *   `DialogEngine` with an echo dialog that never ends and `maxMessages` 2000, on the in-memory
 *   store and on Redis; the median over a few users of one timed turn at each length;
 * - on Redis, per continuing turn at each length: the bytes the store's own connection wrote and
 *   read (socket counters), the commands it sent (`MONITOR`, filtered to that connection, on a
 *   turn of its own so that MONITOR's cost is not in the timing), and Redis's time
 *   (`INFO commandstats` delta, whole server);
 * - memory per active dialog on the in-memory store: the heap delta over N users each in the middle
 *   of the accumulator (5 messages in), after a full GC.
 *
 * Usage: node --expose-gc --import tsx bench/engine-costs.ts [--smoke] [--redis <url>] [--prefix <p>]
 */
import { Redis } from 'ioredis';
import { router as demoRouter } from '../dialogs/router.js';
import {
  createRedisClient,
  createRouter,
  defineDialog,
  DialogEngine,
  MemoryStore,
  RedisStore,
  text,
  type DialogStore,
  type InboundMessage,
  type Reply,
  type Router,
} from '../src/index.js';
import { deleteKeys } from './redis.js';
import { BENCH_ACCOUNT } from './shared.js';

export const HISTORY_LENGTHS = [1, 10, 100, 1000] as const;

/** One store's turn costs at each history length. */
export interface LengthCost {
  readonly length: number;
  /** Median wall time of one continuing turn, **milliseconds**. */
  readonly turnMs: number;
  /** Redis only: bytes written + read by the store's connection in that turn (median). */
  readonly bytes?: number;
  readonly bytesWritten?: number;
  readonly bytesRead?: number;
  /** Redis only: commands the store's connection sent in a continuing turn (MONITOR). */
  readonly commands?: number;
  readonly commandNames?: readonly string[];
  /** Redis only: Redis's time for the turn's commands, **microseconds** (INFO commandstats; median). */
  readonly redisUsec?: number;
}

export interface EngineCosts {
  readonly reps: number;
  readonly memory: readonly LengthCost[];
  readonly redis?: readonly LengthCost[];
  readonly redisSkipped?: string;
  readonly memoryPerDialog: {
    readonly users: number;
    readonly messagesPerDialog: number;
    readonly heapBytesPerDialog: number;
    readonly externalBytesPerDialog: number;
    readonly exactGc: boolean;
  };
  readonly problems: readonly string[];
}

const echo = defineDialog('bench-echo', function* () {
  let message: InboundMessage = yield text('echo: ready');
  for (;;) {
    message = yield text(`echo: ${message.MsgType === 'text' ? message.Content : message.MsgType}`);
  }
});
const echoRouter: Router = createRouter({ routes: [{ match: { text: 'echo' }, dialog: echo }], fallback: null });

let msgId = (1n << 62n) + BigInt(Math.floor(Math.random() * 2 ** 50)) * 1024n;
let clock = Math.floor(Date.now() / 1000);

function textMessage(openid: string, content: string): InboundMessage {
  msgId += 1n;
  return { ToUserName: BENCH_ACCOUNT, FromUserName: openid, CreateTime: clock, MsgType: 'text', Content: content, MsgId: String(msgId) };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : (sorted[Math.floor((sorted.length - 1) / 2)] ?? 0);
};

function replyText(reply: Reply | undefined): string {
  return reply?.MsgType === 'text' ? reply.Content : String(reply?.MsgType);
}

/** What one measured turn on Redis saw. */
interface RedisProbe {
  before(): Promise<void>;
  after(): Promise<{ bytesWritten: number; bytesRead: number; redisUsec: number }>;
  countCommands(turn: () => Promise<void>): Promise<string[]>;
}

function commandstatsUsec(info: string): number {
  let total = 0;
  for (const match of info.matchAll(/^cmdstat_([a-z|_-]+):calls=\d+,usec=(\d+)/gm)) {
    if (match[1] === 'info') continue; // the probe's own INFO
    total += Number(match[2]);
  }
  return total;
}

function redisProbe(storeClient: Redis, admin: Redis): RedisProbe {
  let written = 0;
  let read = 0;
  let usec = 0;
  return {
    async before() {
      usec = commandstatsUsec(await admin.info('commandstats'));
      written = storeClient.stream.bytesWritten;
      read = storeClient.stream.bytesRead;
    },
    async after() {
      const bytesWritten = storeClient.stream.bytesWritten - written;
      const bytesRead = storeClient.stream.bytesRead - read;
      const redisUsec = commandstatsUsec(await admin.info('commandstats')) - usec;
      return { bytesWritten, bytesRead, redisUsec };
    },
    async countCommands(turn) {
      const source = `${storeClient.stream.localAddress}:${storeClient.stream.localPort}`;
      const monitor = await admin.monitor();
      const marker = `bench-marker-${Math.random().toString(36).slice(2)}`;
      const seen: string[] = [];
      let open = true; // after the marker, events still arriving before the socket closes are not this turn's
      const done = new Promise<void>((resolve) => {
        monitor.on('monitor', (_time: string, args: string[], from: string) => {
          if (!open) return;
          if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) {
            open = false;
            resolve();
          } else if (from === source) seen.push((args[0] ?? '?').toLowerCase());
        });
      });
      await turn();
      await admin.echo(marker);
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 3000))]);
      open = false;
      monitor.disconnect();
      return [...seen];
    },
  };
}

/** Walks `reps` users of the echo dialog to the longest length and times one turn at each length. */
async function lengthCosts(store: DialogStore, reps: number, tag: string, probe: RedisProbe | undefined, problems: string[]): Promise<LengthCost[]> {
  const engine = new DialogEngine({ router: echoRouter, store, ttlSeconds: 600, maxMessages: 2000 });
  const longest = Math.max(...HISTORY_LENGTHS);
  const samples = new Map<number, { ms: number[]; bytes: number[]; written: number[]; read: number[]; usec: number[]; commands: string[][] }>();
  for (const length of HISTORY_LENGTHS) samples.set(length, { ms: [], bytes: [], written: [], read: [], usec: [], commands: [] });
  for (let r = 0; r < reps; r += 1) {
    const openid = `oCost${tag}${String(r).padStart(19, '0')}`;
    const first = await engine.handle(textMessage(openid, 'echo'));
    if (replyText(first.reply) !== 'echo: ready') problems.push(`echo dialog did not start: ${replyText(first.reply)}`);
    // `history` = messages the dialog holds before the next turn.
    for (let history = 1; history <= longest + 1; history += 1) {
      clock = Math.max(clock, Math.floor(Date.now() / 1000));
      const sample = samples.get(history);
      const content = `m${history}`;
      if (sample === undefined) {
        await engine.handle(textMessage(openid, content));
        continue;
      }
      if (probe !== undefined) await probe.before();
      const started = performance.now();
      const result = await engine.handle(textMessage(openid, content));
      sample.ms.push(performance.now() - started);
      if (probe !== undefined) {
        const seen = await probe.after();
        sample.written.push(seen.bytesWritten);
        sample.read.push(seen.bytesRead);
        sample.bytes.push(seen.bytesWritten + seen.bytesRead);
        sample.usec.push(seen.redisUsec);
      }
      if (result.outcome !== 'continued' || replyText(result.reply) !== `echo: ${content}`) {
        problems.push(`echo turn at length ${history}: ${result.outcome}, ${replyText(result.reply)}`);
      }
      if (probe !== undefined) {
        // The next turn (length + 1) counted with MONITOR, apart from the timed one.
        history += 1;
        const next = `m${history}`;
        const commands = await probe.countCommands(async () => {
          await engine.handle(textMessage(openid, next));
        });
        sample.commands.push(commands);
      }
    }
  }
  return HISTORY_LENGTHS.map((length) => {
    const s = samples.get(length)!;
    const cost: LengthCost = { length, turnMs: Math.round(median(s.ms) * 1000) / 1000 };
    if (probe === undefined) return cost;
    const counts = s.commands.map((c) => c.length);
    return {
      ...cost,
      bytes: median(s.bytes),
      bytesWritten: median(s.written),
      bytesRead: median(s.read),
      commands: Math.max(...counts),
      commandNames: [...new Set(s.commands.flat())],
      redisUsec: median(s.usec),
    };
  });
}

/** Heap per user in the middle of the accumulator (5 messages in) on the in-memory store. */
async function memoryPerDialog(users: number): Promise<EngineCosts['memoryPerDialog']> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const collect = (): void => {
    if (gc) for (let i = 0; i < 3; i += 1) gc();
  };
  const store = new MemoryStore({ maxEntries: users * 20 });
  const engine = new DialogEngine({ router: demoRouter, store, ttlSeconds: 600 });
  // Warm up the code paths (and the demo's modules) on users that are gone before the baseline.
  for (let i = 0; i < 50; i += 1) {
    const openid = `oWarm${String(i).padStart(23, '0')}`;
    for (const content of ['累加器', '2', '1', '1']) await engine.handle(textMessage(openid, content));
  }
  collect();
  const before = process.memoryUsage();
  const messages = ['累加器', '8', '1', '2', '3'];
  for (let i = 0; i < users; i += 1) {
    const openid = `oMem${String(i).padStart(24, '0')}`;
    for (const content of messages) await engine.handle(textMessage(openid, content));
  }
  collect();
  const after = process.memoryUsage();
  const result = {
    users,
    messagesPerDialog: messages.length,
    heapBytesPerDialog: Math.round((after.heapUsed - before.heapUsed) / users),
    externalBytesPerDialog: Math.round((after.external - before.external) / users),
    exactGc: gc !== undefined,
  };
  // Keep both alive until measured.
  await store.close();
  void engine;
  return result;
}

async function measureEngineCosts(options: { smoke: boolean; redisUrl?: string; keyPrefix: string }): Promise<EngineCosts> {
  const reps = options.smoke ? 1 : 5;
  const problems: string[] = [];
  const memoryStore = new MemoryStore();
  const memory = await lengthCosts(memoryStore, reps, 'M', undefined, problems);
  await memoryStore.close();

  let redis: LengthCost[] | undefined;
  let redisSkipped: string | undefined;
  if (options.redisUrl === undefined) {
    redisSkipped = 'no Redis (set REDIS_URL)';
  } else {
    const admin = new Redis(options.redisUrl, { maxRetriesPerRequest: 1 });
    const client = createRedisClient(options.redisUrl);
    const store = new RedisStore({ redis: client, keyPrefix: options.keyPrefix });
    try {
      await client.ping();
      redis = await lengthCosts(store, reps, 'R', redisProbe(client, admin), problems);
    } finally {
      await store.close();
      await deleteKeys(admin, options.keyPrefix);
      admin.disconnect();
    }
  }
  const memoryPer = await memoryPerDialog(options.smoke ? 500 : 5000);
  return { reps, memory, ...(redis ? { redis } : {}), ...(redisSkipped ? { redisSkipped } : {}), memoryPerDialog: memoryPer, problems };
}

// Run as a script: a child of bench/run.ts (the result goes back over IPC), or by hand (printed).
{
  const args = process.argv.slice(2);
  const value = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const redisUrl = value('--redis');
  const result = await measureEngineCosts({
    smoke: args.includes('--smoke'),
    ...(redisUrl ? { redisUrl } : {}),
    keyPrefix: value('--prefix') ?? `wechat-dialog-bench:costs:${process.pid}:`,
  });
  if (process.send) process.send(result, () => process.exit(0));
  else {
    console.log(JSON.stringify(result, null, 2));
    process.exit(0);
  }
}
