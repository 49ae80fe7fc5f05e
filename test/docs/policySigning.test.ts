/**
 * docs/policy.md's signing walkthrough, run as written: every `<!-- signing-walkthrough -->` block,
 * in order, by bash in a temporary directory holding a copy of policies/payments, with `keyanchor`
 * the compiled CLI. And the openssl command of each key type in its table, used to co-sign a
 * bundle that the CLI then checks against a 4-of-4 root of those keys.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/deps.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(path.join(ROOT, 'docs', 'policy.md'), 'utf8');
const hasOpenssl = requireTool('openssl', 'the policy signing walkthrough');
let dir: string;

function bash(script: string): { status: number | null; stdout: string; stderr: string } {
  const prelude = `set -euo pipefail\nkeyanchor() { node ${JSON.stringify(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))} "$@"; }\n`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYANCHOR_')));
  const r = spawnSync('bash', ['-c', prelude + script], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr lines, without openssl's RSA key generation progress (dots and pluses). */
const quiet = (stderr: string) => stderr.split('\n').filter((l) => l && !/^[.+*]+$/.test(l));

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-signing-doc-'));
  cpSync(path.join(ROOT, 'policies', 'payments'), path.join(dir, 'policies', 'payments'), { recursive: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('docs/policy.md: explain', () => {
  it('the example prints exactly the output shown', () => {
    const cmd = /<!-- explain-example -->\n```sh\n([\s\S]*?)```/.exec(doc)![1]!;
    const out = /<!-- explain-output -->\n```\n([\s\S]*?)```/.exec(doc)![1]!;
    cpSync(path.join(ROOT, 'policies', 'payments'), path.join(dir, 'policies', 'payments'), { recursive: true });
    expect(bash(cmd)).toEqual({ status: 0, stdout: out, stderr: '' });
  });
});

describe.runIf(hasOpenssl)('docs/policy.md: signing, end to end', () => {
  it('every walkthrough command runs as written, and each check accepts the bundle', () => {
    const blocks = [...doc.matchAll(/<!-- signing-walkthrough -->\n```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(6);
    const r = bash(blocks.join('\n'));
    expect(quiet(r.stderr).filter((l) => !l.startsWith('carrying root version'))).toEqual([]);
    expect(r.status).toBe(0);
    const bundles = r.stdout.split('\n').filter((l) => l.startsWith('signed bundle:'));
    expect(bundles.map((l) => l.replace(/expires [^,]+/, 'expires …').replace(/manifest [0-9a-f]{64}/, 'manifest …'))).toEqual([
      'signed bundle: version 1 (root version 2), expires …, 2 valid signature(s), 2 of the root keys required to change the root to version 2, manifest …',
      'signed bundle: version 2 (root version 2), expires …, 1 valid signature(s), 1 required, manifest …',
      'signed bundle: version 1 (root version 3), expires …, 2 valid signature(s), 2 of the root keys required to change the root to version 3, manifest …',
      'signed bundle: version 2 (root version 3), expires …, 1 valid signature(s), 1 required, manifest …',
      'signed bundle: version 1 (root version 4), expires …, 2 valid signature(s), 2 of the root keys required to change the root to version 4, manifest …',
    ]);
    expect(r.stdout).toContain('8 passed, 0 failed');
  });

  it('the revoked signer cannot sign for the brokers any more', () => {
    const r = bash(
      'keyanchor policy sign policies/payments --version 9 --expires 1d --key signer-1.key\n' +
        'keyanchor policy check policies/payments --root-key root-a.pub --root-key root-b.pub --root-key root-c.pub --threshold 2 --root-bundle root-2.dsse --root-bundle root-3.dsse',
    );
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/\(bundle\): policy_unknown_signer: 0 valid signature\(s\) by the root keys in force; changing the root needs 2 \(signatures by keys the root does not trust or the manifest does not list: [0-9a-f]{16}\)\n/);
  });

  it('the openssl command of every key type in the table makes a signature the broker accepts', () => {
    const rows = [...doc.matchAll(/^\| (Ed25519|ECDSA P-256|ECDSA P-384|RSA or RSA-PSS ≥ 2048) \| [^|]+ \| `(openssl [^`]+)` \|$/gm)].map((m) => ({ type: m[1]!, cmd: m[2]! }));
    expect(rows.map((r) => r.type)).toEqual(['Ed25519', 'ECDSA P-256', 'ECDSA P-384', 'RSA or RSA-PSS ≥ 2048']);
    const gen = [
      'openssl genpkey -algorithm ed25519 -out t0.key',
      'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out t1.key',
      'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out t2.key',
      'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out t3.key',
    ];
    cpSync(path.join(ROOT, 'policies', 'payments'), path.join(dir, 'openssl-signed'), { recursive: true });
    const script = [
      ...gen,
      ...[0, 1, 2, 3].map((i) => `openssl pkey -in t${i}.key -pubout -out t${i}.pub`),
      'keyanchor policy sign openssl-signed --version 1 --expires 1d --signer t0.pub --signer t1.pub --signer t2.pub --signer t3.pub',
      'keyanchor policy pae openssl-signed > pae.bin',
      ...rows.map((r, i) => `${r.cmd.replaceAll('k.key', `t${i}.key`).replaceAll('k.sig', `t${i}.sig`)}\nkeyanchor policy sign openssl-signed --add --signature t${i}.sig --public-key t${i}.pub`),
      'keyanchor policy check openssl-signed --root-key t0.pub --root-key t1.pub --root-key t2.pub --root-key t3.pub --threshold 4',
    ].join('\n');
    const r = bash(script);
    expect({ status: r.status, stderr: quiet(r.stderr) }).toEqual({ status: 0, stderr: [] });
    expect(r.stdout).toMatch(/signed bundle: version 1 \(root version 1\), expires [^,]+, 4 valid signature\(s\), 4 required, manifest [0-9a-f]{64}\n$/);
    // The signatures really are openssl's: each one verifies with openssl too.
    execFileSync('openssl', ['dgst', '-sha256', '-verify', 't1.pub', '-signature', 't1.sig', 'pae.bin'], { cwd: dir, stdio: 'pipe' });
  });
});
