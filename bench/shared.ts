/**
 * What every part of the bench agrees on: the Token, the account, the security-mode keys, the
 * fixed reply of the stateless rows, and the shape of a row's measurement.
 */

/** The Token every server row is configured with (3 to 32 letters or digits). */
export const BENCH_TOKEN = 'benchtoken2024';
/** The account's original id (`ToUserName` of every push). */
export const BENCH_ACCOUNT = 'gh_be0c0000000a';
/** Security mode: the AppID and EncodingAESKey (43 letters or digits) of the encrypted row. */
export const BENCH_APPID = 'wxbench0000000001';
export const BENCH_AES_KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
/** The text the bare Express and `wechat` rows reply to every push. */
export const FIXED_TEXT = '收到，谢谢！';
/** The full reply XML the bare Express row sends (addressed to one made-up user). */
export const FIXED_REPLY_XML =
  `<xml><ToUserName><![CDATA[oBenchFixedReplyUser00000000]]></ToUserName><FromUserName><![CDATA[${BENCH_ACCOUNT}]]></FromUserName>` +
  `<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${FIXED_TEXT}]]></Content></xml>`;

/** Phases and durations of one load run, in **seconds**. */
export interface LoadPlan {
  readonly connections: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  /** Openids walking the accumulator in one row (at least connections; 1,024 in a full run). */
  readonly users: number;
}

/** One row of the HTTP table, as measured. */
export interface RowResult {
  readonly id: string;
  readonly label: string;
  /** `ok`, `FAILED` (a wrong reply, a non-200, a connection error or nothing answered) or `SKIPPED`. */
  readonly status: 'ok' | 'FAILED' | 'SKIPPED';
  /** Why the row failed or was skipped. */
  readonly reason?: string;
  /** Responses in the measured window (autocannon's total), and how many of them were checked. */
  readonly requests: number;
  readonly checked: number;
  readonly seconds: number;
  readonly reqPerSec: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  /** Connection errors and timeouts (autocannon), non-200 answers, 200 answers with the wrong reply. */
  readonly errors: number;
  readonly timeouts: number;
  readonly non200: number;
  readonly wrong: number;
  /** Up to three wrong replies, for the log: what was expected and what came. */
  readonly wrongSamples: readonly string[];
  /** The server's processes' user+system CPU over the measured window, **milliseconds** per request. */
  readonly serverCpuMsPerReq: number;
  /** Redis's own CPU (`INFO cpu`, the whole Redis server) over the window, ms per request; Redis rows only. */
  readonly redisCpuMsPerReq?: number;
  /** The load generator's CPU (the bench's main process) over the window, ms per request. */
  readonly loadCpuMsPerReq: number;
  /** CPU used by everything else on the machine during the window, in **cores** (other helpers' work). */
  readonly otherCores: number;
  /** Whole-machine CPU busy during the window, percent of all cores. */
  readonly machineBusyPct: number;
  /** req/s over the bare Express row's req/s (filled in after all rows ran). */
  ratio?: number;
  /**
   * Every measurement of this row when it was measured more than once (other processes were busy
   * during the first): the row keeps the one with the least other load, unless one FAILED.
   */
  attempts?: ReadonlyArray<{ readonly reqPerSec: number; readonly p99: number; readonly otherCores: number; readonly status: string }>;
}
