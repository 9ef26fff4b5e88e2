/** Assertions on ioredis reconnection strategies. */
import { expect } from 'vitest';

/**
 * `retry` (an ioredis `retryStrategy` or `clusterRetryStrategy`) gives a positive delay for every
 * attempt, never above `capMs` **milliseconds**, and reaches the cap: the client never gives up.
 */
export function expectCappedBackoff(retry: ((attempt: number) => unknown) | null | undefined, capMs: number): void {
  expect(typeof retry).toBe('function');
  const delays = [1, 2, 3, 5, 10, 100, 10_000].map((attempt) => retry?.(attempt));
  for (const delay of delays) {
    expect(typeof delay).toBe('number');
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(capMs);
  }
  expect(delays.at(-1)).toBe(capMs);
}
