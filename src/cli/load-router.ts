/**
 * Loads a router table from a module given on the command line (`--router ./dialogs/router.js`):
 * its `router` export, or its default export. Every failure is one line saying what to do.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Router } from '../dialog/router.js';

/** Thrown by {@link loadRouter}; `message` is one line naming the module and what to change. */
export class RouterModuleError extends Error {
  override readonly name = 'RouterModuleError';
  readonly code = 'BAD_ROUTER_MODULE';
}

function isRouter(value: unknown): value is Router {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Partial<Router>).decide === 'function' &&
    typeof (value as Partial<Router>).dialog === 'function'
  );
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/**
 * Imports `modulePath` (relative to `cwd`) and returns its router.
 * @throws {RouterModuleError} when the file is missing, its import fails (a syntax error, a missing
 *   import, a router table `createRouter` refused, TypeScript that Node cannot run), or it exports
 *   no router.
 */
export async function loadRouter(modulePath: string, cwd: string = process.cwd()): Promise<Router> {
  const file = resolve(cwd, modulePath);
  if (!existsSync(file)) throw new RouterModuleError(`router module ${modulePath} not found (looked for ${file})`);
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const typescript = /\.[cm]?tsx?$/.test(file)
      ? ' (a TypeScript router: compile it first, e.g. npm run build, or run this command under tsx: npx tsx …)'
      : '';
    throw new RouterModuleError(`cannot load router module ${modulePath}: ${firstLine(err)}${typescript}`, { cause: err });
  }
  const router = loaded['router'] ?? loaded['default'];
  if (!isRouter(router)) {
    throw new RouterModuleError(
      `router module ${modulePath} exports no router: add \`export const router = createRouter({ routes, fallback })\``,
    );
  }
  return router;
}
