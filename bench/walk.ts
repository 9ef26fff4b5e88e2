/**
 * The load: openids walking the demo accumulator (`累加器`, a count, then that many numbers), each
 * push signed as WeChat signs it (and in security mode encrypted), and every reply checked.
 *
 * A user is in at most one request at a time: autocannon's `setupRequest` takes the user at the
 * head of a FIFO queue and its `onResponse` puts it back at the tail, so each user's messages are
 * sent one after another, in order, and each turn sees the state the previous one left. With
 * 1,024 users and 32 connections a user sends about every 32nd request of the run. A user whose
 * reply was wrong, whose answer was not 200, or whose request was still in flight when a run
 * stopped is retired and replaced by a fresh openid (its state is no longer known).
 *
 * The walk of one user: `累加器` (a starting turn), the count 8, then 8 numbers (the last one ends
 * the dialog), then again: 10 turns, 8 of them continuing ones.
 */
import { randomBytes } from 'node:crypto';
import type autocannon from 'autocannon';
import { computeMsgSignature, decryptMessage, encryptMessage, parseEncodingAESKey, verifyMsgSignature } from '../src/wechat/crypto.js';
import { computeSignature } from '../src/wechat/signature.js';
import { BENCH_ACCOUNT, BENCH_AES_KEY, BENCH_APPID, BENCH_TOKEN, FIXED_TEXT } from './shared.js';

/** How many numbers each walk adds. */
export const NUMBERS_PER_WALK = 8;

/** The accumulator's replies (dialogs/accumulator.ts). */
const ASK_COUNT = '您需要累加几个数字？';
const askNumber = (i: number, sum: number): string => `请输入第${i}个数字, 目前累加和:${sum}`;
const finished = (sum: number): string => `累加结束，累加和: ${sum}`;

/** One walking user. `step` 0 sends `累加器`, 1 the count, 2…9 the numbers. */
interface User {
  openid: string;
  step: number;
  sum: number;
}

/** What a row checks in each 200 answer. */
export type ReplyCheck =
  /** The accumulator's next reply, addressed to the user (this server's rows). */
  | 'dialog'
  /** The fixed text, addressed to the user (the `wechat` middleware row). */
  | 'fixed-addressed'
  /** The fixed text (the bare Express row, whose reply is the same bytes for everyone). */
  | 'fixed';

export interface WalkOptions {
  readonly users: number;
  readonly check: ReplyCheck;
  /** Encrypt pushes (安全模式) and expect encrypted, signed replies. */
  readonly encrypted: boolean;
  /** Distinguishes this row's openids from every other row's and run's: letters and digits, at most 18. */
  readonly tag: string;
}

/** What the checks found. */
export interface WalkCounts {
  checked: number;
  wrong: number;
  non200: number;
  retired: number;
  readonly wrongSamples: string[];
}

interface PushContext {
  user?: User;
  expected?: string;
  /** `performance.now()` when the push was set up, just before autocannon writes it. */
  sentAt?: number;
}

// A MsgId is a 64-bit number; these start at a random point above 2^62 (far above 2^53, so a
// JavaScript number could not hold them exactly) and are unique within the run.
let lastMsgId = (1n << 62n) + (randomBytes(8).readBigUInt64BE() % (1n << 60n));
let nonceCounter = randomBytes(4).readUInt32BE() % 1_000_000_000;

/** The accumulator walk of a set of users, as autocannon request hooks. */
export class Walk {
  readonly counts: WalkCounts = { checked: 0, wrong: 0, non200: 0, retired: 0, wrongSamples: [] };
  /**
   * Latency of every answered push, **milliseconds**, from its setup (just before the write) to the
   * end of its answer: autocannon's own histogram has whole milliseconds only. Pushes set up while
   * `timing` is false (the first push of each connection, built before it connects) are not timed.
   */
  latencies: number[] = [];
  timing = false;
  private readonly queue: User[] = [];
  private head = 0;
  private readonly inFlight = new Set<User>();
  private created = 0;
  private readonly key = parseEncodingAESKey(BENCH_AES_KEY);

  constructor(private readonly options: WalkOptions) {
    for (let i = 0; i < options.users; i += 1) this.queue.push(this.freshUser());
  }

  /** Users whose request was still in flight when a run stopped are retired: their state is unknown. */
  retireInFlight(): void {
    for (const user of this.inFlight) this.retire(user);
    this.inFlight.clear();
  }

  /** The autocannon `requests` entry: one request, set up anew for every push. */
  request(path: string): autocannon.Request {
    return {
      method: 'POST',
      path,
      setupRequest: (req, context) => this.setup(req, context as PushContext, path),
      onResponse: (status, body, context) => this.answer(status, body, context as PushContext),
    };
  }

  private freshUser(): User {
    // Openids are 28 characters of [A-Za-z0-9_-] in WeChat; these are as long, and unique per run
    // (the tag is unique per row and run, the counter per user).
    this.created += 1;
    const openid = `oB${this.options.tag}${String(this.created).padStart(Math.max(8, 26 - this.options.tag.length), '0')}`;
    return { openid, step: 0, sum: 0 };
  }

  /** Replaces `user`, whose dialog state is not known any more, by a fresh openid. */
  private retire(user: User): void {
    this.counts.retired += 1;
    user.step = -1; // never used again
    this.queue.push(this.freshUser());
  }

  private take(): User {
    // Empty only when requests were lost (a connection error: autocannon reconnects and sends the
    // next push without an answer to the last one); that shows as errors, the walk goes on.
    if (this.head >= this.queue.length) this.queue.push(this.freshUser());
    const user = this.queue[this.head]!;
    this.head += 1;
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return user;
  }

  private setup(req: autocannon.Request, context: PushContext, path: string): autocannon.Request {
    const user = this.take();
    this.inFlight.add(user);
    let content: string;
    let expected: string;
    if (user.step === 0) {
      content = '累加器';
      expected = ASK_COUNT;
    } else if (user.step === 1) {
      content = String(NUMBERS_PER_WALK);
      expected = askNumber(1, 0);
    } else {
      const i = user.step - 1; // 1-based number index
      const value = Number(lastMsgId % 199n) - 99; // a small integer, negative or positive
      content = String(value);
      user.sum += value;
      expected = i < NUMBERS_PER_WALK ? askNumber(i + 1, user.sum) : finished(user.sum);
    }
    user.step = user.step === NUMBERS_PER_WALK + 1 ? 0 : user.step + 1;
    if (user.step === 0) user.sum = 0;
    context.user = user;
    if (this.timing) context.sentAt = performance.now();
    context.expected = this.options.check === 'dialog' ? expected : FIXED_TEXT;

    lastMsgId += 1n;
    const now = Math.floor(Date.now() / 1000);
    const timestamp = String(now);
    nonceCounter = (nonceCounter + 1) % 2_000_000_000;
    const nonce = String(nonceCounter + 100_000_000);
    const xml =
      `<xml><ToUserName><![CDATA[${BENCH_ACCOUNT}]]></ToUserName><FromUserName><![CDATA[${user.openid}]]></FromUserName>` +
      `<CreateTime>${now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${content}]]></Content>` +
      `<MsgId>${lastMsgId}</MsgId></xml>`;
    const signature = computeSignature(BENCH_TOKEN, timestamp, nonce);
    let query = `?signature=${signature}&timestamp=${timestamp}&nonce=${nonce}&openid=${user.openid}`;
    let body = xml;
    if (this.options.encrypted) {
      const encrypt = encryptMessage({ key: this.key, appId: BENCH_APPID, plaintext: xml });
      query += `&encrypt_type=aes&msg_signature=${computeMsgSignature(BENCH_TOKEN, timestamp, nonce, encrypt)}`;
      body = `<xml><ToUserName><![CDATA[${BENCH_ACCOUNT}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
    }
    req.path = `${path}${query}`;
    req.body = body;
    req.headers = { 'Content-Type': 'text/xml' }; // autocannon adds Content-Length
    return req;
  }

  private answer(status: number, body: string, context: PushContext): void {
    const user = context.user;
    if (user === undefined) return;
    if (context.sentAt !== undefined) this.latencies.push(performance.now() - context.sentAt);
    this.inFlight.delete(user);
    this.counts.checked += 1;
    if (status !== 200) {
      this.counts.non200 += 1;
      this.sample(`HTTP ${status}: ${body.slice(0, 120)}`);
      this.retire(user);
      return;
    }
    const problem = this.problem(body, user.openid, context.expected ?? '');
    if (problem !== undefined) {
      this.counts.wrong += 1;
      this.sample(problem);
      this.retire(user);
      return;
    }
    this.queue.push(user);
  }

  private sample(line: string): void {
    if (this.counts.wrongSamples.length < 3) this.counts.wrongSamples.push(line);
  }

  /** What is wrong with the answer, or undefined when it is the expected reply. */
  private problem(body: string, openid: string, expected: string): string | undefined {
    let xml = body;
    if (this.options.encrypted) {
      const encrypt = cdataOf(body, 'Encrypt');
      const msgSignature = cdataOf(body, 'MsgSignature');
      const nonce = cdataOf(body, 'Nonce');
      const timestamp = /<TimeStamp>(\d+)<\/TimeStamp>/.exec(body)?.[1];
      if (encrypt === undefined || msgSignature === undefined || nonce === undefined || timestamp === undefined) {
        return `not an encrypted reply: ${body.slice(0, 120)}`;
      }
      if (!verifyMsgSignature({ token: BENCH_TOKEN, timestamp, nonce, encrypt, msgSignature })) return 'the reply\'s MsgSignature is wrong';
      try {
        xml = decryptMessage({ key: this.key, appId: BENCH_APPID, encrypt });
      } catch (err) {
        return `the reply does not decrypt: ${String(err)}`;
      }
    }
    const content = cdataOf(xml, 'Content');
    if (content !== expected) return `expected ${JSON.stringify(expected)}, got ${JSON.stringify(content ?? xml.slice(0, 120))}`;
    if (this.options.check !== 'fixed') {
      const to = cdataOf(xml, 'ToUserName');
      if (to !== openid) return `reply addressed to ${JSON.stringify(to)}, not the user ${openid}`;
    }
    return undefined;
  }
}

/** The `p`th percentile (0 to 100) of `values` (sorted here), nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The text of `<name><![CDATA[…]]></name>` (one section), or undefined. */
function cdataOf(xml: string, name: string): string | undefined {
  const open = `<${name}><![CDATA[`;
  const start = xml.indexOf(open);
  if (start < 0) return undefined;
  const from = start + open.length;
  const end = xml.indexOf(`]]></${name}>`, from);
  return end < 0 ? undefined : xml.slice(from, end);
}
