/**
 * `node dist/test/bench/jose.js --quick` runs and prints every figure (a smoke test of the
 * micro-benchmark, not a timing assertion: the figures themselves are in docs/benchmarks.md).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, run } from '../helpers/processes.js';

describe('the JOSE micro-benchmark', () => {
  it('prints a jose and a src/jose figure for every operation, and the crypto floor', async () => {
    const r = await run(process.execPath, [path.join(ROOT, 'dist', 'test', 'bench', 'jose.js'), '--quick'], { timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const rows = [...r.stdout.matchAll(/^\| (broker|agent): (.+?) \| (\d+\.\d) \| (\d+\.\d) \| (\d+\.\d\d)× \|$/gm)].map((m) => `${m[1]}: ${m[2]}`);
    expect(rows.map((w) => w.replace(/\d+ bytes/, 'N bytes'))).toEqual([
      'broker: JWE encrypt ECDH-ES+A256KW, 32-byte key (recipient JWK import + encrypt)',
      'broker: JWS ES256 verify, evidence of N bytes',
      'agent: JWE decrypt ECDH-ES+A256KW',
      'agent: JWS ES256 sign (evidence)',
      'agent: ephemeral P-256 recipient key + its JWK',
    ]);
    for (const part of ['ECDSA P-256 verify', 'P-256 key generation', 'ECDH', 'AES-256-KW of 32 bytes', 'AES-256-GCM of 32 bytes', '32 random bytes']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${part}: \\d+\\.\\d µs$`, 'm'));
    }
    expect(r.stdout).toMatch(/^ {2}sum of the parts: \d+\.\d µs; all in one loop: \d+\.\d µs \(\d+ per CPU-second\)$/m);
    expect(r.stdout).toMatch(/^broker JOSE per single-key release \(encrypt \+ verify\): jose \d+\.\d µs, src\/jose \d+\.\d µs, floor \d+\.\d µs$/m);
  });
});
