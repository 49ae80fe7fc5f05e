/**
 * The seam boundary (STYLE principle 2): pkcs11js is imported only inside src/custody/pkcs11, and
 * only lazily or for types; outside src/custody the backend is reached only by dynamic import or
 * for types, so the default install loads neither.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(import.meta.dirname, '..', '..', '..');
const src = path.join(root, 'src');
const backend = path.join(src, 'custody', 'pkcs11');

const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);

/** Static value imports and re-exports (`import type` / `export type` are erased and allowed). */
const staticImports = (code: string): string[] =>
  [...code.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm), ...code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
const dynamicImports = (code: string): string[] => [...code.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);

describe('pkcs11 backend boundary', () => {
  const files = sources(src);

  it('imports pkcs11js nowhere but lazily in the backend', () => {
    for (const file of files) {
      const code = readFileSync(file, 'utf8');
      const where = path.relative(root, file);
      expect(staticImports(code), where).not.toContain('pkcs11js');
      if (!file.startsWith(backend + path.sep)) expect(dynamicImports(code), where).not.toContain('pkcs11js');
    }
    expect(dynamicImports(readFileSync(path.join(backend, 'library.ts'), 'utf8'))).toContain('pkcs11js');
  });

  it('is reached from outside src/custody only by dynamic import', () => {
    for (const file of files.filter((f) => !f.startsWith(path.join(src, 'custody') + path.sep))) {
      const code = readFileSync(file, 'utf8');
      for (const spec of staticImports(code)) expect(spec, path.relative(root, file)).not.toMatch(/custody\/pkcs11/);
    }
  });
});
