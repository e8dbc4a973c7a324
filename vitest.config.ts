import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Generous bounds only catch hangs; timing goals live in `npm run bench`.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
