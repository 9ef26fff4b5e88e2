/**
 * The Dockerfile and compose.yaml, without a Docker daemon (CI has none): the Dockerfile's steps
 * are run as plain commands by the interpreter in test/support/dockerfile.ts, which fails on any
 * instruction it does not understand, so this test keeps up with the Dockerfile.
 *
 * The build context is a clean copy of the repository (the files `git ls-files --cached --others
 * --exclude-standard` lists, as in the working tree, minus `.dockerignore`); each stage gets its own
 * temporary root. `RUN` steps use this machine's `sh` and npm, with Node 22 (the base image's
 * major version, from `npx -y -p node@22`) first on PATH; when that cannot be had, the machine's
 * own Node is used and a note is printed. Each stage's npm cache is seeded from this machine's
 * (hard links), standing in for the registry, so `npm ci` is fast once that cache is warm; npm runs
 * with prefer-offline, no audit, and short retry waits (a package the registry cannot serve, such as
 * an optional one this machine's network refuses, costs seconds instead of a minute).
 *
 * Then the runtime stage's CMD is started in its workdir with its ENV plus WECHAT_TOKEN, a free PORT
 * and HOST=127.0.0.1, on the in-process store and (when REDIS_URL is set) on Redis with a key prefix
 * of its own: its HEALTHCHECK command passes, it answers a signed handshake and starts the
 * accumulator dialog, and SIGTERM stops it with status 0. Processes run as the calling user, not as
 * the image's USER (which is checked to be non-root).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildDockerfile,
  cleanContext,
  containerEnv,
  dockerignoreMatcher,
  hostPath,
  parseDockerfile,
  spawnInStage,
  UnsupportedDockerfileError,
  type Stage,
} from '../support/dockerfile.js';
import { parseReply, signedQuery, textXml, TOKEN } from '../support/http.js';
import { findFreePort } from '../support/ports.js';
import { deleteRedisKeys } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Directories to put first on PATH so `node` is Node 22, as in the base image; [] (this machine's Node) when npx cannot provide it. */
function node22PathPrefix(): string[] {
  const found = spawnSync('npx', ['-y', '-p', 'node@22', 'node', '-p', 'process.execPath'], { encoding: 'utf8', timeout: 180_000 });
  const execPath = found.stdout?.trim() ?? '';
  if (found.status === 0 && execPath !== '' && existsSync(execPath)) return [dirname(execPath)];
  console.warn(`[dockerfile] Node 22 not available through npx (${found.stderr?.trim() || found.error?.message}): the steps run with this machine's Node ${process.version}`);
  return [dirname(process.execPath)];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the exit code (or signal name), or rejects after `ms`. */
function exitOf(child: ChildProcess, ms: number, what: string): Promise<number | string> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode ?? child.signalCode ?? 'unknown');
      return;
    }
    const timer = setTimeout(() => reject(new Error(`${what} did not exit within ${ms} ms`)), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? 'unknown');
    });
  });
}

describe('the Dockerfile interpreter', () => {
  it('refuses what it does not understand instead of skipping it', () => {
    for (const line of [
      'ARG NODE_VERSION=22',
      'RUN --mount=type=cache,target=/root/.npm npm ci',
      'CMD node dist/src/cli/main.js',
      'COPY --chown=node:node . .',
      'WORKDIR $HOME',
      'ENTRYPOINT ["node"]',
      'HEALTHCHECK NONE',
      'LABEL a=b',
    ]) {
      expect(() => parseDockerfile(`FROM node:22-slim\n${line}\n`), line).toThrow(UnsupportedDockerfileError);
    }
  });

  it('joins continuation lines and skips comments', () => {
    const parsed = parseDockerfile('# a comment\nFROM node:22-slim AS Build\nRUN echo a \\\n  # inside\n  && echo b\nENV A=1 B="two words"\n');
    expect(parsed).toEqual([
      { kind: 'FROM', line: 2, image: 'node:22-slim', name: 'build' },
      { kind: 'RUN', line: 3, command: 'echo a  && echo b' },
      { kind: 'ENV', line: 6, vars: { A: '1', B: 'two words' } },
    ]);
  });

  it('matches .dockerignore patterns from the context root, folders included, last rule winning', () => {
    const ignored = dockerignoreMatcher('# c\n*.log\ntest\n**/*.tmp\n.env.*\n!.env.example\n');
    expect(ignored('a.log')).toBe(true);
    expect(ignored('src/a.log')).toBe(false);
    expect(ignored('test/x/y.ts')).toBe(true);
    expect(ignored('src/test.ts')).toBe(false);
    expect(ignored('src/deep/a.tmp')).toBe(true);
    expect(ignored('.env.local')).toBe(true);
    expect(ignored('.env.example')).toBe(false);
  });
});

describe('Dockerfile, run step by step without a daemon', () => {
  let workspace = '';
  let context = '';
  let pathPrefix: string[] = [];
  let stages: Stage[] = [];
  let runtime: Stage;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    workspace = mkdtempSync(join(tmpdir(), 'dockerfile-test-'));
    context = join(workspace, 'context');
    mkdirSync(context);
    pathPrefix = node22PathPrefix();
    cleanContext(ROOT, context);
    const log: string[] = [];
    const started = Date.now();
    stages = await buildDockerfile({
      dockerfile: readFileSync(join(ROOT, 'Dockerfile'), 'utf8'),
      context,
      workspace: join(workspace, 'stages'),
      pathPrefix,
      npmCache: process.env.npm_config_cache ?? join(homedir(), '.npm'),
      runEnv: {
        npm_config_audit: 'false',
        npm_config_fund: 'false',
        npm_config_update_notifier: 'false',
        npm_config_prefer_offline: 'true',
        // A package the registry refuses (here: an optional one) is retried 2 times within seconds, not over a minute.
        npm_config_fetch_retry_mintimeout: '1000',
        npm_config_fetch_retry_maxtimeout: '3000',
        // This machine's way out to the registry (its CA certificates, a proxy), as a build on this
        // machine would get it: the registry's Node 22 does not read the system's CA store by itself.
        ...Object.fromEntries(
          ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']
            .map((name) => [name, process.env[name]])
            .filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''),
        ),
      },
      log: (line) => log.push(line),
    });
    const version = spawnSync('node', ['--version'], { env: containerEnv(stages[0] as Stage, pathPrefix), encoding: 'utf8' }).stdout.trim();
    console.log(`[dockerfile] built in ${((Date.now() - started) / 1000).toFixed(1)} s with Node ${version}:\n  ${log.join('\n  ')}`);
    runtime = stages.at(-1) as Stage;
  }, 400_000);

  afterAll(async () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
        await exitOf(child, 3_000, 'a process').catch(() => undefined);
      }
    }
    if (workspace !== '') rmSync(workspace, { recursive: true, force: true });
  }, 30_000);

  it('parses into a build stage and a runtime stage, both from node:22 slim', () => {
    const froms = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).filter((instruction) => instruction.kind === 'FROM');
    expect(froms.length).toBe(2);
    for (const from of froms) expect(from.image).toMatch(/^node:22(?:\.\d+)*-(?:bookworm-)?slim$/);
    expect(stages.map((stage) => stage.name)).toEqual(['build', 'runtime']);
  });

  it('sends a clean build context: sources, no .git, tests, .env or node_modules', () => {
    for (const present of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/cli/main.ts', 'dialogs/router.ts']) {
      expect(existsSync(join(context, present)), present).toBe(true);
    }
    for (const absent of ['.git', 'node_modules', 'dist', 'test', '.env']) expect(existsSync(join(context, absent)), absent).toBe(false);
  });

  it('leaves an image with dist/, production dependencies only and no npm cache', () => {
    const app = hostPath(runtime.root, runtime.workdir);
    expect(runtime.workdir).toBe('/app');
    expect(runtime.env.NODE_ENV).toBe('production');
    expect(existsSync(join(app, 'dist/src/cli/main.js'))).toBe(true);
    expect(existsSync(join(app, 'dist/dialogs/router.js'))).toBe(true);
    expect(existsSync(join(app, 'src')), 'the TypeScript sources stay in the build stage').toBe(false);
    for (const name of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', name)), `dependency ${name}`).toBe(true);
    for (const name of Object.keys(pkg.devDependencies)) expect(existsSync(join(app, 'node_modules', name)), `devDependency ${name}`).toBe(false);
    expect(existsSync(join(app, 'node_modules/typescript'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/vitest'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/.bin/tsc'))).toBe(false);
    const npmCache = hostPath(runtime.root, '/root/.npm/_cacache');
    expect(existsSync(npmCache) ? readdirSync(npmCache) : [], 'npm cache left in the image').toEqual([]);
  });

  it('runs as a non-root user, exposes 3000, has a HEALTHCHECK and an exec-form CMD', () => {
    expect(runtime.user).not.toMatch(/^(?:root|0)(?::|$)/);
    expect(runtime.user).toBe('node');
    expect(runtime.exposed).toContain('3000');
    expect(runtime.healthcheck?.command).toEqual(['node', 'dist/src/cli/main.js', 'healthcheck']);
    expect(runtime.cmd).toEqual(['node', 'dist/src/cli/main.js', 'serve', '--router', 'dist/dialogs/router.js']);
  });

  /**
   * Starts the CMD with `extra` env, checks HEALTHCHECK, the handshake and a first turn, then
   * SIGTERM; `during` runs while it is up. Returns the server's output.
   */
  async function exercise(extra: Record<string, string>, during: () => Promise<void> = async () => {}): Promise<string> {
    const port = await findFreePort();
    const env = containerEnv(runtime, pathPrefix, { WECHAT_TOKEN: TOKEN, PORT: String(port), HOST: '127.0.0.1', ...extra });
    const url = `http://127.0.0.1:${port}/wechat`;
    const server = spawnInStage(runtime, runtime.cmd ?? [], env, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(server);
    let output = '';
    server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const healthcheck = async (): Promise<number | string> => {
      const check = spawnInStage(runtime, runtime.healthcheck?.command ?? [], env, { stdio: 'ignore', detached: true });
      children.add(check);
      return exitOf(check, 10_000, 'HEALTHCHECK');
    };

    // Wait until it listens, as Docker's start period does.
    const echostr = randomBytes(8).toString('hex');
    const handshake = `${url}${signedQuery(undefined, TOKEN)}&echostr=${echostr}`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`the server exited (${server.exitCode}):\n${output}`);
      const answered = await fetch(handshake, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text(), () => undefined);
      if (answered !== undefined) {
        expect(answered, 'signed GET handshake').toBe(echostr);
        break;
      }
      if (Date.now() > deadline) throw new Error(`the server did not listen within 20 s:\n${output}`);
      await sleep(100);
    }

    expect(await healthcheck(), `HEALTHCHECK while up; server output:\n${output}`).toBe(0);

    const openid = `o_docker_${randomBytes(4).toString('hex')}`;
    const response = await fetch(`${url}${signedQuery(openid, TOKEN)}`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body: textXml(openid, '累加器'),
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.status).toBe(200);
    const reply = parseReply(await response.text());
    expect(reply.ToUserName).toBe(openid);
    expect(reply.Content).toContain('您需要累加几个数字？');

    await during();

    server.kill('SIGTERM');
    expect(await exitOf(server, 15_000, 'the server after SIGTERM'), `output:\n${output}`).toBe(0);
    expect(await healthcheck(), 'HEALTHCHECK once stopped').toBe(1);
    return output;
  }

  it('serves on the in-process store: HEALTHCHECK, handshake, a first turn, SIGTERM exits 0', async () => {
    const output = await exercise({});
    expect(output).toContain('REDIS_URL is not set');
  }, 60_000);

  it.runIf(process.env.REDIS_URL)('serves with REDIS_URL, keeping the dialog in Redis under its key prefix', async () => {
    const redisUrl = process.env.REDIS_URL ?? '';
    const prefix = `dockerfile-test-${randomBytes(6).toString('hex')}:`;
    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    try {
      const output = await exercise({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix }, async () => {
        const [, keys] = await redis.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000);
        expect(keys.length, 'dialog keys in Redis under the prefix').toBeGreaterThan(0);
      });
      expect(output).not.toContain('REDIS_URL is not set');
    } finally {
      await deleteRedisKeys(redis, prefix);
      redis.disconnect();
    }
  }, 60_000);
});

/** The subset of YAML compose.yaml uses: block mappings, block sequences of scalars, JSON-like flow sequences, comments. */
type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

function scalar(text: string, line: number): Yaml {
  const value = text.trim();
  if (value === '') return null;
  if (value.startsWith('[')) {
    try {
      return JSON.parse(value) as Yaml[];
    } catch {
      throw new Error(`compose.yaml line ${line}: flow sequence ${value} is not JSON-like`);
    }
  }
  if (/^["']/.test(value)) {
    const quote = value[0] ?? '';
    if (!value.endsWith(quote) || value.length < 2) throw new Error(`compose.yaml line ${line}: unterminated quote`);
    return value.slice(1, -1);
  }
  if (/^[&*!|>{@`%]/.test(value) || /\s#/.test(value) || /:\s/.test(value)) throw new Error(`compose.yaml line ${line}: ${value} is outside the YAML subset checked here`);
  return value;
}

/** Parses `text` (the subset above) or throws, naming the line. */
function parseYamlSubset(text: string): Yaml {
  const lines = text
    .split('\n')
    .map((raw, index) => ({ raw, line: index + 1 }))
    .filter(({ raw }) => raw.trim() !== '' && !raw.trim().startsWith('#'));
  for (const { raw, line } of lines) if (/^\s*\t/.test(raw)) throw new Error(`compose.yaml line ${line}: a tab in the indentation`);
  let position = 0;
  const indentOf = (raw: string): number => raw.length - raw.trimStart().length;
  function block(indent: number): Yaml {
    const first = lines[position];
    if (first === undefined) return null;
    const isSequence = first.raw.trimStart().startsWith('- ');
    const map: Record<string, Yaml> = {};
    const list: Yaml[] = [];
    while (position < lines.length) {
      const { raw, line } = lines[position] as { raw: string; line: number };
      const own = indentOf(raw);
      if (own < indent) break;
      if (own > indent) throw new Error(`compose.yaml line ${line}: unexpected indentation`);
      const content = raw.trim();
      if (isSequence) {
        if (!content.startsWith('- ')) throw new Error(`compose.yaml line ${line}: expected a list item`);
        list.push(scalar(content.slice(2), line));
        position += 1;
        continue;
      }
      const match = /^([A-Za-z0-9_.-]+):(?:\s+(.*))?$/.exec(content);
      if (!match) throw new Error(`compose.yaml line ${line}: expected key: value, got ${content}`);
      const key = match[1] ?? '';
      if (key in map) throw new Error(`compose.yaml line ${line}: duplicate key ${key}`);
      position += 1;
      if (match[2] !== undefined && match[2].trim() !== '') map[key] = scalar(match[2], line);
      else {
        const next = lines[position];
        map[key] = next !== undefined && indentOf(next.raw) > indent ? block(indentOf(next.raw)) : null;
      }
    }
    return isSequence ? list : map;
  }
  const document = block(0);
  if (position !== lines.length) throw new Error(`compose.yaml line ${lines[position]?.line}: not parsed`);
  return document;
}

function asMap(value: Yaml | undefined, what: string): Record<string, Yaml> {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what} is not a mapping`);
  return value;
}

describe('compose.yaml', () => {
  /** The parsed file, its services, and the names of the Redis service and of the one built here. */
  function load() {
    const compose = asMap(parseYamlSubset(readFileSync(join(ROOT, 'compose.yaml'), 'utf8')), 'compose.yaml');
    const services = asMap(compose.services, 'services');
    const redisName = Object.keys(services).find((name) => String(asMap(services[name], name).image ?? '').startsWith('redis:'));
    const serverName = Object.keys(services).find((name) => asMap(services[name], name).build !== undefined);
    return { compose, services, redisName, serverName };
  }

  it('runs Redis 7 with a ping healthcheck, append-only on a named volume', () => {
    const { compose, services, redisName } = load();
    expect(redisName).toBeDefined();
    const redis = asMap(services[redisName ?? ''], 'redis');
    expect(redis.image).toMatch(/^redis:7(?:[.-]|$)/);
    expect(JSON.stringify(redis.command)).toMatch(/--appendonly",\s*"yes"|appendonly yes/);
    expect((asMap(redis.healthcheck, 'redis healthcheck').test as string[]).join(' ')).toContain('redis-cli ping');
    const volumes = redis.volumes as string[];
    const named = volumes.map((volume) => volume.split(':')[0] ?? '').find((source) => /^[A-Za-z0-9][\w.-]*$/.test(source));
    expect(named, 'a named volume for /data').toBeDefined();
    expect(Object.keys(asMap(compose.volumes, 'volumes'))).toContain(named);
    expect(volumes.some((volume) => volume.endsWith(':/data'))).toBe(true);
  });

  it('builds the server from the Dockerfile, with WECHAT_TOKEN from the environment and REDIS_URL at that Redis', () => {
    const { services, redisName, serverName } = load();
    expect(serverName).toBeDefined();
    const server = asMap(services[serverName ?? ''], 'server');
    expect(server.build).toBe('.');
    expect(server.ports).toContain('3000:3000');
    expect(server.restart).toBe('unless-stopped');
    const environment = asMap(server.environment, 'server environment');
    expect(environment.WECHAT_TOKEN).toMatch(/^\$\{WECHAT_TOKEN(?::?[?-].*)?\}$/);
    expect(environment.REDIS_URL).toBe(`redis://${redisName}:6379/0`);
    expect(asMap(asMap(server.depends_on, 'depends_on')[redisName ?? ''], 'depends_on redis').condition).toBe('service_healthy');
  });
});
