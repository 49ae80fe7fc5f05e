/**
 * Bundles the agent into one file, dist/attest-agent.mjs: one module to load instead of a few
 * hundred, with every dependency inside, so the installed package needs nothing else (`npm run
 * build`, run by the repository's build and by `npm pack`).
 *
 * One substitution: zod's `locales` namespace (every language's error messages, ~40 % of the
 * bundle) becomes English only. The agent never selects a locale, and zod registers English
 * itself, so nothing changes but the start-up time (docs/benchmarks.md).
 *
 * The file is replaced atomically (temp file, then rename): an agent starting while `npm pack`
 * rebuilds it (the test suite does both at once) reads the old bundle or the new one, never half.
 */
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, sep } from 'node:path';

const englishOnlyZodLocales = {
  name: 'english-only-zod-locales',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${sep}node_modules${sep}zod${sep}`) ? { path: 'zod-locales-en', namespace: 'agent-build' } : undefined);
    b.onLoad({ filter: /.*/, namespace: 'agent-build' }, () => ({
      contents: "export { default as en } from 'zod/v4/locales/en.js';",
      resolveDir: process.cwd(),
      loader: 'js',
    }));
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
  plugins: [englishOnlyZodLocales],
});

mkdirSync(dirname(OUT), { recursive: true });
const tmp = `${OUT}.${process.pid}.tmp`;
writeFileSync(tmp, result.outputFiles[0].contents);
renameSync(tmp, OUT);
