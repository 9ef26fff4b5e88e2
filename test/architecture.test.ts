/**
 * The tree keeps its shape (design.md): the library under `src/` never imports the demo in
 * `dialogs/`, the engine knows nothing of Express or XML, and the protocol knows nothing of Express
 * or Redis.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

/** Every module specifier a file imports (`from '…'`, `import '…'` and `import('…')`). */
function imports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(?:from\s+|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)].map((match) => match[1]!);
}

describe('the shape of the tree', () => {
  it('nothing under src/ imports dialogs/: the demo is wired only by the npm scripts', () => {
    const offenders = sources('src').flatMap((file) => imports(file).filter((spec) => spec.includes('dialogs/')).map((spec) => `${file}: ${spec}`));
    expect(offenders).toEqual([]);
  });

  it('the engine (src/dialog) imports neither Express nor an XML parser', () => {
    const offenders = sources('src/dialog').flatMap((file) =>
      imports(file).filter((spec) => /^(express|raw-body|fast-xml-parser)$|\/http\/|\/wechat\/(parser|xml|reply-xml)\.js$/.test(spec)).map((spec) => `${file}: ${spec}`),
    );
    expect(offenders).toEqual([]);
  });

  it('the protocol (src/wechat) imports neither Express nor Redis', () => {
    const offenders = sources('src/wechat').flatMap((file) => imports(file).filter((spec) => /^(express|ioredis|raw-body)$|\/(http|dialog)\//.test(spec)).map((spec) => `${file}: ${spec}`));
    expect(offenders).toEqual([]);
  });
});
