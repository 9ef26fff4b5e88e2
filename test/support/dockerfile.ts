/**
 * A small interpreter of a Dockerfile, for testing one where there is no Docker daemon: it parses
 * the file and executes its stages as plain commands on this machine.
 *
 * - Each stage gets its own directory as its root file system; container paths (`/app`, `/root`)
 *   map into it. The base image contributes nothing but its name: the tools (`sh`, `node`, `npm`)
 *   are this machine's, found on `PATH` (put the Node version of the base image first with
 *   {@link BuildOptions.pathPrefix}).
 * - `COPY` copies from the build context (a directory: see {@link cleanContext}, which honours
 *   `.dockerignore`) or, with `--from=<stage>`, from an earlier stage's root.
 * - `RUN` (shell form) runs `sh -c <command>` in the stage's working directory with the stage's
 *   `ENV`, `HOME` set to the user's home inside the stage root, and `PATH` from this machine. The
 *   commands are not confined to the stage root: an absolute path in a `RUN` is this machine's.
 * - `USER`, `EXPOSE`, `HEALTHCHECK` and `CMD` are recorded, for the caller to check and run
 *   (processes run as the calling user, whatever `USER` says).
 *
 * Any instruction, flag or syntax it does not understand (ARG, `$VAR` substitution, `RUN --mount`,
 * shell-form CMD, a `COPY --from` an external image, …) throws, so a test using it keeps up with the
 * Dockerfile instead of passing over what it cannot check.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, join, posix } from 'node:path';

/** One instruction, with its 1-based line number in the Dockerfile. */
export type Instruction =
  | { readonly kind: 'FROM'; readonly line: number; readonly image: string; readonly name?: string }
  | { readonly kind: 'WORKDIR'; readonly line: number; readonly path: string }
  | { readonly kind: 'COPY'; readonly line: number; readonly from?: string; readonly sources: readonly string[]; readonly dest: string }
  | { readonly kind: 'RUN'; readonly line: number; readonly command: string }
  | { readonly kind: 'ENV'; readonly line: number; readonly vars: Readonly<Record<string, string>> }
  | { readonly kind: 'USER'; readonly line: number; readonly user: string }
  | { readonly kind: 'EXPOSE'; readonly line: number; readonly ports: readonly string[] }
  | { readonly kind: 'HEALTHCHECK'; readonly line: number; readonly options: Readonly<Record<string, string>>; readonly command: readonly string[] }
  | { readonly kind: 'CMD'; readonly line: number; readonly command: readonly string[] };

/** A Dockerfile construct this interpreter does not handle. */
export class UnsupportedDockerfileError extends Error {
  constructor(line: number, message: string) {
    super(`Dockerfile line ${line}: ${message} (not supported by test/support/dockerfile.ts: extend it)`);
    this.name = 'UnsupportedDockerfileError';
  }
}

/** `["a", "b"]` → the strings; throws unless it is a JSON array of strings (the exec form). */
function execForm(text: string, line: number, what: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UnsupportedDockerfileError(line, `${what} in shell form (${text}): only the exec form ["…", "…"] is supported`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((part) => typeof part === 'string')) {
    throw new UnsupportedDockerfileError(line, `${what} ${text} is not a non-empty array of strings`);
  }
  return parsed as string[];
}

/** Leading `--name=value` flags of `rest`, and what follows them. */
function splitFlags(rest: string): { flags: Record<string, string>; remainder: string } {
  const flags: Record<string, string> = {};
  let remainder = rest.trim();
  for (let match = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(remainder); match; match = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(remainder)) {
    flags[match[1] ?? ''] = match[2] ?? '';
    remainder = remainder.slice(match[0].length);
  }
  return { flags, remainder };
}

function noFlags(flags: Record<string, string>, allowed: readonly string[], line: number, keyword: string): void {
  for (const name of Object.keys(flags)) {
    if (!allowed.includes(name)) throw new UnsupportedDockerfileError(line, `${keyword} --${name}`);
  }
}

/** `KEY=value KEY2="two words"` (the key=value form of ENV; values may be double-quoted). */
function parseEnv(rest: string, line: number): Record<string, string> {
  const vars: Record<string, string> = {};
  const pattern = /\s*([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"'\\]*)/y;
  let index = 0;
  const text = rest.trim();
  while (index < text.length) {
    pattern.lastIndex = index;
    const match = pattern.exec(text);
    if (!match) throw new UnsupportedDockerfileError(line, `ENV ${text}: only KEY=value pairs (values bare or double-quoted) are supported`);
    const raw = match[2] ?? '';
    vars[match[1] ?? ''] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    index = pattern.lastIndex;
  }
  if (Object.keys(vars).length === 0) throw new UnsupportedDockerfileError(line, 'ENV with no KEY=value');
  return vars;
}

/**
 * Parses a Dockerfile into instructions: comments, line continuations (`\`), and the instructions
 * listed in {@link Instruction}. Throws {@link UnsupportedDockerfileError} on anything else.
 */
export function parseDockerfile(text: string): Instruction[] {
  const lines = text.split('\n');
  const instructions: Instruction[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const line = i + 1;
    const first = (lines[i] ?? '').trim();
    if (first === '' || first.startsWith('#')) {
      if (/^#\s*escape\s*=/i.test(first)) throw new UnsupportedDockerfileError(line, 'the escape parser directive');
      continue;
    }
    // Join continuation lines; comment and blank lines inside a continuation are dropped, as Docker does.
    let logical = first;
    while (logical.endsWith('\\')) {
      logical = logical.slice(0, -1);
      i += 1;
      if (i >= lines.length) break;
      const next = (lines[i] ?? '').trim();
      if (next.startsWith('#') || next === '') {
        logical += '\\';
        continue;
      }
      logical += ` ${next}`;
    }
    const match = /^(\S+)\s*(.*)$/s.exec(logical.trim());
    const keyword = (match?.[1] ?? '').toUpperCase();
    const rest = (match?.[2] ?? '').trim();
    if (keyword !== 'RUN' && rest.includes('$')) throw new UnsupportedDockerfileError(line, `variable substitution in ${keyword} ${rest}`);
    const { flags, remainder } = splitFlags(rest);
    switch (keyword) {
      case 'FROM': {
        noFlags(flags, [], line, keyword);
        const parts = remainder.split(/\s+/);
        if (parts.length === 1 && parts[0]) instructions.push({ kind: 'FROM', line, image: parts[0] });
        else if (parts.length === 3 && parts[1]?.toUpperCase() === 'AS' && parts[0] && parts[2]) {
          instructions.push({ kind: 'FROM', line, image: parts[0], name: parts[2].toLowerCase() });
        } else throw new UnsupportedDockerfileError(line, `FROM ${remainder}`);
        break;
      }
      case 'WORKDIR':
        noFlags(flags, [], line, keyword);
        if (remainder === '' || /\s/.test(remainder)) throw new UnsupportedDockerfileError(line, `WORKDIR ${remainder}`);
        instructions.push({ kind: 'WORKDIR', line, path: remainder });
        break;
      case 'COPY': {
        noFlags(flags, ['from'], line, keyword);
        if (remainder.startsWith('[')) throw new UnsupportedDockerfileError(line, 'COPY in JSON form');
        if (/["'\\]/.test(remainder)) throw new UnsupportedDockerfileError(line, `quoting in COPY ${remainder}`);
        const parts = remainder.split(/\s+/);
        const dest = parts.pop();
        if (dest === undefined || parts.length === 0) throw new UnsupportedDockerfileError(line, `COPY ${remainder}: needs a source and a destination`);
        if (parts.length > 1 && !dest.endsWith('/')) throw new Error(`Dockerfile line ${line}: COPY with several sources needs a destination ending in /`);
        instructions.push({ kind: 'COPY', line, ...(flags.from === undefined ? {} : { from: flags.from.toLowerCase() }), sources: parts, dest });
        break;
      }
      case 'RUN':
        noFlags(flags, [], line, keyword);
        if (remainder.startsWith('[')) throw new UnsupportedDockerfileError(line, 'RUN in exec form');
        if (remainder === '') throw new UnsupportedDockerfileError(line, 'an empty RUN');
        instructions.push({ kind: 'RUN', line, command: remainder });
        break;
      case 'ENV':
        noFlags(flags, [], line, keyword);
        instructions.push({ kind: 'ENV', line, vars: parseEnv(remainder, line) });
        break;
      case 'USER':
        noFlags(flags, [], line, keyword);
        if (!/^[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?$/.test(remainder)) throw new UnsupportedDockerfileError(line, `USER ${remainder}`);
        instructions.push({ kind: 'USER', line, user: remainder });
        break;
      case 'EXPOSE': {
        noFlags(flags, [], line, keyword);
        const ports = remainder.split(/\s+/);
        if (!ports.every((port) => /^\d+(?:\/(?:tcp|udp))?$/.test(port))) throw new UnsupportedDockerfileError(line, `EXPOSE ${remainder}`);
        instructions.push({ kind: 'EXPOSE', line, ports });
        break;
      }
      case 'HEALTHCHECK': {
        noFlags(flags, ['interval', 'timeout', 'start-period', 'start-interval', 'retries'], line, keyword);
        const cmd = /^CMD\s+(.*)$/is.exec(remainder);
        if (!cmd) throw new UnsupportedDockerfileError(line, `HEALTHCHECK ${remainder}: only HEALTHCHECK [options] CMD ["…"] is supported`);
        instructions.push({ kind: 'HEALTHCHECK', line, options: flags, command: execForm((cmd[1] ?? '').trim(), line, 'HEALTHCHECK CMD') });
        break;
      }
      case 'CMD':
        noFlags(flags, [], line, keyword);
        instructions.push({ kind: 'CMD', line, command: execForm(remainder, line, 'CMD') });
        break;
      default:
        throw new UnsupportedDockerfileError(line, `the instruction ${keyword || logical}`);
    }
  }
  if (instructions[0]?.kind !== 'FROM') throw new Error('Dockerfile: the first instruction must be FROM');
  return instructions;
}

/** One `.dockerignore` rule: a pattern anchored at the context root, or an exception (`!`). */
interface IgnoreRule {
  readonly exception: boolean;
  readonly regex: RegExp;
}

/**
 * `.dockerignore` as a predicate on context-relative paths (`a/b/c.ts`). Patterns are matched from
 * the context root (`*.log` matches only top-level files; `**` any number of folders), a pattern
 * matching a folder excludes everything in it, `!` re-includes, and the last matching rule wins,
 * as Docker does. Character classes (`[…]`) and escapes throw.
 */
export function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let pattern = raw.trim();
    if (pattern === '' || pattern.startsWith('#')) continue;
    const exception = pattern.startsWith('!');
    if (exception) pattern = pattern.slice(1).trim();
    if (/[[\]\\]/.test(pattern)) throw new Error(`.dockerignore: ${raw}: character classes and escapes are not supported by test/support/dockerfile.ts`);
    pattern = posix.normalize(pattern).replace(/^\/+/, '').replace(/\/+$/, '');
    let source = '';
    for (let i = 0; i < pattern.length; i += 1) {
      const char = pattern[i] ?? '';
      if (pattern.startsWith('**/', i)) {
        source += '(?:.*/)?';
        i += 2;
      } else if (pattern.startsWith('**', i)) {
        source += '.*';
        i += 1;
      } else if (char === '*') source += '[^/]*';
      else if (char === '?') source += '[^/]';
      else source += char.replace(/[.+^${}()|]/g, '\\$&');
    }
    rules.push({ exception, regex: new RegExp(`^${source}$`) });
  }
  return (path: string): boolean => {
    const parts = path.split('/');
    // The path itself and each of its parent folders.
    const candidates = parts.map((_, index) => parts.slice(0, index + 1).join('/'));
    let ignored = false;
    for (const rule of rules) {
      if (candidates.some((candidate) => rule.regex.test(candidate))) ignored = !rule.exception;
    }
    return ignored;
  };
}

/**
 * Copies the repository at `repoRoot` into `dest` as a build context: the files git knows or would
 * add (`git ls-files --cached --others --exclude-standard`), as they are in the working tree (a
 * deleted file is left out), minus what `.dockerignore` excludes. Returns the copied paths.
 */
export function cleanContext(repoRoot: string, dest: string): string[] {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot, encoding: 'utf8' });
  if (listed.status !== 0) throw new Error(`git ls-files failed in ${repoRoot}: ${listed.stderr}`);
  const ignorePath = join(repoRoot, '.dockerignore');
  const ignored = existsSync(ignorePath) ? dockerignoreMatcher(readFileSync(ignorePath, 'utf8')) : () => false;
  const copied: string[] = [];
  for (const path of new Set(listed.stdout.split('\0').filter((entry) => entry !== ''))) {
    if (ignored(path)) continue;
    const source = join(repoRoot, path);
    try {
      lstatSync(source);
    } catch {
      continue; // in the index but deleted from the working tree
    }
    mkdirSync(dirname(join(dest, path)), { recursive: true });
    cpSync(source, join(dest, path), { verbatimSymlinks: true });
    copied.push(path);
  }
  return copied.sort();
}

/** The host path of `containerPath` (absolute, or relative to `workdir`) in a stage rooted at `root`. */
export function hostPath(root: string, containerPath: string, workdir = '/'): string {
  return join(root, posix.resolve(workdir, containerPath));
}

/** Paths (container paths, absolute) under `root` matching `pattern` (`*` and `?` within a path segment). */
function expandSource(root: string, pattern: string): string[] {
  const absolute = posix.resolve('/', pattern);
  if (!/[*?[]/.test(absolute)) return existsSync(hostPath(root, absolute)) ? [absolute] : [];
  if (absolute.includes('[')) throw new Error(`COPY source ${pattern}: character classes are not supported by test/support/dockerfile.ts`);
  let matches = ['/'];
  for (const segment of absolute.split('/').filter((part) => part !== '')) {
    const regex = new RegExp(`^${segment.replace(/[.+^${}()|\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`);
    matches = matches.flatMap((dir) => {
      const host = hostPath(root, dir);
      if (!existsSync(host) || !statSync(host).isDirectory()) return [];
      return readdirSync(host)
        .filter((entry) => regex.test(entry))
        .sort()
        .map((entry) => posix.join(dir, entry));
    });
  }
  return matches;
}

/** A stage as built: its root on this machine and what its instructions set. */
export interface Stage {
  readonly index: number;
  readonly name: string | undefined;
  readonly image: string;
  /** The stage's root file system on this machine. */
  readonly root: string;
  /** Container path. */
  workdir: string;
  /** What its `ENV` instructions set (the base image's own variables are not modelled). */
  readonly env: Record<string, string>;
  /** `root` unless a `USER` said otherwise. */
  user: string;
  readonly exposed: string[];
  healthcheck: { readonly options: Readonly<Record<string, string>>; readonly command: readonly string[] } | undefined;
  cmd: readonly string[] | undefined;
  /** Each `RUN` with how long it took, in ms. */
  readonly runs: Array<{ readonly command: string; readonly ms: number }>;
}

/** Options of {@link buildDockerfile}. */
export interface BuildOptions {
  /** The Dockerfile's text. */
  readonly dockerfile: string;
  /** The build context: a directory, e.g. made by {@link cleanContext}. */
  readonly context: string;
  /** An empty directory to hold the stage roots. */
  readonly workspace: string;
  /** Directories put first on `PATH` for `RUN` and for {@link containerEnv} (e.g. the base image's Node). */
  readonly pathPrefix?: readonly string[];
  /**
   * An npm cache (`~/.npm` of this machine) to seed each user's `~/.npm` from, before the stage's
   * first `RUN`: stands in for the registry a real build downloads from, so `npm ci` is fast and
   * offline. Content files are hard-linked (cacache never rewrites them), the index is copied, so
   * nothing a `RUN` does (`npm cache clean --force`) touches this cache.
   */
  readonly npmCache?: string;
  /** Variables every `RUN` gets on top of the stage's (e.g. `npm_config_audit=false`). */
  readonly runEnv?: Readonly<Record<string, string>>;
  /** How long one `RUN` may take, in ms. @default 300000 */
  readonly runTimeoutMs?: number;
  /** Progress lines. */
  readonly log?: (message: string) => void;
}

/** The home folder of `user` (container path), as in the node images: `/root` for root, `/home/<user>` otherwise. */
export function homeOf(user: string): string {
  const name = user.split(':')[0] ?? '';
  return name === 'root' || name === '0' ? '/root' : `/home/${name}`;
}

/** `PATH` entries of this machine, after `prefix`. */
function pathWith(prefix: readonly string[]): string {
  return [...prefix, ...(process.env.PATH ?? '').split(delimiter).filter((entry) => entry !== '')].join(delimiter);
}

/**
 * The environment of a process in `stage`: its `ENV`, `HOME` in its root, `PATH` (with
 * `pathPrefix` first) and `extra` (as `docker run -e`, which wins over `ENV`). Nothing else is
 * inherited from this process.
 */
export function containerEnv(stage: Stage, pathPrefix: readonly string[] = [], extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const home = hostPath(stage.root, homeOf(stage.user));
  mkdirSync(home, { recursive: true });
  return { PATH: pathWith(pathPrefix), HOME: home, ...stage.env, ...extra };
}

/** `argv[0]` looked up on `env.PATH` when it holds no slash. */
export function resolveCommand(command: string, env: Readonly<Record<string, string>>): string {
  if (command.includes('/')) return command;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${command} not found on PATH ${env.PATH ?? ''}`);
}

/** Spawns `argv` (exec form) in `stage`'s working directory with `env`. */
export function spawnInStage(stage: Stage, argv: readonly string[], env: Readonly<Record<string, string>>, options: SpawnOptions = {}): ChildProcess {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('empty command');
  return spawn(resolveCommand(command, env), args, { ...options, cwd: hostPath(stage.root, stage.workdir), env: { ...env } });
}

/** Seeds `home/.npm/_cacache` from `npmCache`: content hard-linked, everything else copied. */
function seedNpmCache(npmCache: string, home: string): void {
  const from = join(npmCache, '_cacache');
  const to = join(home, '.npm', '_cacache');
  if (!existsSync(from) || existsSync(to)) return;
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    if (entry === 'content-v2') linkTree(join(from, entry), join(to, entry));
    else if (entry !== 'tmp') cpSync(join(from, entry), join(to, entry), { recursive: true });
  }
}

function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory()) linkTree(join(from, entry.name), join(to, entry.name));
    else if (entry.isFile()) linkSync(join(from, entry.name), join(to, entry.name));
  }
}

/** Runs `sh -c command`; resolves with its output, rejects with the output's tail when it fails. */
function runShell(command: string, cwd: string, env: Record<string, string>, timeoutMs: number, line: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`Dockerfile line ${line}: RUN ${command} failed (${code ?? signal}${signal === 'SIGKILL' ? `, after ${timeoutMs} ms` : ''}):\n${output.slice(-4000)}`));
    });
  });
}

/**
 * Builds every stage of the Dockerfile, in order, under `workspace` and returns them (the last one
 * is the image). Throws on an unsupported construct before running anything, and on the first
 * failing step.
 */
export async function buildDockerfile(options: BuildOptions): Promise<Stage[]> {
  const instructions = parseDockerfile(options.dockerfile);
  const pathPrefix = options.pathPrefix ?? [];
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  for (const instruction of instructions) {
    if (instruction.kind === 'FROM') {
      const root = join(options.workspace, `stage-${stages.length}${instruction.name ? `-${instruction.name}` : ''}`);
      mkdirSync(root, { recursive: true });
      const base = stages.find((earlier) => earlier.name !== undefined && earlier.name === instruction.image.toLowerCase());
      if (base) cpSync(base.root, root, { recursive: true, verbatimSymlinks: true });
      if (instruction.name !== undefined && stages.some((earlier) => earlier.name === instruction.name)) {
        throw new Error(`Dockerfile line ${instruction.line}: a second stage named ${instruction.name}`);
      }
      stage = {
        index: stages.length,
        name: instruction.name,
        image: base ? base.image : instruction.image,
        root,
        workdir: base ? base.workdir : '/',
        env: base ? { ...base.env } : {},
        user: base ? base.user : 'root',
        exposed: base ? [...base.exposed] : [],
        healthcheck: base?.healthcheck,
        cmd: base?.cmd,
        runs: [],
      };
      stages.push(stage);
      options.log?.(`FROM ${instruction.image}${instruction.name ? ` AS ${instruction.name}` : ''}`);
      continue;
    }
    if (stage === undefined) throw new Error('unreachable: no stage');
    switch (instruction.kind) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, instruction.path);
        mkdirSync(hostPath(stage.root, stage.workdir), { recursive: true });
        break;
      case 'ENV':
        Object.assign(stage.env, instruction.vars);
        break;
      case 'USER':
        stage.user = instruction.user;
        break;
      case 'EXPOSE':
        stage.exposed.push(...instruction.ports);
        break;
      case 'HEALTHCHECK':
        stage.healthcheck = { options: instruction.options, command: instruction.command };
        break;
      case 'CMD':
        stage.cmd = instruction.command;
        break;
      case 'COPY': {
        let sourceRoot = options.context;
        if (instruction.from !== undefined) {
          const from = instruction.from;
          const other = stages.find((earlier) => earlier !== stage && (earlier.name === from || String(earlier.index) === from));
          if (!other) throw new UnsupportedDockerfileError(instruction.line, `COPY --from=${from}: not an earlier stage (external images cannot be copied from)`);
          sourceRoot = other.root;
        }
        const sources = instruction.sources.flatMap((source) => {
          const found = expandSource(sourceRoot, source);
          if (found.length === 0) throw new Error(`Dockerfile line ${instruction.line}: COPY source ${source} not found${instruction.from ? ` in stage ${instruction.from}` : ' in the build context'}`);
          return found;
        });
        const destPath = posix.resolve(stage.workdir, instruction.dest);
        const hostDest = hostPath(stage.root, destPath);
        const intoDir = instruction.dest.endsWith('/') || instruction.dest === '.' || sources.length > 1 || (existsSync(hostDest) && statSync(hostDest).isDirectory());
        for (const source of sources) {
          const hostSource = hostPath(sourceRoot, source);
          if (statSync(hostSource).isDirectory()) {
            // A folder's contents are copied, not the folder itself.
            cpSync(hostSource, hostDest, { recursive: true, verbatimSymlinks: true });
          } else {
            const target = intoDir ? join(hostDest, basename(hostSource)) : hostDest;
            mkdirSync(dirname(target), { recursive: true });
            cpSync(hostSource, target, { verbatimSymlinks: true });
          }
        }
        break;
      }
      case 'RUN': {
        const env = containerEnv(stage, pathPrefix, options.runEnv);
        if (options.npmCache !== undefined && env.HOME !== undefined) seedNpmCache(options.npmCache, env.HOME);
        const started = Date.now();
        await runShell(instruction.command, hostPath(stage.root, stage.workdir), env, options.runTimeoutMs ?? 300_000, instruction.line);
        const ms = Date.now() - started;
        stage.runs.push({ command: instruction.command, ms });
        options.log?.(`RUN ${instruction.command} (${(ms / 1000).toFixed(1)} s)`);
        break;
      }
      default: {
        const unknown: never = instruction;
        throw new Error(`unreachable: ${JSON.stringify(unknown)}`);
      }
    }
  }
  return stages;
}
