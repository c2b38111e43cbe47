import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['properties/**/*.test.ts'],
    // Property suites replay fixed seeds; long searches live behind `npm run nightly`.
    testTimeout: 60_000,
    pool: 'threads',
  },
});
