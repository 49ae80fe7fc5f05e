/**
 * Verifying a signed policy bundle against the trust root in force, as a short sequence of named
 * steps; each failing step contributes problems carrying its refusal code:
 *
 *   1. envelope    policy.dsse is present                        policy_unsigned
 *   2. parse       DSSE envelope, canonical manifest              policy_bundle_malformed
 *   3. threshold   valid signatures by the root's bundle signers  policy_below_threshold,
 *                  the manifest lists reach their threshold       policy_unknown_signer, policy_signature_invalid
 *   4. rotation    or, when the bundle carries another root: the  the same codes for the old root,
 *                  old root keys' threshold, the new root's own   policy_rotation_invalid (new root,
 *                  threshold, and the next root version           version skipped), policy_rollback
 *   5. files       the directory holds exactly the signed files   policy_file_altered, _added, _removed
 *   6. freshness   `expires` is in the future                     policy_expired
 *
 * What this cannot know — whether the version is above the highest one accepted before — is the
 * policy high-water mark's job (rollback, version conflict), done by the runtime afterwards.
 */
import path from 'node:path';
import { displayPath, type PolicyTree } from '../files.js';
import type { PolicyProblem } from '../problems.js';
import { BUNDLE_FILE, EnvelopeError, PAYLOAD_TYPE, pae, parseEnvelope, type Envelope } from './dsse.js';
import { canonicalJson, compareFiles, fileDigests, ManifestError, parseManifest, sha256Hex, type Manifest } from './manifest.js';
import { bundleProblem, PolicyRefusal, type RefusalCode } from './refusals.js';
import { verifyPae } from './signingKeys.js';
import { RootError, sameRoot, trustRoot, type KeySet, type TrustRoot } from './trustRoot.js';

/**
 * Where a bundle stands in the order of all bundles: root version first, then bundle version, in
 * one safe integer (what the high-water mark stores). A new root starts its bundle versions over,
 * so a signer that pushed the version to its maximum is recovered from by rotating it out.
 */
export const sequenceOf = (rootVersion: number, version: number): number => rootVersion * 2 ** 32 + version;
export const describeSequence = (sequence: number): string => {
  const rootVersion = Math.floor(sequence / 2 ** 32);
  return `version ${sequence - rootVersion * 2 ** 32} (root version ${rootVersion})`;
};

export interface BundleFacts {
  version: number;
  /** root version × 2^32 + version: the high-water mark's order. */
  sequence: number;
  /** Epoch milliseconds. */
  expires: number;
  /** sha256 of the canonical manifest: names this exact bundle in logs and audit records. */
  manifestSha256: string;
  /** Key ids whose valid signatures counted. */
  signers: string[];
  /** The root in force once this bundle is accepted: its new root when it rotates, else the current one. */
  root: TrustRoot;
  rotated: boolean;
}

export function verifyBundle(tree: Pick<PolicyTree, 'dir' | 'files'>, current: TrustRoot, now: number): BundleFacts {
  const where = displayPath(path.join(tree.dir, BUNDLE_FILE));
  const bytes = tree.files.get(BUNDLE_FILE); // 1
  if (!bytes) {
    const code = 'policy_unsigned';
    throw new PolicyRefusal(code, [bundleProblem(where, code, `no ${BUNDLE_FILE}: a trust root is pinned, so the policy must be a signed bundle (keyanchor policy sign)`)]);
  }
  const { env, manifest } = readEnvelope(bytes, where); // 2
  const report = new Report(where);
  const add = report.add;
  const { root, rotated, signers } = checkSignatures(env, manifest, current, add); // 3, 4

  const diff = compareFiles(manifest.files, fileDigests(tree.files)); // 5
  const at = (f: string) => displayPath(path.join(tree.dir, f));
  for (const f of diff.altered) add('policy_file_altered', `${f} differs from the content signed in the manifest`, at(f));
  for (const f of diff.removed) add('policy_file_removed', `${f} is in the signed manifest but not in the directory`, at(f));
  for (const f of diff.added) add('policy_file_added', `${f} is in the directory but not in the signed manifest`, at(f));

  const expires = Date.parse(manifest.expires); // 6
  if (expires <= now) add('policy_expired', `the bundle expired at ${manifest.expires}`);

  report.throwIfAny();
  return { version: manifest.version, sequence: sequenceOf(root.version, manifest.version), expires, manifestSha256: sha256Hex(env.payload), signers, root, rotated };
}

/**
 * A bundle that changed the root, checked on its own (steps 2 to 4: not its files nor its expiry):
 * how `keyanchor policy check --root-bundle` follows a chain of roots without the broker's state.
 */
export function verifyRootChange(bytes: Buffer, current: TrustRoot, where: string): TrustRoot {
  const { env, manifest } = readEnvelope(bytes, where);
  const report = new Report(where);
  const { root, rotated } = checkSignatures(env, manifest, current, report.add);
  if (!rotated) report.add('policy_rotation_invalid', 'this bundle does not change the root in force');
  report.throwIfAny();
  return root;
}

class Report {
  readonly problems: PolicyProblem[] = [];
  private first: RefusalCode | undefined;
  constructor(private readonly where: string) {}
  readonly add = (code: RefusalCode, message: string, file = this.where): void => {
    this.first ??= code;
    this.problems.push(bundleProblem(file, code, message));
  };
  throwIfAny(): void {
    if (this.first) throw new PolicyRefusal(this.first, this.problems);
  }
}

function readEnvelope(bytes: Buffer, where: string): { env: Envelope; manifest: Manifest } {
  try {
    const env = parseEnvelope(bytes);
    return { env, manifest: parseManifest(env.payload) };
  } catch (e) {
    if (!(e instanceof EnvelopeError || e instanceof ManifestError)) throw e;
    throw new PolicyRefusal('policy_bundle_malformed', [bundleProblem(where, 'policy_bundle_malformed', e.message)]);
  }
}

/** Steps 3 and 4: the threshold of the bundle signers, or for a root change that of the old and new root keys. */
function checkSignatures(env: Envelope, manifest: Manifest, current: TrustRoot, add: Report['add']): { root: TrustRoot; rotated: boolean; signers: string[] } {
  const signed = pae(PAYLOAD_TYPE, env.payload);
  if (!manifest.root || sameRoot(manifest.root, current.data)) {
    const count = countSignatures(env, manifest, current.bundleSigners, signed);
    if (count.valid.length < current.bundleSigners.threshold) {
      add(codeFor(count), `${count.valid.length} valid signature(s) by trusted keys, the ${current.data.signers ? "root's signers require" : 'root requires'} ${current.bundleSigners.threshold}${explain(count)}`);
    }
    return { root: current, rotated: false, signers: count.valid };
  }
  const old = countSignatures(env, manifest, current, signed);
  if (old.valid.length < current.threshold) {
    add(codeFor(old), `${old.valid.length} valid signature(s) by the root keys in force; changing the root needs ${current.threshold}${explain(old)}`);
  }
  let root: TrustRoot;
  try {
    root = trustRoot(manifest.root);
  } catch (e) {
    if (!(e instanceof RootError)) throw e;
    add('policy_rotation_invalid', `the new root is unusable: ${e.message}`);
    return { root: current, rotated: false, signers: old.valid };
  }
  if (root.version <= current.version) add('policy_rollback', `the bundle carries root version ${root.version}; root version ${current.version} is in force`);
  else if (root.version !== current.version + 1) add('policy_rotation_invalid', `the new root must be version ${current.version + 1}, it is ${root.version}`);
  const next = countSignatures(env, manifest, root, signed);
  if (next.valid.length < root.threshold) {
    add('policy_rotation_invalid', `the new root requires ${root.threshold} signature(s) by its own keys, the bundle has ${next.valid.length}${explain(next)}`);
  }
  return { root, rotated: true, signers: [...new Set([...old.valid, ...next.valid])] };
}

interface Count {
  valid: string[];
  unknown: string[];
  invalid: string[];
  undeclared: string[];
}

/** Distinct keys of `root` that the manifest lists and whose signature verifies; the others, classified. */
function countSignatures(env: Envelope, manifest: Manifest, root: KeySet, signed: Buffer): Count {
  const c: Count = { valid: [], unknown: [], invalid: [], undeclared: [] };
  const declared = new Set(manifest.signers);
  for (const s of env.signatures) {
    if (c.valid.includes(s.keyid)) continue; // one key counts once, however often it signed
    const key = root.keys.get(s.keyid);
    if (!key) c.unknown.push(s.keyid);
    else if (!declared.has(s.keyid)) c.undeclared.push(s.keyid);
    else if (verifyPae(key, signed, s.sig)) c.valid.push(s.keyid);
    else c.invalid.push(s.keyid);
  }
  c.unknown.push(...c.undeclared);
  return c;
}

const codeFor = (c: Count): RefusalCode => (c.invalid.length ? 'policy_signature_invalid' : c.unknown.length ? 'policy_unknown_signer' : 'policy_below_threshold');

const short = (ids: string[]) => ids.map((k) => k.slice(0, 16)).join(', ');
function explain(c: Count): string {
  const parts: string[] = [];
  if (c.invalid.length) parts.push(`signatures that do not verify: ${short(c.invalid)}`);
  if (c.unknown.length) parts.push(`signatures by keys the root does not trust or the manifest does not list: ${short(c.unknown)}`);
  return parts.length ? ` (${parts.join('; ')})` : '';
}
