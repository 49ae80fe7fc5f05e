/**
 * `keyanchor policy explain`: the decision for a described request, with the why — which software
 * entries approve it and how, which grant gives each key, or the rule that denied it and the near
 * misses (an entry whose binary rule approves but whose image rule does not; a grant of the key
 * in another zone, to other nodes, or pinned to another version). The decision is evaluate()'s,
 * the same function the broker runs; the rest is read from the policy around it.
 */
import { approvedSoftware, approves, evaluate, grantAllows, type Claims, type Decision } from './evaluate.js';
import type { ArtifactRule, Policy, Software } from './types.js';

export interface Explanation {
  decision: Decision;
  node: { subject: string; sanUris: string[]; nodeCA: string; zones: string[] };
  software: Array<{ name: string; binary: string; image: string }>;
  keys: Array<{ key: string; granted: boolean; why: string }>;
  nearMisses: string[];
}

const MAX_NEAR_MISSES = 10;
const keyRef = (k: { name: string; version?: number }) => (k.version !== undefined ? `${k.name}@${k.version}` : k.name);

function how(rule: ArtifactRule, digest: string, signedBy: ReadonlySet<string>): string {
  if (rule.digests.has(digest)) return 'pinned by digest';
  const by = rule.publishers.filter((p) => signedBy.has(p));
  if (by.length) return `approved by ${by.join(', ')}`;
  const wants = [rule.digests.size ? `one of ${rule.digests.size} pinned digest(s)` : '', rule.publishers.length ? `a signature by ${rule.publishers.join(' or ')}` : ''].filter(Boolean);
  return `not approved (needs ${wants.join(' or ')})`;
}

function imageHow(sw: Software, claims: Pick<Claims, 'image'>): string {
  if (!sw.image) return 'not required';
  if (!claims.image) return 'required, none sent';
  return how(sw.image, claims.image.digest, claims.image.publishers);
}

export function explain(policy: Policy, claims: Claims): Explanation {
  const decision = evaluate(policy, claims);
  const approved = approvedSoftware(policy, claims);
  const describe = (sw: Software) => ({ name: sw.name, binary: how(sw.binary, claims.binary.sha256, claims.binary.publishers), image: imageHow(sw, claims) });
  const nearMisses: string[] = [];
  const miss = (s: string) => nearMisses.length < MAX_NEAR_MISSES && !nearMisses.includes(s) && nearMisses.push(s);

  // Entries that approve one artifact of the workload but not the other.
  for (const sw of policy.software) {
    if (approved.includes(sw)) continue;
    const bin = approves(sw.binary, claims.binary.sha256, claims.binary.publishers);
    const img = sw.image !== undefined && claims.image !== undefined && approves(sw.image, claims.image.digest, claims.image.publishers);
    if (bin || img) {
      const d = describe(sw);
      miss(`${sw.name}: binary ${d.binary}; image ${d.image}`);
    }
  }

  const keys = claims.keys.map((k) => {
    for (const sw of approved) {
      for (const [gi, g] of sw.grants.entries()) {
        if (grantAllows(g, k, decision.zones, claims.node).ok) {
          return { key: keyRef(k), granted: true, why: `by ${sw.name} (grant ${gi + 1}: zones [${g.zones.join(', ')}]${g.nodes ? `, nodes [${g.nodes.join(', ')}]` : ''})` };
        }
      }
    }
    return { key: keyRef(k), granted: false, why: whyNot(policy, approved, k, decision.zones, claims, miss) };
  });

  return {
    decision,
    node: { subject: claims.node.subject, sanUris: claims.node.sanUris, nodeCA: claims.node.nodeCA, zones: decision.zones },
    software: approved.map(describe),
    keys,
    nearMisses,
  };
}

/** Why no approved entry grants `k` here, with the grants that come closest as near misses. */
function whyNot(policy: Policy, approved: Software[], k: { name: string; version?: number }, zones: string[], claims: Claims, miss: (s: string) => void): string {
  const reasons: string[] = [];
  for (const sw of approved) {
    for (const g of sw.grants) {
      const named = g.keys.find((gk) => gk.name === k.name);
      if (!named) continue;
      if (!g.zones.some((z) => zones.includes(z))) reasons.push(`${sw.name} grants it in zones [${g.zones.join(', ')}]; this node is in zones [${zones.join(', ')}]`);
      else if (g.nodes && !g.nodes.some((n) => n === claims.node.subject || claims.node.sanUris.includes(n))) reasons.push(`${sw.name} grants it only to nodes [${g.nodes.join(', ')}]`);
      else if (named.version !== undefined && k.version !== undefined && named.version !== k.version) reasons.push(`${sw.name} grants it pinned to @${named.version}; @${k.version} was asked`);
    }
  }
  reasons.forEach((r) => miss(`${keyRef(k)}: ${r}`));
  if (reasons.length) return reasons.join('; ');
  const elsewhere = policy.software.filter((sw) => !approved.includes(sw) && sw.grants.some((g) => g.keys.some((gk) => gk.name === k.name))).map((sw) => sw.name);
  if (elsewhere.length) {
    const names = `${elsewhere.slice(0, 5).join(', ')}${elsewhere.length > 5 ? ` and ${elsewhere.length - 5} more` : ''}`;
    miss(`${keyRef(k)}: granted only to ${names} (not approving this workload)`);
    return `no approved software grants it; it is granted only to ${names}`;
  }
  return approved.length ? `no approved software grants it, and no software in the policy does` : 'no software entry approves this workload';
}

/** The explanation as the CLI prints it. */
export function renderExplanation(e: Explanation): string {
  const d = e.decision;
  const lines = [d.allow ? 'decision: ALLOW' : `decision: DENY ${d.code} — ${d.reason}`];
  lines.push(`node: ${JSON.stringify(e.node.subject)}${e.node.nodeCA ? ` (node CA ${e.node.nodeCA})` : ''}${e.node.sanUris.length ? `, SAN ${e.node.sanUris.join(', ')}` : ''} → zones: ${e.node.zones.join(', ') || '(none)'}`);
  lines.push('software:');
  if (e.software.length === 0) lines.push('  (no entry approves this workload)');
  for (const s of e.software) lines.push(`  ${s.name}: binary ${s.binary}; image ${s.image}`);
  lines.push('keys:');
  for (const k of e.keys) lines.push(`  ${k.key}: ${k.granted ? 'granted' : 'NOT granted'} — ${k.why}`);
  if (e.nearMisses.length) {
    lines.push('near misses:');
    for (const m of e.nearMisses) lines.push(`  ${m}`);
  }
  return lines.join('\n') + '\n';
}
