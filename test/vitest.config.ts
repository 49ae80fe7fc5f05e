import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

// Under CI the JSON reporter also writes the counts that .ci/run turns into "N passed, N failed".
const ci = process.env.CI === 'true' || process.env.CI === '1';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // End-to-end suites run the compiled CLI: build once (incrementally) before any suite.
    globalSetup: ['test/globalSetup.ts'],
    reporters: ci ? ['default', 'json'] : ['default'],
    ...(ci ? { outputFile: { json: '.vitest-results.json' } } : {}),
  },
});
