/**
 * `npm run bench -- --smoke` still works, so the bench cannot rot: every row runs (the Redis rows
 * only when REDIS_URL is set, else they are skipped), every reply is checked and none is wrong,
 * and the run exits 0. It judges no speed. dist/ is fresh (the global setup built it), so the
 * bench's own build is skipped.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface RowLine {
  id: string;
  status: string;
  checked: number;
  wrong: number;
  non200: number;
  errors: number;
}

function runSmoke(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', '--no-build'], {
      cwd: ROOT,
      env: process.env, // REDIS_URL, when set, adds the Redis rows
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

it('npm run bench -- --smoke runs every row with every reply right', { timeout: 120_000 }, async () => {
  const { code, output } = await runSmoke();
  const line = output.split('\n').find((l) => l.startsWith('bench-rows-json '));
  expect(line, output).toBeDefined();
  const rows = JSON.parse(line!.slice('bench-rows-json '.length)) as RowLine[];
  const withRedis = Boolean(process.env.REDIS_URL);
  expect(rows.map((r) => r.id)).toEqual(['express', 'wechat', 'memory', 'redis', 'redis-secure', 'redis-wc2']);
  for (const row of rows) {
    const expected = row.id.startsWith('redis') && !withRedis ? 'SKIPPED' : 'ok';
    expect({ id: row.id, status: row.status }, output).toEqual({ id: row.id, status: expected });
    if (expected === 'ok') {
      expect(row.checked, `${row.id}: replies checked`).toBeGreaterThan(0);
      expect({ id: row.id, wrong: row.wrong, non200: row.non200, errors: row.errors }).toEqual({ id: row.id, wrong: 0, non200: 0, errors: 0 });
    }
  }
  expect(output).toMatch(/One continuing turn by history length/);
  expect(code, output).toBe(0);
});
