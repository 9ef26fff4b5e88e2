/**
 * Reads a V8 CPU profile (`node --cpu-prof`, what `npm run bench -- --cpu-prof` makes the servers
 * write) and says where the time went: self and inclusive time per package or source file (fast-xml-parser,
 * express, src/wechat/parser.js, node:http, GC …) and the functions with the most self time, as
 * percentages of the time not idle.
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [more files]
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The package, source file or runtime part a frame belongs to. */
function groupOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return '(GC)';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return '(program: native, not attributed)';
    if (functionName === '(root)') return '(root)';
    return '(native)';
  }
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  const src = url.indexOf('/dist/src/');
  if (src >= 0) return `src/${url.slice(src + '/dist/src/'.length)}`;
  const dialogs = url.indexOf('/dist/dialogs/');
  if (dialogs >= 0) return `dialogs/${url.slice(dialogs + '/dist/dialogs/'.length)}`;
  if (url.startsWith('node:')) {
    const path = url.slice('node:'.length).replace(/^internal\//, '');
    return `node:${path.split('/')[0] ?? path}`;
  }
  return url.replace(/^.*\//, '');
}

/** The summary of one or more profiles (their samples added up), as lines of text. */
export function summarizeProfiles(files: readonly string[], top = 14): string {
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const byId = new Map<number, ProfileNode>();
    const parent = new Map<number, number>();
    for (const node of profile.nodes) {
      byId.set(node.id, node);
      for (const child of node.children ?? []) parent.set(child, node.id);
    }
    const stackGroups = new Map<number, readonly string[]>();
    const groupsOnStack = (id: number): readonly string[] => {
      const known = stackGroups.get(id);
      if (known) return known;
      const groups = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const node = byId.get(at);
        if (node) groups.add(groupOf(node.callFrame));
      }
      const list = [...groups];
      stackGroups.set(id, list);
      return list;
    };
    profile.samples.forEach((id, i) => {
      const delta = profile.timeDeltas[i] ?? 0;
      const node = byId.get(id);
      if (!node) return;
      const group = groupOf(node.callFrame);
      if (group === '(idle)') {
        idle += delta;
        return;
      }
      busy += delta;
      self.set(group, (self.get(group) ?? 0) + delta);
      for (const g of groupsOnStack(id)) inclusive.set(g, (inclusive.get(g) ?? 0) + delta);
      const fn = `${node.callFrame.functionName || '(anonymous)'} ${group}:${node.callFrame.lineNumber + 1}`;
      functions.set(fn, (functions.get(fn) ?? 0) + delta);
    });
  }
  const pct = (x: number): string => `${((100 * x) / Math.max(1, busy)).toFixed(1).padStart(5)} %`;
  const lines = [`${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle in ${files.length} profile(s); percentages of the busy time`];
  lines.push('  self    inclusive  where');
  for (const [group, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(t)}  ${pct(inclusive.get(group) ?? 0)}  ${group}`);
  }
  lines.push('  functions with the most self time:');
  for (const [fn, t] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(t)}  ${fn}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [more files]');
    process.exit(2);
  }
  console.log(summarizeProfiles(files));
}
