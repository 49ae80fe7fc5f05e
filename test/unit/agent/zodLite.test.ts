/**
 * The agent's bundle checks the wire types with attest-agent/src/zodLite.ts in place of zod. The
 * same declarations (src/protocol.ts, built here once with zod and once with zodLite, as the
 * agent's build does) must give the same outcome on every input: valid documents of each kind, and
 * hundreds of mutations of them (members removed, added, retyped; lengths and numbers at and past
 * their bounds; nested changes). The same for the shapes of the agent's own schemas (oci.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as real from '../../../src/protocol.js';
import { z as lite } from '../../../attest-agent/src/zodLite.js';
import { ROOT } from '../../helpers/processes.js';

type Protocol = typeof real;
let viaLite: Protocol;
const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-zodlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  const out = path.join(dir, 'protocol.lite.mjs');
  await build({
    entryPoints: [path.join(ROOT, 'src', 'protocol.ts')],
    bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning',
    plugins: [{ name: 'zod-lite', setup: (b) => b.onResolve({ filter: /^zod$/ }, () => ({ path: path.join(ROOT, 'attest-agent', 'src', 'zodLite.ts') })) }],
  });
  viaLite = (await import(out)) as Protocol;
});

const b64u = (n: number, c = 'A') => c.repeat(n);
const hex = (n: number) => 'a'.repeat(n);
const payload = () => ({
  ver: 1,
  nonce: b64u(86),
  iat: 1_764_000_000,
  workload: {
    binary: { path: '/usr/bin/app', sha256: hex(64), signatures: [{ sig: b64u(96) }, { sig: b64u(10), x5c: ['QUJD'] }] },
    image: { ref: 'registry/app:1', digest: `sha256:${hex(64)}`, signatures: [{ payload: b64u(40), sig: b64u(96) }] },
  },
  keys: [{ name: 'team/app-key' }, { name: 'team/other', version: 3 }],
  cnf: { jwk: { kty: 'EC', crv: 'P-256', x: b64u(43), y: b64u(43), alg: 'ECDH-ES+A256KW', use: 'enc' } },
});
const samples: Array<[keyof Protocol, () => unknown]> = [
  ['EvidencePayloadSchema', payload],
  ['EvidencePayloadSchema', () => ({ ...payload(), workload: { binary: { path: '/a', sha256: hex(64) } }, cnf: { jwk: { kty: 'RSA', n: b64u(342), e: 'AQAB' } } })],
  ['EvidenceHeaderSchema', () => ({ alg: 'ES256', typ: real.EVIDENCE_TYP, x5c: ['QUJD', 'REVG'] })],
  ['ChallengeResponseSchema', () => ({ nonce: b64u(86), expiresAt: '2026-11-28T00:00:00.000Z', ttlSeconds: 60, protocolVersion: 1, recipientKeyTypes: ['EC', 'RSA'] })],
  ['AttestResponseSchema', () => ({ requestId: '0123456789abcdef', keys: [{ name: 'team/app-key', version: 2, form: 'plaintext', jwe: 'a.b.c.d.e' }] })],
  ['ProblemSchema', () => ({ type: 'urn:keyanchor:problem:nonce_replayed', title: 'x', status: 401, code: 'nonce_replayed', requestId: 'r', detail: 'd' })],
  ['AttestRequestSchema', () => ({ evidence: 'a.b.c' })],
  ['RecipientJwkSchema', () => ({ kty: 'EC', crv: 'P-256', x: b64u(43), y: b64u(43) })],
  ['KeyName', () => 'team/app-key'],
  ['ImageDigest', () => `sha256:${hex(64)}`],
  ['X5c', () => ['QUJD']],
];

const odd: unknown[] = [undefined, null, true, 0, -1, 1, 1.5, 2 ** 53, -(2 ** 31), '', 'x', 'A'.repeat(200), '💥', [], [1], {}, { a: 1 }, 'sha256:' + hex(64)];

/** Every path to a value inside `v`. */
function paths(v: unknown, at: PropertyKey[] = []): PropertyKey[][] {
  const out: PropertyKey[][] = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}
function edit(v: unknown, at: PropertyKey[], f: (parent: Record<PropertyKey, unknown>, key: PropertyKey) => void): unknown {
  const copy = structuredClone(v);
  if (at.length === 0) return copy;
  let o = copy as Record<PropertyKey, unknown>;
  for (const k of at.slice(0, -1)) o = o[k] as Record<PropertyKey, unknown>;
  f(o, at.at(-1)!);
  return copy;
}
function* mutations(v: unknown): Generator<unknown> {
  yield v;
  for (const x of odd) yield x;
  for (const at of paths(v).slice(1)) {
    yield edit(v, at, (o, k) => delete o[k]);
    for (const x of odd) yield edit(v, at, (o, k) => (o[k] = x));
    const here = at.reduce<unknown>((o, k) => (o as Record<PropertyKey, unknown>)[k], v);
    if (typeof here === 'string') for (const n of [0, 1, 42, 43, 64, 65, 128, 129, 1024, 4097]) yield edit(v, at, (o, k) => (o[k] = here.slice(0, 1).repeat(n) || 'A'.repeat(n)));
    if (typeof here === 'number') for (const n of [0, -1, 0.5, here + 1, 1_000_001]) yield edit(v, at, (o, k) => (o[k] = n));
    if (here && typeof here === 'object' && !Array.isArray(here)) yield edit(v, at, (o, k) => ((o[k] as Record<string, unknown>).extra = 1));
    if (Array.isArray(here)) {
      yield edit(v, at, (o, k) => (o[k] = [...here, ...here, ...here, ...here, ...here, ...here, ...here, ...here, ...here]));
      yield edit(v, at, (o, k) => (o[k] = [...here, here[0]]));
    }
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) yield { ...v, extra: true };
}

describe('zodLite gives zod\'s outcomes on src/protocol.ts', () => {
  it('valid documents of every kind, and their mutations: the same success and the same output', () => {
    let compared = 0;
    let refused = 0;
    for (const [name, make] of samples) {
      for (const input of mutations(make())) {
        const a = (real[name] as z.ZodType).safeParse(input);
        const b = (viaLite[name] as unknown as z.ZodType).safeParse(input);
        expect({ name, input, success: b.success }).toEqual({ name, input, success: a.success });
        if (a.success && b.success) expect(b.data).toEqual(a.data);
        else refused++;
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(1500);
    expect(refused).toBeGreaterThan(1000);
  });

  it('issues name the path of what is wrong', () => {
    const r = viaLite.EvidencePayloadSchema.safeParse({ ...payload(), keys: [{ name: 'NOT A NAME' }] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['keys', 0, 'name']);
    expect(() => viaLite.RecipientJwkSchema.parse({ kty: 'oct' })).toThrow();
  });
});

describe('zodLite on the shapes of the agent\'s own schemas (oci.ts)', () => {
  const make = (zz: typeof z) => {
    const Descriptor = zz.object({ mediaType: zz.string().optional(), digest: zz.string(), size: zz.number().int().nonnegative(), annotations: zz.record(zz.string(), zz.string()).optional() });
    return zz.object({ schemaVersion: zz.literal(2), manifests: zz.array(Descriptor) });
  };
  it('strips unknown members, checks records, as zod does', () => {
    const zodIndex = make(z);
    const liteIndex = make(lite as unknown as typeof z);
    const good = { schemaVersion: 2, extra: 'x', manifests: [{ mediaType: 'm', digest: 'sha256:x', size: 3, annotations: { 'org.opencontainers.image.ref.name': 'v1' }, more: 1 }] };
    for (const input of mutations(good)) {
      const a = zodIndex.safeParse(input);
      const b = liteIndex.safeParse(input);
      expect({ input, success: b.success }).toEqual({ input, success: a.success });
      if (a.success && b.success) expect(b.data).toEqual(a.data);
    }
  });
});
