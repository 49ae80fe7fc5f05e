/**
 * Bundles the agent into one file, dist/attest-agent.mjs: one module to load instead of a few
 * hundred, with every dependency inside, so the installed package needs nothing else (`npm run
 * build`, run by the repository's build and by `npm pack`).
 *
 * One substitution: `zod` becomes src/zodLite.ts, the part of zod's API that the wire types
 * (src/protocol.ts, the one source the broker runs on zod itself) and the agent's own schemas use,
 * with the same outcomes (test/unit/agent/zodLite.test.ts) at a fraction of zod's start-up
 * (docs/benchmarks.md). Type-checking still sees zod.
 *
 * The file is replaced atomically (temp file, then rename): an agent starting while `npm pack`
 * rebuilds it (the test suite does both at once) reads the old bundle or the new one, never half.
 */
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const zodLite = {
  name: 'zod-lite',
  setup(b) {
    b.onResolve({ filter: /^zod$/ }, () => ({ path: resolve('src/zodLite.ts') }));
  },
};

const OUT = 'dist/attest-agent.mjs';
const result = await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile: OUT,
  write: false,
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require(); give the ES module one.
  banner: { js: "import { createRequire as __keyanchorRequire } from 'node:module'; const require = __keyanchorRequire(import.meta.url);" },
  plugins: [zodLite],
});

mkdirSync(dirname(OUT), { recursive: true });
const tmp = `${OUT}.${process.pid}.tmp`;
writeFileSync(tmp, result.outputFiles[0].contents);
renameSync(tmp, OUT);
