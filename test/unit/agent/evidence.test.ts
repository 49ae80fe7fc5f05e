import { createPublicKey, X509Certificate } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { EvidenceHeaderSchema, EvidencePayloadSchema, EVIDENCE_TYP, MAX_EVIDENCE_BYTES } from '../../../src/protocol.js';
import { buildEvidence } from '../../../attest-agent/src/evidence.js';
import { loadNodeIdentity } from '../../../attest-agent/src/nodeIdentity.js';
import { createRecipient } from '../../../attest-agent/src/recipient.js';
import { makeNodeCert, scratchDir, type NodeKeyKind } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

const NONCE = 'n'.repeat(43);
const SHA = 'a'.repeat(64);
const certs = {
  'P-256': makeNodeCert(scratch.dir, 'P-256'),
  'P-384': makeNodeCert(scratch.dir, 'P-384'),
  Ed25519: makeNodeCert(scratch.dir, 'Ed25519'),
  RSA: makeNodeCert(scratch.dir, 'RSA'),
};

describe('loadNodeIdentity', () => {
  it.each([
    ['P-256', 'ES256'],
    ['P-384', 'ES384'],
    ['Ed25519', 'EdDSA'],
    ['RSA', 'PS256'],
  ] as const)('maps a %s key to %s', (kind, alg) => {
    const id = loadNodeIdentity(certs[kind]);
    expect(id.alg).toBe(alg);
    expect(id.x5c).toHaveLength(1);
  });

  it('refuses a certificate outside its validity period, with the dates', () => {
    const future = new Date(Date.now() + 10 * 86_400_000);
    expect(() => loadNodeIdentity({ ...certs['P-256'], now: future })).toThrow(expect.objectContaining({ code: 'node_cert_expired' }));
    const past = new Date(Date.now() - 86_400_000);
    expect(() => loadNodeIdentity({ ...certs['P-256'], now: past })).toThrow(/valid from/);
  });

  it('refuses a key that does not match the certificate', () => {
    const other = makeNodeCert(scratch.dir, 'P-256', 'other');
    expect(() => loadNodeIdentity({ certPem: certs['P-256'].certPem, keyPem: other.keyPem }))
      .toThrow(expect.objectContaining({ code: 'node_key_mismatch' }));
  });

  it('refuses unsupported key types and garbage with config', () => {
    const p521 = makeNodeCert(scratch.dir, 'P-521');
    expect(() => loadNodeIdentity(p521)).toThrow(expect.objectContaining({ code: 'config' }));
    expect(() => loadNodeIdentity({ certPem: 'nope', keyPem: certs.RSA.keyPem })).toThrow(expect.objectContaining({ code: 'config' }));
    expect(() => loadNodeIdentity({ certPem: certs.RSA.certPem, keyPem: 'nope' })).toThrow(expect.objectContaining({ code: 'config' }));
  });
});

describe('buildEvidence', () => {
  it.each(['P-256', 'P-384', 'Ed25519', 'RSA'] as NodeKeyKind[])('produces a %s-signed JWS that matches the protocol and verifies with the node cert', async (kind) => {
    const node = loadNodeIdentity(certs[kind as keyof typeof certs]);
    const recipient = await createRecipient('EC');
    const now = new Date('2030-01-02T03:04:05.678Z');
    const jws = await buildEvidence({
      node,
      nonce: NONCE,
      now,
      recipient: recipient.publicJwk,
      keys: [{ name: 'billing/db', version: 2 }, { name: 'billing/tls' }],
      workload: {
        binary: { path: '/usr/bin/x', sha256: SHA, signatures: [{ sig: 'AQID' }] },
        image: { ref: 'reg/x:1', digest: `sha256:${SHA}`, signatures: [] },
      },
    });
    const header = EvidenceHeaderSchema.parse(decodeProtectedHeader(jws));
    expect(header).toEqual({ alg: node.alg, typ: EVIDENCE_TYP, x5c: node.x5c });
    const leafKey = new X509Certificate(Buffer.from(header.x5c[0]!, 'base64')).publicKey;
    const { payload } = await compactVerify(jws, leafKey, { algorithms: [node.alg] });
    const claims = EvidencePayloadSchema.parse(JSON.parse(new TextDecoder().decode(payload)));
    expect(claims.iat).toBe(Math.floor(now.getTime() / 1000));
    expect(claims.nonce).toBe(NONCE);
    expect(claims.keys).toEqual([{ name: 'billing/db', version: 2 }, { name: 'billing/tls' }]);
    expect(claims.cnf.jwk).toEqual(recipient.publicJwk);
    expect(claims.workload.image?.digest).toBe(`sha256:${SHA}`);
    // and it does not verify with some other key
    const other = createPublicKey(certs[kind === 'RSA' ? 'P-256' : 'RSA'].certPem);
    await expect(compactVerify(jws, other)).rejects.toThrow();
  });

  it('validates its own payload before signing (bad key name, duplicate keys, bad digest)', async () => {
    const node = loadNodeIdentity(certs['P-256']);
    const { publicJwk } = await createRecipient('EC');
    const base = { node, nonce: NONCE, recipient: publicJwk, workload: { binary: { path: '/x', sha256: SHA, signatures: [] } } };
    await expect(buildEvidence({ ...base, keys: [{ name: 'NoSlash' }] })).rejects.toMatchObject({ code: 'config' });
    await expect(buildEvidence({ ...base, keys: [{ name: 'a/b' }, { name: 'a/b' }] })).rejects.toMatchObject({ code: 'config' });
    await expect(buildEvidence({ ...base, keys: [{ name: 'a/b' }], workload: { binary: { path: '/x', sha256: 'XYZ', signatures: [] } } }))
      .rejects.toThrow(/workload\.binary\.sha256/);
  });

  it('refuses evidence larger than the protocol limit', async () => {
    const node = loadNodeIdentity(certs['P-256']);
    const { publicJwk } = await createRecipient('EC');
    const bigSig = { sig: 'A'.repeat(2048), x5c: Array.from({ length: 5 }, () => 'A'.repeat(16_000)) };
    const jws = buildEvidence({ node, nonce: NONCE, recipient: publicJwk, keys: [{ name: 'a/b' }],
      workload: { binary: { path: '/x', sha256: SHA, signatures: [bigSig] } } });
    await expect(jws).rejects.toMatchObject({ code: 'evidence_too_large' });
    expect(MAX_EVIDENCE_BYTES).toBe(65_536);
  });
});
