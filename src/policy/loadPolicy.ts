/**
 * One load of a policy directory, start to end, as plain data in and out — what the worker thread
 * runs for the broker and what the CLI runs in process:
 *
 *   read (bounded, regular files) → verify the bundle against the root in force (when one is
 *   pinned) → compile (schema, material, references)
 *
 * Nothing here knows the high-water mark (that check needs the store; the runtime does it).
 */
import { canonicalJson, fileDigests, sha256Hex, type RootData } from './bundle/manifest.js';
import { PolicyRefusal, type RefusalCode } from './bundle/refusals.js';
import { trustRoot } from './bundle/trustRoot.js';
import { verifyBundle } from './bundle/verifyBundle.js';
import { compilePolicy, type CompiledPolicy } from './compile.js';
import { readPolicyTree } from './files.js';
import type { PolicyProblem } from './problems.js';

export interface LoadRequest {
  dir: string;
  vars: Record<string, string>;
  /** The root in force; absent when no root is pinned (unsigned policy). */
  root?: RootData;
  /** Epoch milliseconds, for the bundle's expiry. */
  now: number;
}

/** What a signed bundle says about itself, as plain data. */
export interface BundleInfo {
  version: number;
  /** root version × 2^32 + version: the high-water mark's order. */
  sequence: number;
  expires: number;
  manifestSha256: string;
  signers: string[];
  /** The root in force once accepted (the new one when it rotates). */
  root: RootData;
  rotated: boolean;
}

export type LoadResult =
  | {
      ok: true;
      compiled: CompiledPolicy;
      bundle?: BundleInfo;
      /** Names the content: the bundle's manifest digest, or for an unsigned policy the digest of its file list. */
      manifestSha256: string;
    }
  | { ok: false; code: RefusalCode; problems: PolicyProblem[] };

export function loadPolicy(req: LoadRequest): LoadResult {
  const tree = readPolicyTree(req.dir);
  if (tree.problems.length) return { ok: false, code: 'policy_invalid', problems: tree.problems };
  let bundle: BundleInfo | undefined;
  if (req.root) {
    try {
      const f = verifyBundle(tree, trustRoot(req.root), req.now);
      bundle = { version: f.version, sequence: f.sequence, expires: f.expires, manifestSha256: f.manifestSha256, signers: f.signers, root: f.root.data, rotated: f.rotated };
    } catch (e) {
      if (e instanceof PolicyRefusal) return { ok: false, code: e.code, problems: e.problems };
      throw e;
    }
  }
  const { policy, problems } = compilePolicy(tree, { vars: req.vars, insideOnly: req.root !== undefined });
  if (!policy) return { ok: false, code: 'policy_invalid', problems };
  return { ok: true, compiled: policy, ...(bundle ? { bundle } : {}), manifestSha256: bundle?.manifestSha256 ?? sha256Hex(canonicalJson({ files: fileDigests(tree.files) })) };
}
