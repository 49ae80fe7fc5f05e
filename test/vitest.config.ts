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
    // End-to-end suites run the compiled CLI: build once (incrementally) before any suite
    // (KEYANCHOR_SKIP_BUILD=1 skips it while working on suites that do not run dist/).
    globalSetup: process.env.KEYANCHOR_SKIP_BUILD === '1' ? [] : ['test/globalSetup.ts'],
    reporters: ci ? ['default', 'json'] : ['default'],
    ...(ci ? { outputFile: { json: '.vitest-results.json' } } : {}),
  },
});
