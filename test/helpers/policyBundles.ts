/**
 * Signed policy bundles for tests: a small valid policy, signing keys made with node:crypto at
 * test time, and the steps the broker runs to accept a bundle (verify against the root in force,
 * check the version, record it in the high-water mark).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkVersion, recordAccepted, trustInForce } from '../../src/policy/bundle/acceptance.js';
import { BUNDLE_FILE } from '../../src/policy/bundle/dsse.js';
import { makeBundle, type BundleSpec } from '../../src/policy/bundle/sign.js';
import { keyId } from '../../src/policy/bundle/signingKeys.js';
import { rootFromPems, trustRoot, type TrustRoot } from '../../src/policy/bundle/trustRoot.js';
import { verifyBundle, type BundleFacts } from '../../src/policy/bundle/verifyBundle.js';
import { readPolicyTree } from '../../src/policy/files.js';
import type { PolicyHighWater } from '../../src/policy/highWater.js';

export const SMALL_POLICY = `zones:
  - name: z1
    match: { subject: "CN=node" }
software:
  - name: app
    binary: { digests: ["${'ab'.repeat(32)}"] }
    grants: [{ keys: [team/a], zones: [z1] }]
`;

export interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  privatePem: string;
  id: string;
}

export function testKey(kind: 'ed25519' | 'p256' | 'p384' | 'rsa-pss' = 'ed25519'): TestKey {
  const { privateKey, publicKey } =
    kind === 'ed25519' ? generateKeyPairSync('ed25519')
    : kind === 'p256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : kind === 'p384' ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
    : generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    id: keyId(publicKey),
  };
}

export const rootOf = (keys: TestKey[], threshold: number): TrustRoot => trustRoot(rootFromPems(keys.map((k) => k.publicPem), threshold));

export function writePolicy(dir: string, files: Record<string, string> = { 'policy.yaml': SMALL_POLICY }): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
}

/** Signs the directory as it is now: `policy.dsse` with a manifest of every file. */
export function signDir(dir: string, spec: Omit<BundleSpec, 'expires' | 'keys' | 'cosigners'> & { expires?: number; keys: TestKey[]; cosigners?: TestKey[] }): void {
  const tree = readPolicyTree(dir);
  const bundle = makeBundle(tree.files, {
    expires: Date.now() + 86_400_000,
    ...spec,
    keys: spec.keys.map((k) => k.privateKey),
    cosigners: (spec.cosigners ?? []).map((k) => k.publicKey),
  });
  writeFileSync(path.join(dir, BUNDLE_FILE), bundle);
}

/** What the broker does with a bundle: verify under the root in force, check and record the version. */
export async function accept(dir: string, pinned: TrustRoot, hw: PolicyHighWater, now = Date.now()): Promise<BundleFacts> {
  const mark = await hw.get();
  const tree = readPolicyTree(dir);
  const facts = verifyBundle(tree, trustInForce(pinned, mark), now);
  checkVersion(dir, mark, facts);
  await recordAccepted(dir, hw, facts, pinned);
  return facts;
}
