/**
 * Every example policy in the repository's `policies/` loads (STYLE.md: "A test loads every file
 * in policies/"): each subdirectory is one policy. The demo policy reads the dev credentials from
 * ${stateDir}, so they are generated into a temporary state directory first, the way the broker
 * does on first start.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devPaths, ensureDevIdentities } from '../../../src/dev/bootstrap.js';
import { evaluate, zonesOf } from '../../../src/policy/evaluate.js';
import { loadPolicyDir } from '../../../src/policy/load.js';
import { runPolicyTests, TESTS_DIR } from '../../../src/policy/policyTests.js';
import type { Policy } from '../../../src/policy/types.js';

const POLICIES = fileURLToPath(new URL('../../../policies', import.meta.url));
let stateDir: string;
const loaded = new Map<string, Policy>();

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'keyanchor-repo-policies-'));
  expect(await ensureDevIdentities(devPaths(stateDir))).toBe(true);
  for (const d of readdirSync(POLICIES)) loaded.set(d, loadPolicyDir(path.join(POLICIES, d), { vars: { stateDir } }));
});
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

describe('policies/', () => {
  it('holds one directory per example policy, each loading on its own', () => {
    expect([...loaded.keys()].sort()).toEqual(['demo', 'payments']);
    expect(loaded.get('demo')!.sources.map((s) => path.basename(s.file))).toEqual(['demo.yaml']);
    expect(loaded.get('payments')!.sources.map((s) => path.basename(s.file))).toEqual(['payments.yaml']);
  });

  it('each policy file opens with a comment on what it expresses and names the JSON Schema', () => {
    for (const [d, p] of loaded) {
      for (const s of p.sources) {
        const text = readFileSync(path.join(POLICIES, d, path.basename(s.file)), 'utf8');
        expect(text).toMatch(/^# yaml-language-server: \$schema=\.\.\/\.\.\/schema\/policy\.schema\.json\n#\n# \S/);
      }
    }
  });

  it('each example ships policy tests beside it, and they pass (what `keyanchor policy test` runs)', () => {
    for (const [d, policy] of loaded) {
      const files = readdirSync(path.join(POLICIES, d, TESTS_DIR)).map((n) => `${TESTS_DIR}/${n}`);
      const { results, problems } = runPolicyTests(policy, path.join(POLICIES, d), files);
      expect(problems, d).toEqual([]);
      expect(results.length, d).toBeGreaterThanOrEqual(3);
      expect(results.filter((r) => !r.pass), d).toEqual([]);
    }
  });

  it('the demo policy alone: the dev node CA, zone, publisher and the demo app', () => {
    const policy = loaded.get('demo')!;
    expect([...policy.nodeCAs.keys()]).toEqual(['dev-nodes']);
    expect(policy.software.map((s) => s.name)).toEqual(['demo-app']);
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
    const policy = loaded.get('payments')!;
    expect({ nodeCAs: policy.nodeCAs.size, zones: policy.zones.length, publishers: policy.publishers.size, software: policy.software.length }).toEqual({
      nodeCAs: 1,
      zones: 2,
      publishers: 2,
      software: 2,
    });
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
