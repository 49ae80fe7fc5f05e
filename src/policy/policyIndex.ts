/**
 * Lookup tables built once per policy, so that a decision costs the same with 10 software entries
 * or 10,000: no request scans every entry, zone or publisher.
 *
 * - software: entries without an image rule by what approves their binary (a pinned digest or a
 *   publisher); entries with one by each pair (binary approver, image approver), so that a
 *   release's candidates are the entries that can approve both its binary and its image, however
 *   many entries share a publisher; only those candidates are checked;
 * - zones: each zone under its most selective condition (SAN URI prefix, by its directory; then
 *   subject; then node CA); a node looks up its own URI directories, its subject and its CA;
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

/** What one binary approver (a digest or a publisher) leads to. */
interface BinaryNode {
  /** Entries with no image rule (or too many pairs to index): checked whatever the image. */
  plain: number[];
  /** Entries with an image rule, by what approves their image (made when first needed). */
  byImageDigest?: Map<string, number[]>;
  byImagePublisher?: Map<string, number[]>;
}

const node = (m: Map<string, BinaryNode>, k: string): BinaryNode => {
  let n = m.get(k);
  if (!n) m.set(k, (n = { plain: [] }));
  return n;
};
const pushTo = (list: number[], v: number) => list[list.length - 1] !== v && list.push(v);

/** Filled entry by entry (hydration adds them in chunks), then finished with the whole policy. */
export class SoftwareIndexBuilder {
  private readonly byDigest = new Map<string, BinaryNode>();
  private readonly byPublisher = new Map<string, BinaryNode>();

  add(sw: Software, pos: number): void {
    const bins = [...[...sw.binary.digests].map((d) => node(this.byDigest, d)), ...sw.binary.publishers.map((p) => node(this.byPublisher, p))];
    const img = sw.image;
    if (!img || bins.length * (img.digests.size + img.publishers.length) > MAX_PAIRS) {
      for (const b of bins) pushTo(b.plain, pos);
      return;
    }
    for (const b of bins) {
      for (const d of img.digests) push((b.byImageDigest ??= new Map()), d, pos);
      for (const p of img.publishers) push((b.byImagePublisher ??= new Map()), p, pos);
    }
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
      softwareFor(binary, image) {
        const lists: number[][] = [];
        const visit = (b: BinaryNode | undefined) => {
          if (!b) return;
          if (b.plain.length) lists.push(b.plain);
          if (!image) return;
          const d = b.byImageDigest?.get(image.digest);
          if (d) lists.push(d);
          if (b.byImagePublisher) {
            for (const p of image.publishers) {
              const l = b.byImagePublisher.get(p);
              if (l) lists.push(l);
            }
          }
        };
        visit(byDigest.get(binary.sha256));
        for (const p of binary.publishers) visit(byPublisher.get(p));
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

/**
 * A node's zones: candidates from the tables, then every condition checked, in policy order. A
 * SAN URI prefix is filed under its directory (up to its last "/"), and a URI looks up its own
 * directories of the lengths that occur — a few lookups, however many zones there are.
 */
function zoneIndex(zones: readonly Zone[]): (node: NodeIdentity) => string[] {
  const byDir = new Map<string, number[]>();
  const bySubject = new Map<string, number[]>();
  const byCA = new Map<string, number[]>();
  let minDir = Infinity;
  let maxDir = -1;
  zones.forEach((z, i) => {
    const m = z.match;
    if (m.sanUriPrefix !== undefined) {
      const dir = m.sanUriPrefix.slice(0, m.sanUriPrefix.lastIndexOf('/') + 1);
      push(byDir, dir, i);
      minDir = Math.min(minDir, dir.length);
      maxDir = Math.max(maxDir, dir.length);
    } else if (m.subject !== undefined) push(bySubject, m.subject, i);
    else if (m.nodeCA !== undefined) push(byCA, m.nodeCA, i);
  });
  const rootDir = byDir.get('');
  return (node) => {
    const lists: number[][] = [];
    const add = (l: number[] | undefined) => l && lists.push(l);
    if (maxDir >= 0) {
      for (const uri of node.sanUris) {
        if (rootDir) lists.push(rootDir);
        for (let at = uri.indexOf('/', Math.max(0, minDir - 1)); at >= 0 && at < maxDir; at = uri.indexOf('/', at + 1)) add(byDir.get(uri.slice(0, at + 1)));
      }
    }
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
