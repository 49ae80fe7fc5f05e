import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const agentSrc = join(root, 'attest-agent', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

/** Every module specifier in static imports, re-exports and dynamic imports. */
function specifiers(code: string): string[] {
  const found = [...code.matchAll(/\b(?:import|export)\s[^'"]*?\bfrom\s*['"]([^'"]+)['"]/g), ...code.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g), ...code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)];
  return found.map((m) => m[1]!);
}

describe('attest-agent dependencies', () => {
  const files = sources(agentSrc);

  it('finds the sources', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it('imports neither express nor pkcs11js, and nothing from the broker but protocol.ts', () => {
    const allowedPackages = new Set(['jose', 'commander', 'zod']);
    for (const file of files) {
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        const where = `${relative(root, file)} imports ${spec}`;
        expect(spec, where).not.toMatch(/express|pkcs11/);
        if (spec.startsWith('node:')) continue;
        if (spec.startsWith('.')) {
          const target = relative(root, join(file, '..', spec));
          expect(target.startsWith('attest-agent/') || target === 'src/protocol.js', where).toBe(true);
          continue;
        }
        expect(allowedPackages.has(spec), where).toBe(true);
      }
    }
  });

  it('the bin shim loads the bundled CLI', () => {
    const shim = readFileSync(join(root, 'attest-agent', 'bin', 'attest-agent.js'), 'utf8');
    expect(shim.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(specifiers(shim)).toEqual(['../dist/attest-agent.mjs']);
  });
});
