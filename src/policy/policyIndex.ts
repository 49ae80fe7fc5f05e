/**
 * Lookup tables built once per policy, so that a decision costs the same with 10 software entries
 * or 10,000: no request scans every entry, zone or publisher.
 *
 * - software: entries without an image rule by what approves their binary (a pinned digest or a
 *   publisher); entries with one by each pair (binary approver, image approver), so that a
 *   release's candidates are the entries that can approve both its binary and its image, however
 *   many entries share a publisher; only those candidates are checked;
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
  /** Entries that may approve this binary (and image), in policy order; the caller checks each. */
  softwareFor(binary: { sha256: string; publishers: ReadonlySet<string> }, image?: { digest: string; publishers: ReadonlySet<string> }): Software[];
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

/** An entry with more (binary, image) approver pairs than this is indexed by its binary approvers only. */
const MAX_PAIRS = 64;
const approvers = (rule: { digests: Iterable<string>; publishers: readonly string[] }): string[] => [...[...rule.digests].map((d) => `d:${d}`), ...rule.publishers.map((p) => `p:${p}`)];
const claimed = (digest: string, publishers: ReadonlySet<string>): string[] => [`d:${digest}`, ...[...publishers].map((p) => `p:${p}`)];

/** Filled entry by entry (hydration adds them in chunks), then finished with the whole policy. */
export class SoftwareIndexBuilder {
  /** Entries without an image rule, or with too many pairs, by binary approver. */
  private readonly byBinary = new Map<string, number[]>();
  /** Entries with an image rule, by `binary approver \n image approver`. */
  private readonly byPair = new Map<string, number[]>();

  add(sw: Software, pos: number): void {
    const bins = approvers(sw.binary);
    const imgs = sw.image ? approvers(sw.image) : [];
    if (!sw.image || bins.length * imgs.length > MAX_PAIRS) for (const b of bins) push(this.byBinary, b, pos);
    else for (const b of bins) for (const m of imgs) push(this.byPair, `${b}\n${m}`, pos);
  }

  finish(policy: Policy): PolicyIndex {
    const { byBinary, byPair } = this;
    const zones = zoneIndex(policy.zones);
    const keyPublishers = [...policy.publishers.values()].filter((p) => p.kind === 'key');
    const order = new Map<Publisher, number>();
    const bySubject = new Map<string, Publisher[]>();
    for (const p of policy.publishers.values()) {
      order.set(p, order.size);
      if (p.kind === 'ca') bySubject.set(p.ca.subject, [...(bySubject.get(p.ca.subject) ?? []), p]);
    }
    return {
      softwareFor(binary, image) {
        const lists: number[][] = [];
        const imgs = image ? claimed(image.digest, image.publishers) : [];
        for (const b of claimed(binary.sha256, binary.publishers)) {
          const l = byBinary.get(b);
          if (l) lists.push(l);
          for (const m of imgs) {
            const pair = byPair.get(`${b}\n${m}`);
            if (pair) lists.push(pair);
          }
        }
        if (lists.length === 0) return [];
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
    const lists: number[][] = [];
    const add = (l: number[] | undefined) => l && lists.push(l);
    for (const uri of node.sanUris) for (const n of lengths) if (uri.length >= n) add(byPrefix.get(uri.slice(0, n)));
    add(bySubject.get(node.subject));
    add(byCA.get(node.nodeCA));
    if (lists.length === 0) return [];
    const positions = lists.length === 1 ? lists[0]! : [...new Set(lists.flat())].sort((a, b) => a - b);
    const out: string[] = [];
    for (const i of positions) if (matchesZone(zones[i]!, node)) out.push(zones[i]!.name);
    return out;
  };
}

export function matchesZone(z: Zone, node: NodeIdentity): boolean {
  const m = z.match;
  if (m.nodeCA !== undefined && m.nodeCA !== node.nodeCA) return false;
  if (m.subject !== undefined && m.subject !== node.subject) return false;
  if (m.sanUriPrefix !== undefined && !node.sanUris.some((u) => u.startsWith(m.sanUriPrefix!))) return false;
  return true;
}
