/**
 * The policy decision, as a pure function of the policy and verified claims. Default deny:
 * software must be approved by some entry, and every requested key must be granted by an
 * approved entry in a zone the node belongs to. Candidates come from the policy's index
 * (policyIndex.ts), so the cost does not grow with the number of entries.
 */
import { indexOf } from './policyIndex.js';
import type { ArtifactRule, Grant, Policy, Software } from './types.js';

/** Who the node is, from its verified certificate chain. */
export interface NodeIdentity {
  nodeCA: string;
  subject: string;
  sanUris: string[];
  /** SHA-256 of the leaf certificate DER. */
  fingerprint: string;
  /** The leaf's serial number, lowercase hex without leading zeros (for the deny-list). */
  serial?: string;
}

export interface Claims {
  node: NodeIdentity;
  /** The measured binary and the publishers whose signatures over it verified. */
  binary: { sha256: string; publishers: ReadonlySet<string> };
  image?: { digest: string; publishers: ReadonlySet<string> };
  keys: ReadonlyArray<{ name: string; version?: number }>;
}

export type Decision =
  | { allow: true; zones: string[]; software: string[]; keys: Array<{ name: string; version?: number }> }
  | { allow: false; code: 'software_not_approved' | 'key_not_granted'; reason: string; zones: string[]; software: string[] };

export const zonesOf = (policy: Policy, node: NodeIdentity): string[] => indexOf(policy).zonesOf(node);

export const approves = (rule: ArtifactRule, digest: string, signedBy: ReadonlySet<string>): boolean =>
  rule.digests.has(digest) || rule.publishers.some((p) => signedBy.has(p));

export function approvedSoftware(policy: Policy, claims: Pick<Claims, 'binary' | 'image'>): Software[] {
  return indexOf(policy).softwareFor(claims.binary, claims.image).filter(
    (sw) =>
      approves(sw.binary, claims.binary.sha256, claims.binary.publishers) &&
      (!sw.image || (claims.image !== undefined && approves(sw.image, claims.image.digest, claims.image.publishers))),
  );
}

export function grantAllows(g: Grant, key: { name: string; version?: number }, zones: string[], node: NodeIdentity): { ok: boolean; version?: number } {
  if (!g.zones.some((z) => zones.includes(z))) return { ok: false };
  if (g.nodes && !g.nodes.some((n) => n === node.subject || node.sanUris.includes(n))) return { ok: false };
  for (const k of g.keys) {
    if (k.name !== key.name) continue;
    if (k.version === undefined) return { ok: true, ...(key.version !== undefined ? { version: key.version } : {}) };
    if (key.version === undefined || key.version === k.version) return { ok: true, version: k.version };
  }
  return { ok: false };
}

export function evaluate(policy: Policy, claims: Claims): Decision {
  const zones = zonesOf(policy, claims.node);
  const software = approvedSoftware(policy, claims);
  const names = software.map((s) => s.name);
  if (software.length === 0) {
    return { allow: false, code: 'software_not_approved', reason: 'no software entry approves this binary and image', zones, software: names };
  }
  const keys: Array<{ name: string; version?: number }> = [];
  for (const key of claims.keys) {
    let granted: { ok: boolean; version?: number } = { ok: false };
    for (const sw of software) {
      for (const g of sw.grants) {
        granted = grantAllows(g, key, zones, claims.node);
        if (granted.ok) break;
      }
      if (granted.ok) break;
    }
    if (!granted.ok) {
      const want = key.version !== undefined ? `${key.name}@${key.version}` : key.name;
      return { allow: false, code: 'key_not_granted', reason: `${want} is not granted to ${names.join(', ')} in zones [${zones.join(', ')}]`, zones, software: names };
    }
    keys.push({ name: key.name, ...(granted.version !== undefined ? { version: granted.version } : {}) });
  }
  return { allow: true, zones, software: names, keys };
}
