/**
 * evaluate(policy, claims) as a decision table: zone membership, software approval, grants,
 * pinned versions, default deny. Pure: policies are built in memory, no files, no crypto.
 */
import { describe, expect, it } from 'vitest';
import { approvedSoftware, evaluate, zonesOf, type Claims, type Decision, type NodeIdentity } from '../../../src/policy/evaluate.js';
import type { Grant, Policy, Software, Zone } from '../../../src/policy/types.js';

const BIN = 'b1'.repeat(32);
const OTHER_BIN = 'cc'.repeat(32);
const IMG = `sha256:${'d4'.repeat(32)}`;

function policy(p: { zones?: Zone[]; software?: Software[] }): Policy {
  return { nodeCAs: new Map(), publishers: new Map(), zones: p.zones ?? [], software: p.software ?? [], teams: [], limits: [], alarms: [], deniedNodes: [], sources: [] };
}

function sw(name: string, o: { digests?: string[]; publishers?: string[]; image?: { digests?: string[]; publishers?: string[] }; grants: Grant[] }): Software {
  return {
    name,
    binary: { digests: new Set(o.digests ?? []), publishers: o.publishers ?? [] },
    ...(o.image ? { image: { digests: new Set(o.image.digests ?? []), publishers: o.image.publishers ?? [] } } : {}),
    grants: o.grants,
  };
}

const node = (o: Partial<NodeIdentity> = {}): NodeIdentity => ({
  nodeCA: 'prod-ca',
  subject: 'O=Example\nCN=node-7',
  sanUris: ['spiffe://example.org/zone/pci/node-7'],
  fingerprint: 'f'.repeat(64),
  ...o,
});

const claims = (o: Partial<Claims> = {}): Claims => ({
  node: node(),
  binary: { sha256: BIN, publishers: new Set() },
  keys: [{ name: 'team/a' }],
  ...o,
});

const denied = (d: Decision) => (d.allow ? 'allowed' : d.code);

describe('zones', () => {
  const zones: Zone[] = [
    { name: 'by-ca', match: { nodeCA: 'prod-ca' } },
    { name: 'by-subject', match: { subject: 'O=Example\nCN=node-7' } },
    { name: 'by-san', match: { sanUriPrefix: 'spiffe://example.org/zone/pci/' } },
    { name: 'all-three', match: { nodeCA: 'prod-ca', subject: 'O=Example\nCN=node-7', sanUriPrefix: 'spiffe://example.org/zone/pci/' } },
    { name: 'ca-and-other-san', match: { nodeCA: 'prod-ca', sanUriPrefix: 'spiffe://example.org/zone/dev/' } },
    { name: 'other-ca-same-san', match: { nodeCA: 'dev-ca', sanUriPrefix: 'spiffe://example.org/zone/pci/' } },
  ];
  const p = policy({ zones });

  it('a node is in every zone whose conditions all hold', () => {
    expect(zonesOf(p, node())).toEqual(['by-ca', 'by-subject', 'by-san', 'all-three']);
  });

  it('nodeCA must match exactly', () => {
    expect(zonesOf(p, node({ nodeCA: 'dev-ca' }))).toEqual(['by-subject', 'by-san', 'other-ca-same-san']);
  });

  it('subject must match the whole DN', () => {
    expect(zonesOf(p, node({ subject: 'CN=node-7' }))).toEqual(['by-ca', 'by-san']);
  });

  it('sanUriPrefix matches a prefix of any SAN URI, not a substring', () => {
    expect(zonesOf(p, node({ sanUris: ['spiffe://other/spiffe://example.org/zone/pci/x', 'spiffe://example.org/zone/dev/n'] }))).toEqual([
      'by-ca',
      'by-subject',
      'ca-and-other-san',
    ]);
    expect(zonesOf(p, node({ sanUris: [] }))).toEqual(['by-ca', 'by-subject']);
  });
});

describe('software approval', () => {
  const grant: Grant = { keys: [{ name: 'team/a' }], zones: ['z'] };
  const zones: Zone[] = [{ name: 'z', match: { nodeCA: 'prod-ca' } }];

  it('by pinned digest', () => {
    const p = policy({ zones, software: [sw('pinned', { digests: [BIN], grants: [grant] })] });
    expect(evaluate(p, claims())).toEqual({ allow: true, zones: ['z'], software: ['pinned'], keys: [{ name: 'team/a' }] });
    expect(denied(evaluate(p, claims({ binary: { sha256: OTHER_BIN, publishers: new Set() } })))).toBe('software_not_approved');
  });

  it('by publisher: a verified signature from a named publisher', () => {
    const p = policy({ zones, software: [sw('signed', { publishers: ['acme'], grants: [grant] })] });
    expect(evaluate(p, claims({ binary: { sha256: OTHER_BIN, publishers: new Set(['acme']) } })).allow).toBe(true);
    expect(denied(evaluate(p, claims({ binary: { sha256: OTHER_BIN, publishers: new Set(['evil']) } })))).toBe('software_not_approved');
    expect(denied(evaluate(p, claims({ binary: { sha256: OTHER_BIN, publishers: new Set() } })))).toBe('software_not_approved');
  });

  it('an image rule requires an image the rule approves', () => {
    const p = policy({ zones, software: [sw('in-image', { digests: [BIN], image: { digests: [IMG] }, grants: [grant] })] });
    expect(denied(evaluate(p, claims()))).toBe('software_not_approved');
    expect(denied(evaluate(p, claims({ image: { digest: `sha256:${'00'.repeat(32)}`, publishers: new Set() } })))).toBe('software_not_approved');
    expect(evaluate(p, claims({ image: { digest: IMG, publishers: new Set() } })).allow).toBe(true);
  });

  it('an image rule approves by image publisher too, and the binary must still be approved', () => {
    const p = policy({ zones, software: [sw('in-image', { digests: [BIN], image: { publishers: ['release'] }, grants: [grant] })] });
    expect(evaluate(p, claims({ image: { digest: IMG, publishers: new Set(['release']) } })).allow).toBe(true);
    expect(
      denied(evaluate(p, claims({ binary: { sha256: OTHER_BIN, publishers: new Set() }, image: { digest: IMG, publishers: new Set(['release']) } }))),
    ).toBe('software_not_approved');
  });

  it('a binary signature does not count as an image signature', () => {
    const p = policy({ zones, software: [sw('in-image', { digests: [BIN], image: { publishers: ['release'] }, grants: [grant] })] });
    expect(approvedSoftware(p, { binary: { sha256: BIN, publishers: new Set(['release']) }, image: { digest: IMG, publishers: new Set() } })).toEqual([]);
  });

  it('the software_not_approved decision still reports the zones', () => {
    const p = policy({ zones, software: [sw('pinned', { digests: [OTHER_BIN], grants: [grant] })] });
    expect(evaluate(p, claims())).toEqual({
      allow: false,
      code: 'software_not_approved',
      reason: 'no software entry approves this binary and image',
      zones: ['z'],
      software: [],
    });
  });
});

describe('grants', () => {
  const zones: Zone[] = [
    { name: 'pci', match: { sanUriPrefix: 'spiffe://example.org/zone/pci/' } },
    { name: 'dev', match: { sanUriPrefix: 'spiffe://example.org/zone/dev/' } },
  ];

  it('a key is granted only in the grant zones', () => {
    const p = policy({ zones, software: [sw('app', { digests: [BIN], grants: [{ keys: [{ name: 'team/a' }], zones: ['dev'] }] })] });
    expect(evaluate(p, claims())).toEqual({
      allow: false,
      code: 'key_not_granted',
      reason: 'team/a is not granted to app in zones [pci]',
      zones: ['pci'],
      software: ['app'],
    });
    expect(evaluate(p, claims({ node: node({ sanUris: ['spiffe://example.org/zone/dev/n1'] }) })).allow).toBe(true);
  });

  it('a key the grants do not name is denied, and one ungranted key denies the whole request', () => {
    const p = policy({ zones, software: [sw('app', { digests: [BIN], grants: [{ keys: [{ name: 'team/a' }], zones: ['pci'] }] })] });
    expect(denied(evaluate(p, claims({ keys: [{ name: 'team/b' }] })))).toBe('key_not_granted');
    expect(denied(evaluate(p, claims({ keys: [{ name: 'team/a' }, { name: 'team/b' }] })))).toBe('key_not_granted');
  });

  it('node selectors match an exact SAN URI or subject', () => {
    const grant: Grant = { keys: [{ name: 'team/a' }], zones: ['pci'], nodes: ['spiffe://example.org/zone/pci/node-9', 'O=Example\nCN=node-8'] };
    const p = policy({ zones, software: [sw('app', { digests: [BIN], grants: [grant] })] });
    expect(denied(evaluate(p, claims()))).toBe('key_not_granted');
    expect(evaluate(p, claims({ node: node({ sanUris: ['spiffe://example.org/zone/pci/node-9'] }) })).allow).toBe(true);
    expect(evaluate(p, claims({ node: node({ subject: 'O=Example\nCN=node-8' }) })).allow).toBe(true);
    // A selector is not a prefix.
    expect(denied(evaluate(p, claims({ node: node({ sanUris: ['spiffe://example.org/zone/pci/node-99'] }) })))).toBe('key_not_granted');
  });

  it('a node selector does not widen the zone', () => {
    const grant: Grant = { keys: [{ name: 'team/a' }], zones: ['dev'], nodes: ['spiffe://example.org/zone/pci/node-7'] };
    const p = policy({ zones, software: [sw('app', { digests: [BIN], grants: [grant] })] });
    expect(denied(evaluate(p, claims()))).toBe('key_not_granted');
  });

  it('an unpinned grant releases the version asked for, or leaves it open', () => {
    const p = policy({ zones, software: [sw('app', { digests: [BIN], grants: [{ keys: [{ name: 'team/a' }], zones: ['pci'] }] })] });
    expect(evaluate(p, claims({ keys: [{ name: 'team/a', version: 3 }] }))).toMatchObject({ allow: true, keys: [{ name: 'team/a', version: 3 }] });
    const open = evaluate(p, claims({ keys: [{ name: 'team/a' }] }));
    expect(open.allow && open.keys).toEqual([{ name: 'team/a' }]);
  });

  describe('a pinned version (team/a@2)', () => {
    const p = policy({ zones, software: [sw('app', { digests: [BIN], grants: [{ keys: [{ name: 'team/a', version: 2 }], zones: ['pci'] }] })] });

    it('a request without a version gets version 2', () => {
      expect(evaluate(p, claims({ keys: [{ name: 'team/a' }] }))).toEqual({ allow: true, zones: ['pci'], software: ['app'], keys: [{ name: 'team/a', version: 2 }] });
    });

    it('a request for @2 gets version 2', () => {
      expect(evaluate(p, claims({ keys: [{ name: 'team/a', version: 2 }] }))).toMatchObject({ allow: true, keys: [{ name: 'team/a', version: 2 }] });
    });

    it('a request for @1 is denied', () => {
      expect(evaluate(p, claims({ keys: [{ name: 'team/a', version: 1 }] }))).toEqual({
        allow: false,
        code: 'key_not_granted',
        reason: 'team/a@1 is not granted to app in zones [pci]',
        zones: ['pci'],
        software: ['app'],
      });
    });
  });

  it('multiple software entries approving the same binary combine their grants', () => {
    const p = policy({
      zones,
      software: [
        sw('by-digest', { digests: [BIN], grants: [{ keys: [{ name: 'team/a' }], zones: ['pci'] }] }),
        sw('by-publisher', { publishers: ['acme'], grants: [{ keys: [{ name: 'team/b', version: 4 }], zones: ['pci'] }] }),
        sw('unrelated', { digests: [OTHER_BIN], grants: [{ keys: [{ name: 'team/c' }], zones: ['pci'] }] }),
      ],
    });
    const c = claims({ binary: { sha256: BIN, publishers: new Set(['acme']) }, keys: [{ name: 'team/a' }, { name: 'team/b' }] });
    expect(evaluate(p, c)).toEqual({
      allow: true,
      zones: ['pci'],
      software: ['by-digest', 'by-publisher'],
      keys: [{ name: 'team/a' }, { name: 'team/b', version: 4 }],
    });
    // The unrelated entry's grants do not apply.
    expect(denied(evaluate(p, { ...c, keys: [{ name: 'team/c' }] }))).toBe('key_not_granted');
    // Without the signature only the digest entry approves; team/b is no longer granted.
    expect(denied(evaluate(p, { ...c, binary: { sha256: BIN, publishers: new Set() } }))).toBe('key_not_granted');
  });

  it('a later grant of the same entry can allow what an earlier one does not', () => {
    const p = policy({
      zones,
      software: [
        sw('app', {
          digests: [BIN],
          grants: [
            { keys: [{ name: 'team/a', version: 1 }], zones: ['dev'] },
            { keys: [{ name: 'team/a', version: 2 }], zones: ['pci'] },
          ],
        }),
      ],
    });
    expect(evaluate(p, claims())).toMatchObject({ allow: true, keys: [{ name: 'team/a', version: 2 }] });
  });
});

describe('default deny', () => {
  it('an empty policy denies everything', () => {
    expect(evaluate(policy({}), claims())).toEqual({
      allow: false,
      code: 'software_not_approved',
      reason: 'no software entry approves this binary and image',
      zones: [],
      software: [],
    });
  });

  it('approved software on a node in no zone gets no key', () => {
    const p = policy({ zones: [{ name: 'z', match: { nodeCA: 'other-ca' } }], software: [sw('app', { digests: [BIN], grants: [{ keys: [{ name: 'team/a' }], zones: ['z'] }] })] });
    expect(evaluate(p, claims())).toMatchObject({ allow: false, code: 'key_not_granted', zones: [], software: ['app'] });
  });
});
