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

  it('imports neither express, pkcs11js nor jose, and nothing from the broker but protocol.ts and src/jose', () => {
    const allowedPackages = new Set(['commander', 'zod']);
    for (const file of files) {
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        const where = `${relative(root, file)} imports ${spec}`;
        expect(spec, where).not.toMatch(/express|pkcs11/);
        if (spec.startsWith('node:')) continue;
        if (spec.startsWith('.')) {
          const target = relative(root, join(file, '..', spec));
          expect(target.startsWith('attest-agent/') || target === 'src/protocol.js' || target.startsWith('src/jose/'), where).toBe(true);
          continue;
        }
        expect(allowedPackages.has(spec), where).toBe(true);
      }
    }
  });

  it('src/jose, which the agent bundles, imports nothing but node:crypto and itself', () => {
    const joseDir = join(root, 'src', 'jose');
    for (const file of sources(joseDir)) {
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        const where = `${relative(root, file)} imports ${spec}`;
        expect(spec === 'node:crypto' || (spec.startsWith('./') && !spec.includes('/..')), where).toBe(true);
      }
    }
  });

  it('the bundle (attest-agent/dist/attest-agent.mjs, built by the test setup) carries src/jose and no jose, express or pkcs11js', () => {
    const bundle = readFileSync(join(root, 'attest-agent', 'dist', 'attest-agent.mjs'), 'utf8');
    // esbuild names each module relative to attest-agent/, where the bundle is built.
    const modules = [...bundle.matchAll(/^\/\/ ((?:\.\.\/)?(?:node_modules|src)\/\S+)$/gm)].map((m) => m[1]!);
    expect(modules).toContain('../src/jose/jwe.ts');
    expect(modules).toContain('../src/jose/jws.ts');
    expect(modules).toContain('../src/protocol.ts');
    expect(modules.filter((m) => /node_modules\/(jose|express|pkcs11js)\//.test(m))).toEqual([]);
    expect(bundle).not.toMatch(/from ['"](jose|express|pkcs11js)['"]|require\(['"](jose|express|pkcs11js)['"]\)/);
  });

  it('the bin shim loads the bundled CLI', () => {
    const shim = readFileSync(join(root, 'attest-agent', 'bin', 'attest-agent.js'), 'utf8');
    expect(shim.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(specifiers(shim)).toEqual(['../dist/attest-agent.mjs']);
  });
});
