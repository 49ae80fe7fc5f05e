/**
 * Lookup tables built once per policy, so that a decision costs the same with 10 software entries
 * or 10,000: no request scans every entry, zone or publisher.
 *
 * - software: by pinned binary digest and by binary publisher → positions of the entries whose
 *   binary rule can approve; only those are checked (image rule and grants included);
 * - zones: each zone under its most selective condition (SAN URI prefix, then subject, then node
 *   CA); a node looks up its own SAN URI prefixes of the lengths that occur, its subject and CA;
 * - publishers: certificate publishers by their CA's subject (a signing path must name it as an
 *   issuer); bare-key publishers are all candidates, with their verdicts cached per signature.
 *
 * Results keep policy order, as the linear scan they replace did.
 */
import { X509Certificate } from 'node:crypto';
import type { NodeIdentity } from './evaluate.js';
import type { Policy, Publisher, Software, Zone } from './types.js';

export interface PolicyIndex {
  /** Entries whose binary rule approves this digest or one of these publishers, in policy order. */
  softwareFor(sha256: string, publishers: ReadonlySet<string>): Software[];
  /** Zones whose conditions all hold for this node, in policy order. */
  zonesOf(node: NodeIdentity): string[];
  /** Bare-key publishers: any of them may have signed anything. */
  readonly keyPublishers: readonly Publisher[];
  /** Certificate publishers whose CA could end the path of this x5c (leaf first). */
  caPublishersFor(x5c: readonly string[] | undefined): Publisher[];
}

const indexes = new WeakMap<Policy, PolicyIndex>();

/** The index of `policy`, built on first use when hydration did not register one. */
export function indexOf(policy: Policy): PolicyIndex {
  let idx = indexes.get(policy);
  if (!idx) {
    const b = new SoftwareIndexBuilder();
    policy.software.forEach((sw, i) => b.add(sw, i));
    indexes.set(policy, (idx = b.finish(policy)));
  }
  return idx;
}

export function registerIndex(policy: Policy, idx: PolicyIndex): void {
  indexes.set(policy, idx);
}

const push = <K>(m: Map<K, number[]>, k: K, v: number) => {
  const list = m.get(k);
  if (!list) m.set(k, [v]);
  else if (list[list.length - 1] !== v) list.push(v);
};

/** Filled entry by entry (hydration adds them in chunks), then finished with the whole policy. */
export class SoftwareIndexBuilder {
  private readonly byDigest = new Map<string, number[]>();
  private readonly byPublisher = new Map<string, number[]>();

  add(sw: Software, pos: number): void {
    for (const d of sw.binary.digests) push(this.byDigest, d, pos);
    for (const p of sw.binary.publishers) push(this.byPublisher, p, pos);
  }

  finish(policy: Policy): PolicyIndex {
    const { byDigest, byPublisher } = this;
    const zones = zoneIndex(policy.zones);
    const keyPublishers = [...policy.publishers.values()].filter((p) => p.kind === 'key');
    const order = new Map<Publisher, number>();
    const bySubject = new Map<string, Publisher[]>();
    for (const p of policy.publishers.values()) {
      order.set(p, order.size);
      if (p.kind === 'ca') bySubject.set(p.ca.subject, [...(bySubject.get(p.ca.subject) ?? []), p]);
    }
    return {
      softwareFor(sha256, publishers) {
        const lists: number[][] = [];
        const pinned = byDigest.get(sha256);
        if (pinned) lists.push(pinned);
        for (const p of publishers) {
          const l = byPublisher.get(p);
          if (l) lists.push(l);
        }
        const positions = lists.length === 1 ? lists[0]! : [...new Set(lists.flat())].sort((a, b) => a - b);
        return positions.map((i) => policy.software[i]!);
      },
      zonesOf: zones,
      keyPublishers,
      caPublishersFor(x5c) {
        if (bySubject.size === 0 || !x5c?.length) return [];
        let last: X509Certificate;
        try {
          last = new X509Certificate(Buffer.from(x5c[x5c.length - 1]!, 'base64'));
        } catch {
          return []; // not a certificate: no certificate publisher can accept it
        }
        // The path ends below the CA (its issuer is the CA) or, tolerated, with the CA itself.
        const found = new Set([...(bySubject.get(last.issuer) ?? []), ...(bySubject.get(last.subject) ?? [])]);
        return [...found].sort((a, b) => order.get(a)! - order.get(b)!);
      },
    };
  }
}

/** A node's zones: candidates from the tables, then every condition checked, in policy order. */
function zoneIndex(zones: readonly Zone[]): (node: NodeIdentity) => string[] {
  const byPrefix = new Map<string, number[]>();
  const bySubject = new Map<string, number[]>();
  const byCA = new Map<string, number[]>();
  const prefixLengths = new Set<number>();
  zones.forEach((z, i) => {
    const m = z.match;
    if (m.sanUriPrefix !== undefined) {
      push(byPrefix, m.sanUriPrefix, i);
      prefixLengths.add(m.sanUriPrefix.length);
    } else if (m.subject !== undefined) push(bySubject, m.subject, i);
    else if (m.nodeCA !== undefined) push(byCA, m.nodeCA, i);
  });
  const lengths = [...prefixLengths];
  return (node) => {
    const found = new Set<number>();
    const add = (l: number[] | undefined) => l?.forEach((i) => found.add(i));
    for (const uri of node.sanUris) for (const n of lengths) if (uri.length >= n) add(byPrefix.get(uri.slice(0, n)));
    add(bySubject.get(node.subject));
    add(byCA.get(node.nodeCA));
    return [...found]
      .sort((a, b) => a - b)
      .map((i) => zones[i]!)
      .filter((z) => matchesZone(z, node))
      .map((z) => z.name);
  };
}

export function matchesZone(z: Zone, node: NodeIdentity): boolean {
  const m = z.match;
  if (m.nodeCA !== undefined && m.nodeCA !== node.nodeCA) return false;
  if (m.subject !== undefined && m.subject !== node.subject) return false;
  if (m.sanUriPrefix !== undefined && !node.sanUris.some((u) => u.startsWith(m.sanUriPrefix!))) return false;
  return true;
}
