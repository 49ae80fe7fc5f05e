/**
 * The index gives exactly the answers of the linear scan it replaces: random policies and random
 * claims, decided by evaluate() (indexed) and by a plain filter over every entry and zone.
 */
import { describe, expect, it } from 'vitest';
import { approvedSoftware, zonesOf, type Claims, type NodeIdentity } from '../../../src/policy/evaluate.js';
import type { Policy, Software, Zone } from '../../../src/policy/types.js';

/** A small deterministic generator, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  return { int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!, chance: (p: number) => next() < p };
}

const DIGESTS = Array.from({ length: 12 }, (_, i) => i.toString(16).padStart(64, '0'));
const IMAGES = DIGESTS.map((d) => `sha256:${d}`);
const PUBS = ['p0', 'p1', 'p2', 'p3', 'p4'];
const CAS = ['ca0', 'ca1'];
const SUBJECTS = ['CN=n0', 'CN=n1', 'CN=n2'];
const PREFIXES = ['spiffe://t/', 'spiffe://t/z1/', 'spiffe://t/z2/', 'spiffe://u/', 'spiffe://t/z', 'urn:x', 'spiffe://t/z1/n'];
const SANS = ['spiffe://t/z1/n0', 'spiffe://t/z2/n1', 'spiffe://u/x', 'spiffe://v/y', 'urn:xyz'];

function randomPolicy(r: ReturnType<typeof rng>): Policy {
  const some = <T>(xs: readonly T[], p: number) => xs.filter(() => r.chance(p));
  const zones: Zone[] = Array.from({ length: 8 }, (_, i) => {
    const match = { ...(r.chance(0.5) ? { nodeCA: r.pick(CAS) } : {}), ...(r.chance(0.3) ? { subject: r.pick(SUBJECTS) } : {}), ...(r.chance(0.6) ? { sanUriPrefix: r.pick(PREFIXES) } : {}) };
    return { name: `z${i}`, match: Object.keys(match).length ? match : { nodeCA: r.pick(CAS) } };
  });
  const software: Software[] = Array.from({ length: 40 }, (_, i) => {
    let binary = { digests: new Set(some(DIGESTS, 0.15)), publishers: some(PUBS, 0.2) };
    if (binary.digests.size + binary.publishers.length === 0) binary = { digests: new Set([r.pick(DIGESTS)]), publishers: [] };
    // Now and then an entry that approves everything: too many (binary, image) pairs to index as pairs.
    if (r.chance(0.05)) binary = { digests: new Set(DIGESTS), publishers: [...PUBS] };
    const image = r.chance(0.05) ? { digests: new Set(IMAGES), publishers: [...PUBS] } : r.chance(0.4) ? { digests: new Set(some(IMAGES, 0.2)), publishers: some(PUBS, 0.3) } : undefined;
    return { name: `s${i}`, binary, ...(image ? { image } : {}), grants: [{ keys: [{ name: 'team/a' }], zones: ['z0'] }] };
  });
  return { nodeCAs: new Map(), publishers: new Map(), zones, software, teams: [], limits: [], alarms: [], deniedNodes: [], sources: [] };
}

/** The linear scans the index replaced. */
const linearZones = (p: Policy, n: NodeIdentity) =>
  p.zones
    .filter((z) => (z.match.nodeCA === undefined || z.match.nodeCA === n.nodeCA) && (z.match.subject === undefined || z.match.subject === n.subject) && (z.match.sanUriPrefix === undefined || n.sanUris.some((u) => u.startsWith(z.match.sanUriPrefix!))))
    .map((z) => z.name);
const ok = (rule: { digests: Set<string>; publishers: string[] }, d: string, by: ReadonlySet<string>) => rule.digests.has(d) || rule.publishers.some((p) => by.has(p));
const linearSoftware = (p: Policy, c: Pick<Claims, 'binary' | 'image'>) =>
  p.software.filter((s) => ok(s.binary, c.binary.sha256, c.binary.publishers) && (!s.image || (c.image !== undefined && ok(s.image, c.image.digest, c.image.publishers)))).map((s) => s.name);

describe('the policy index', () => {
  it('agrees with the linear scan on 200 random policies × 50 random requests', () => {
    let compared = 0;
    let nonEmpty = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const p = randomPolicy(r);
      for (let q = 0; q < 50; q++) {
        const node: NodeIdentity = { nodeCA: r.pick(CAS), subject: r.pick(SUBJECTS), sanUris: SANS.filter(() => r.chance(0.4)), fingerprint: '' };
        const claims = {
          binary: { sha256: r.pick(DIGESTS), publishers: new Set(PUBS.filter(() => r.chance(0.2))) },
          ...(r.chance(0.6) ? { image: { digest: r.pick(IMAGES), publishers: new Set(PUBS.filter(() => r.chance(0.3))) } } : {}),
        };
        expect(zonesOf(p, node), `seed ${seed} zones`).toEqual(linearZones(p, node));
        const got = approvedSoftware(p, claims).map((s) => s.name);
        expect(got, `seed ${seed} software`).toEqual(linearSoftware(p, claims));
        compared++;
        if (got.length) nonEmpty++;
      }
    }
    expect(compared).toBe(10_000);
    // The comparison is not vacuous: many requests are approved by some entry.
    expect(nonEmpty).toBeGreaterThan(1000);
  });
});
