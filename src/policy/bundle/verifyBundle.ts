/**
 * Verifying a signed policy bundle against the trust root in force, as a short sequence of named
 * steps; each failing step contributes problems carrying its refusal code:
 *
 *   1. envelope    policy.dsse is present                        policy_unsigned
 *   2. parse       DSSE envelope, canonical manifest              policy_bundle_malformed
 *   3. threshold   valid signatures by root keys the manifest     policy_below_threshold,
 *                  lists reach the root's threshold               policy_unknown_signer, policy_signature_invalid
 *   4. rotation    a new root is usable and its own threshold     policy_rotation_invalid
 *                  signed the bundle too
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
import { RootError, trustRoot, type TrustRoot } from './trustRoot.js';

export interface BundleFacts {
  version: number;
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
  const refuse = (code: RefusalCode, message: string): never => {
    throw new PolicyRefusal(code, [bundleProblem(where, code, message)]);
  };

  const bytes = tree.files.get(BUNDLE_FILE); // 1
  if (!bytes) return refuse('policy_unsigned', `no ${BUNDLE_FILE}: a trust root is pinned, so the policy must be a signed bundle (keyanchor policy sign)`);

  let env: Envelope; // 2
  let manifest: Manifest;
  try {
    env = parseEnvelope(bytes);
    manifest = parseManifest(env.payload);
  } catch (e) {
    if (e instanceof EnvelopeError || e instanceof ManifestError) return refuse('policy_bundle_malformed', e.message);
    throw e;
  }

  const problems: PolicyProblem[] = [];
  let first: RefusalCode | undefined;
  const add = (code: RefusalCode, message: string, file = where) => {
    first ??= code;
    problems.push(bundleProblem(file, code, message));
  };
  const signed = pae(PAYLOAD_TYPE, env.payload);

  const count = countSignatures(env, manifest, current, signed); // 3
  if (count.valid.length < current.threshold) {
    const code: RefusalCode = count.invalid.length ? 'policy_signature_invalid' : count.unknown.length ? 'policy_unknown_signer' : 'policy_below_threshold';
    add(code, `${count.valid.length} valid signature(s) by trusted keys, the root requires ${current.threshold}${explain(count)}`);
  }

  let root = current; // 4
  let rotated = false;
  if (manifest.root && canonicalJson(manifest.root) !== canonicalJson(current.data)) {
    try {
      root = trustRoot(manifest.root);
      rotated = true;
      const next = countSignatures(env, manifest, root, signed);
      if (next.valid.length < root.threshold) {
        add('policy_rotation_invalid', `the new root requires ${root.threshold} signature(s) by its own keys, the bundle has ${next.valid.length}${explain(next)}`);
      }
    } catch (e) {
      if (!(e instanceof RootError)) throw e;
      add('policy_rotation_invalid', `the new root is unusable: ${e.message}`);
    }
  }

  const diff = compareFiles(manifest.files, fileDigests(tree.files)); // 5
  const at = (f: string) => displayPath(path.join(tree.dir, f));
  for (const f of diff.altered) add('policy_file_altered', `${f} differs from the content signed in the manifest`, at(f));
  for (const f of diff.removed) add('policy_file_removed', `${f} is in the signed manifest but not in the directory`, at(f));
  for (const f of diff.added) add('policy_file_added', `${f} is in the directory but not in the signed manifest`, at(f));

  const expires = Date.parse(manifest.expires); // 6
  if (expires <= now) add('policy_expired', `the bundle expired at ${manifest.expires}`);

  if (first) throw new PolicyRefusal(first, problems);
  return { version: manifest.version, expires, manifestSha256: sha256Hex(env.payload), signers: count.valid, root, rotated };
}

interface Count {
  valid: string[];
  unknown: string[];
  invalid: string[];
  undeclared: string[];
}

/** Distinct keys of `root` that the manifest lists and whose signature verifies; the others, classified. */
function countSignatures(env: Envelope, manifest: Manifest, root: TrustRoot, signed: Buffer): Count {
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

const short = (ids: string[]) => ids.map((k) => k.slice(0, 16)).join(', ');
function explain(c: Count): string {
  const parts: string[] = [];
  if (c.invalid.length) parts.push(`signatures that do not verify: ${short(c.invalid)}`);
  if (c.unknown.length) parts.push(`signatures by keys the root does not trust or the manifest does not list: ${short(c.unknown)}`);
  return parts.length ? ` (${parts.join('; ')})` : '';
}
