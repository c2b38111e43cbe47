import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['properties/**/*.test.ts'],
    // the model's costly invariant checks (kernel/assert.ts) stay on for the whole suite
    setupFiles: ['properties/vitest.setup.ts'],
    // Property suites replay fixed seeds; long searches live behind `npm run nightly`.
    testTimeout: 60_000,
    pool: 'threads',
    // the search suites are CPU-bound and independent; vitest's default keeps one core idle,
    // which on a 2-core CI machine runs them one file at a time
    maxWorkers: availableParallelism(),
    minWorkers: 1,
  },
});
