/**
 * The package as a user gets it: `npm pack` (of the `dist/` the global setup built), installed into
 * an empty project with `npm install ./the.tgz express`, and used there from plain ESM JavaScript,
 * from TypeScript (`moduleResolution` `node16` and `bundler`), mounted in a host Express app, and
 * through its `bin`. The project lives in a temporary folder outside this repository, so nothing
 * resolves to this repository's own `node_modules`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReply, signedQuery, textXml } from '../support/http.js';
import { findFreePort } from '../support/ports.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = 'packtoken123';
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };

/** npm, run with the Node that runs the tests (so CI's Node 22 and 24 runs install and run with that Node). */
async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' }, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** The host app of a team that already runs Express: routes before and after, JSON and text parsers, its own 404. */
const HOST_APP = `
import express from 'express';
import { wechatDialog, defineDialog, createRouter, text } from '${pkg.name}';

const counter = defineDialog('counter', function* () {
  const first = yield text('第一步：请回复任意内容');
  return text('第二步：收到 ' + (first.MsgType === 'text' ? first.Content : first.MsgType));
});
const router = createRouter({ routes: [{ match: { text: '开始' }, dialog: counter }], fallback: null });

const app = express();
app.use(express.json());
app.use(express.text({ type: 'text/*' }));
app.get('/health', (req, res) => res.json({ ok: true }));
app.use('/wx', wechatDialog({ token: process.env.WECHAT_TOKEN, router, logger: { info() {}, warn() {}, error(fields, msg) { console.error(msg); } } }));
app.post('/api/items', (req, res) => res.status(201).json({ got: req.body }));
app.use((req, res) => res.status(404).json({ host404: req.path }));
const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('host listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/** Every name the issue asks the main entry and `/testing` to export, used from plain JavaScript. */
const ESM_IMPORTS = `
import * as main from '${pkg.name}';
import { createConversation } from '${pkg.name}/testing';
const names = ['wechatDialog', 'defineDialog', 'createRouter', 'route', 'record', 'handBack', 'text', 'image', 'voice', 'video',
  'music', 'news', 'transferCustomerService', 'MemoryStore', 'RedisStore', 'createRedisClient'];
const missing = names.filter((name) => typeof main[name] !== 'function');
if (missing.length > 0) throw new Error('missing exports: ' + missing.join(', '));
const hello = main.defineDialog('hello', function* () { return main.text('你好'); });
const chat = createConversation({ router: main.createRouter({ routes: [], fallback: hello }) });
const reply = await chat.say('hi');
await chat.close();
console.log(JSON.stringify(reply));
`;

/** A TypeScript consumer: typed dialogs, route(), the middleware in Express's own types, the testing entry. */
const TS_CONSUMER = `
import express from 'express';
import {
  wechatDialog, defineDialog, createRouter, route, record, handBack, text, news, MemoryStore,
  type ClickEvent, type Reply, type WechatDialogOptions,
} from '${pkg.name}';
import { createConversation } from '${pkg.name}/testing';

const today = defineDialog('today', function* (first: ClickEvent) {
  const at: number = yield* record(() => Date.now());
  const answer = yield text('你点了 ' + first.EventKey + ' at ' + at);
  if (answer.MsgType !== 'text') return handBack();
  return news([{ Title: answer.Content, Description: 'd', PicUrl: 'https://p', Url: 'https://u' }]);
});
const router = createRouter({ routes: [route({ event: 'CLICK', eventKey: 'TODAY' }, today)], fallback: null });
const options: WechatDialogOptions = { token: 'abc123', router, store: new MemoryStore(), ttlSeconds: 60 };
const app = express();
app.use('/wechat', wechatDialog(options));
const chat = createConversation({ router });
const reply: Reply | undefined = await chat.click('TODAY');
void reply;
`;

function tsconfig(moduleResolution: 'node16' | 'bundler'): string {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: moduleResolution === 'node16' ? 'node16' : 'ESNext',
      moduleResolution,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ['node'],
    },
    files: ['consumer.ts'],
  });
}

describe(`the packed ${pkg.name}, installed into an empty project`, () => {
  let dir: string;
  let tarball: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wechat-dialog-pack-'));
    // dist/ was built by the global setup; prepack would build it again under running tests.
    const packed = JSON.parse(await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(dir, packed[0]!.filename);
    writeFileSync(join(dir, 'files.json'), JSON.stringify(packed[0]!.files.map((f) => f.path)));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await npm(['install', tarball, 'express@5', 'typescript@5.9', '@types/express@5', '@types/node@22'], dir);
  }, 180_000);

  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('ships the built code and type declarations, not the tests, the demo or the TypeScript sources', () => {
    const files = JSON.parse(readFileSync(join(dir, 'files.json'), 'utf8')) as string[];
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/testing/index.d.ts', 'dist/src/cli/main.js']));
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('dist/dialogs/') || f.startsWith('src/') || f.endsWith('.test.js'))).toEqual([]);
  });

  it('imports from plain ESM JavaScript: every entry the issue names, and createConversation from /testing', async () => {
    writeFileSync(join(dir, 'imports.mjs'), ESM_IMPORTS);
    const { stdout } = await run(process.execPath, ['imports.mjs'], { cwd: dir });
    expect(JSON.parse(stdout.trim())).toEqual({ MsgType: 'text', Content: '你好' });
  });

  it.each(['node16', 'bundler'] as const)('typechecks a TypeScript consumer with moduleResolution %s', async (moduleResolution) => {
    writeFileSync(join(dir, 'consumer.ts'), TS_CONSUMER);
    writeFileSync(join(dir, `tsconfig.${moduleResolution}.json`), tsconfig(moduleResolution));
    const result = await run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', `tsconfig.${moduleResolution}.json`], { cwd: dir }).catch(
      (err: { stdout?: string }) => ({ stdout: `FAILED\n${err.stdout ?? ''}` }),
    );
    expect(result.stdout).toBe('');
  }, 60_000);

  /** Starts `args` with `node` in the project and resolves once `ready` appears in its output. */
  async function start(args: string[], env: Record<string, string>, ready: string): Promise<{ child: ChildProcess; output: () => string }> {
    const child = spawn(process.execPath, args, { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 20_000;
    while (!output.includes(ready)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`not ready (${String(child.exitCode)}):\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { child, output: () => output };
  }

  async function stop(child: ChildProcess): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    return exited;
  }

  it("mounted at /wx in a host app: the handshake, a two-turn dialog, and the host's routes, parsers and 404", async () => {
    writeFileSync(join(dir, 'host.mjs'), HOST_APP);
    const port = await findFreePort();
    const host = await start(['host.mjs'], { WECHAT_TOKEN: TOKEN, PORT: String(port) }, 'host listening');
    const base = `http://127.0.0.1:${port}`;
    const handshake = new URLSearchParams(signedQuery(undefined, TOKEN).slice(1));
    handshake.set('echostr', 'packed-echo');
    expect(await (await fetch(`${base}/wx?${handshake.toString()}`)).text()).toBe('packed-echo');
    const openid = 'oPacked00000000000000000001';
    const say = async (content: string) => {
      const response = await fetch(`${base}/wx${signedQuery(openid, TOKEN)}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: textXml(openid, content) });
      expect(response.status).toBe(200);
      return parseReply(await response.text()).Content;
    };
    expect(await say('开始')).toBe('第一步：请回复任意内容');
    expect(await say('好的')).toBe('第二步：收到 好的');
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ ok: true });
    const created = await fetch(`${base}/api/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });
    expect(created.status).toBe(201);
    expect(await created.json()).toEqual({ got: { n: 1 } });
    for (const path of ['/nowhere', '/wx/deeper']) {
      const missing = await fetch(`${base}${path}`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ host404: path });
    }
    expect(await stop(host.child)).toBe(0);
    expect(host.output()).not.toMatch(/error/i);
  }, 30_000);

  it('its bin serves a router module of the project and answers the handshake (a production install from the tarball)', async () => {
    writeFileSync(
      join(dir, 'router.mjs'),
      `import { createRouter, defineDialog, text } from '${pkg.name}';\nexport const router = createRouter({ routes: [], fallback: defineDialog('hi', function* () { return text('hi'); }) });\n`,
    );
    const port = await findFreePort();
    const server = await start(['node_modules/.bin/wechat-dialog', 'serve', '--router', './router.mjs'], { WECHAT_TOKEN: TOKEN, PORT: String(port), HOST: '127.0.0.1' }, 'listening on');
    const handshake = new URLSearchParams(signedQuery(undefined, TOKEN).slice(1));
    handshake.set('echostr', 'bin-echo');
    expect(await (await fetch(`http://127.0.0.1:${port}/wechat?${handshake.toString()}`)).text()).toBe('bin-echo');
    const { stdout } = await run(process.execPath, ['node_modules/.bin/wechat-dialog', '--version'], { cwd: dir });
    expect(stdout.trim()).toBe(pkg.version);
    expect(await stop(server.child)).toBe(0);
  }, 30_000);
});
