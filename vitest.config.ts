import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'dialogs/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two test files at a time, also on 2 cores (vitest's default there is one): most of the
    // suite's time is spent waiting on spawned servers, timers and Redis, not on the CPU.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
