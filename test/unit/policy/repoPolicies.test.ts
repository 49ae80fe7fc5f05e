/**
 * Every file in the repository's `policies/` directory loads (STYLE.md: "A test loads every file
 * in policies/"). The demo policy reads the dev credentials from ${stateDir}, so they are
 * generated into a temporary state directory first, the way the broker does on first start.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devPaths, ensureDevIdentities } from '../../../src/dev/bootstrap.js';
import { evaluate, zonesOf } from '../../../src/policy/evaluate.js';
import { loadPolicyDir } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';

const POLICIES = fileURLToPath(new URL('../../../policies', import.meta.url));
let stateDir: string;
let policy: Policy;

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'keyanchor-repo-policies-'));
  expect(await ensureDevIdentities(devPaths(stateDir))).toBe(true);
  policy = loadPolicyDir(POLICIES, { vars: { stateDir } });
});
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

describe('policies/', () => {
  it('loads every policy file in the directory', () => {
    const files = readdirSync(POLICIES).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
    expect(files).toEqual(['demo.yaml', 'payments.yaml']);
    expect(policy.sources.map((s) => path.basename(s.file))).toEqual(files);
  });

  it('has the expected numbers of CAs, zones, publishers and software entries', () => {
    expect({
      nodeCAs: policy.nodeCAs.size,
      zones: policy.zones.length,
      publishers: policy.publishers.size,
      software: policy.software.length,
    }).toEqual({ nodeCAs: 2, zones: 3, publishers: 3, software: 3 });
    expect([...policy.nodeCAs.keys()].sort()).toEqual(['dev-nodes', 'payments-nodes']);
    expect(policy.zones.map((z) => z.name).sort()).toEqual(['dev', 'payments', 'pci']);
    expect([...policy.publishers.keys()].sort()).toEqual(['dev-publisher', 'payments-tools', 'release-ca']);
    expect(policy.software.map((s) => s.name).sort()).toEqual(['demo-app', 'payments-api', 'payments-batch']);
  });

  it('each file opens with a comment on what it expresses', () => {
    for (const s of policy.sources) expect(readFileSync(path.join(POLICIES, path.basename(s.file)), 'utf8')).toMatch(/^# \S/);
  });

  it('the demo policy trusts the node CA generated into the state directory', () => {
    const ca = policy.nodeCAs.get('dev-nodes')!;
    expect(ca.cert.raw.equals(Buffer.from(readFileSync(devPaths(stateDir).nodeCa, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64'))).toBe(true);
    const node = { nodeCA: 'dev-nodes', subject: 'CN=demo-node', sanUris: ['spiffe://keyanchor.dev/node/demo-node'], fingerprint: '00' };
    expect(zonesOf(policy, node)).toEqual(['dev']);
    expect(evaluate(policy, { node, binary: { sha256: '0'.repeat(64), publishers: new Set(['dev-publisher']) }, keys: [{ name: 'demo/app-key' }] })).toEqual({
      allow: true,
      zones: ['dev'],
      software: ['demo-app'],
      keys: [{ name: 'demo/app-key' }],
    });
  });

  it('the payments policy pins the reporting key to version 2 on one node', () => {
    const batch = policy.software.find((s) => s.name === 'payments-batch')!;
    expect(batch.grants).toEqual([
      { keys: [{ name: 'payments/reporting', version: 2 }], zones: ['payments'], nodes: ['spiffe://payments.example/zone/batch/node-7'] },
    ]);
    const api = policy.software.find((s) => s.name === 'payments-api')!;
    expect(api.image?.publishers).toEqual(['release-ca']);
    const rc = policy.publishers.get('release-ca');
    expect(rc?.kind === 'ca' && rc.subjects).toEqual(['O=Example Corp\nCN=payments-release']);
  });
});
