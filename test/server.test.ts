import { describe, expect, it } from 'vitest';
import { throttledWarning } from '../src/server.js';

describe('throttledWarning (Redis connection errors during an outage)', () => {
  it('logs the first error at once, then at most one line per interval with the count left out', () => {
    const lines: Array<{ fields: object; message: string }> = [];
    let clock = 0;
    const warn = throttledWarning({ warn: (fields: object, message: string) => lines.push({ fields, message }) } as never, 'Redis connection error', 30_000, () => clock);
    warn(new Error('ECONNREFUSED 1'));
    for (let i = 0; i < 20; i += 1) {
      clock += 1000;
      warn(new Error(`ECONNREFUSED ${i + 2}`));
    }
    clock += 10_000;
    warn(new Error('ECONNREFUSED last'));
    expect(lines).toEqual([
      { fields: { err: 'ECONNREFUSED 1' }, message: 'Redis connection error' },
      { fields: { err: 'ECONNREFUSED last', skipped: 20 }, message: 'Redis connection error' },
    ]);
  });
});
