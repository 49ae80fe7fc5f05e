/**
 * parseEvidence: size first, then shape. Only the allow-listed asymmetric algorithms get past the
 * header check; `none` and HMAC never do. Keys and certificates are made at test time.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseChain } from '../../../src/attestation/nodeChain.js';
import { parseEvidence, verifyEvidenceSignature } from '../../../src/attestation/evidence.js';
import { BrokerError } from '../../../src/errors.js';
import { issueCertificate, toX5c, type Issued } from '../../../src/pki.js';
import { nonCanonicalBase64 } from '../../helpers/spellings.js';
import { EVIDENCE_TYP, MAX_EVIDENCE_BYTES, PROTOCOL_VERSION } from '../../../src/protocol.js';

let node: Issued;
let other: Issued;
let payload: Record<string, unknown>;

const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function outcome(f: () => unknown): string {
  try {
    f();
    return 'parsed';
  } catch (e) {
    if (!(e instanceof BrokerError)) throw e;
    return `${e.status} ${e.code}`;
  }
}

async function signed(header: Record<string, unknown> = {}, body: unknown = payload, signer: Issued = node): Promise<string> {
  return new CompactSign(Buffer.from(JSON.stringify(body)))
    .setProtectedHeader({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(signer), ...header } as never)
    .sign(createPrivateKey(signer.keyPem));
}

beforeAll(async () => {
  const ca = await issueCertificate({ subject: 'CN=evidence test CA', ca: true });
  node = await issueCertificate({ subject: 'CN=node-1', uris: ['spiffe://t/node-1'] }, ca);
  other = await issueCertificate({ subject: 'CN=node-2' }, ca);
  const { publicKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  payload = {
    ver: PROTOCOL_VERSION,
    nonce: 'n'.repeat(43),
    iat: 1_900_000_000,
    workload: { binary: { path: '/usr/bin/app', sha256: 'ab'.repeat(32) } },
    keys: [{ name: 'team/a' }],
    cnf: { jwk: { kty, crv, x, y } },
  };
});

describe('parseEvidence', () => {
  it('parses well-formed ES256 evidence and fills defaults', async () => {
    const ev = parseEvidence(await signed());
    expect(ev.header.alg).toBe('ES256');
    expect(ev.header.x5c).toEqual(toX5c(node));
    expect(ev.payload.workload.binary.signatures).toEqual([]);
    expect(ev.payload.keys).toEqual([{ name: 'team/a' }]);
  });

  it('more than MAX_EVIDENCE_BYTES: 413 evidence_too_large, before anything else is looked at', () => {
    expect(outcome(() => parseEvidence('a'.repeat(MAX_EVIDENCE_BYTES + 1)))).toBe('413 evidence_too_large');
    expect(outcome(() => parseEvidence('a'.repeat(MAX_EVIDENCE_BYTES)))).toBe('400 evidence_malformed');
  });

  it('the limit counts UTF-8 bytes, not characters', () => {
    const s = 'é'.repeat(MAX_EVIDENCE_BYTES / 2 + 1);
    expect(s.length).toBeLessThan(MAX_EVIDENCE_BYTES);
    expect(outcome(() => parseEvidence(s))).toBe('413 evidence_too_large');
  });

  it('alg "none": evidence_malformed', async () => {
    const jws = `${b64url({ alg: 'none', typ: EVIDENCE_TYP, x5c: toX5c(node) })}.${b64url(payload)}.`;
    expect(outcome(() => parseEvidence(jws))).toBe('400 evidence_malformed');
    // Even with something in the signature slot.
    expect(outcome(() => parseEvidence(`${jws}AAAA`))).toBe('400 evidence_malformed');
  });

  it('alg HS256, correctly MACed: evidence_malformed', async () => {
    const secret = new TextEncoder().encode('x'.repeat(32));
    const jws = await new CompactSign(Buffer.from(JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'HS256', typ: EVIDENCE_TYP, x5c: toX5c(node) } as never)
      .sign(secret);
    expect(outcome(() => parseEvidence(jws))).toBe('400 evidence_malformed');
  });

  it('RS256 and ES512 are not on the allow-list', () => {
    for (const alg of ['RS256', 'ES512', 'es256']) {
      expect(outcome(() => parseEvidence(`${b64url({ alg, typ: EVIDENCE_TYP, x5c: toX5c(node) })}.${b64url(payload)}.AAAA`))).toBe('400 evidence_malformed');
    }
  });

  it('a wrong typ, a missing x5c, or an extra header member: evidence_malformed', async () => {
    expect(outcome(() => parseEvidence(`${b64url({ alg: 'ES256', typ: 'JWT', x5c: toX5c(node) })}.${b64url(payload)}.AAAA`))).toBe('400 evidence_malformed');
    expect(outcome(() => parseEvidence(`${b64url({ alg: 'ES256', typ: EVIDENCE_TYP })}.${b64url(payload)}.AAAA`))).toBe('400 evidence_malformed');
    const withJku = await signed({ jku: 'https://evil.example/keys' });
    expect(outcome(() => parseEvidence(withJku))).toBe('400 evidence_malformed');
  });

  it('not a compact JWS: evidence_malformed', () => {
    for (const s of ['', 'a.b', 'a.b.c.d', 'a.b.', '!!.b.c', `${b64url('not json')}.${b64url(payload)}.AAAA`]) {
      expect(outcome(() => parseEvidence(s))).toBe('400 evidence_malformed');
    }
    expect(outcome(() => parseEvidence(42))).toBe('400 evidence_malformed');
    expect(outcome(() => parseEvidence(undefined))).toBe('400 evidence_malformed');
  });

  it('a payload that breaks the schema: evidence_malformed', async () => {
    expect(outcome(() => parseEvidence(`${b64url({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(node) })}.${b64url({ ...payload, extra: 1 })}.AAAA`))).toBe(
      '400 evidence_malformed',
    );
    expect(outcome(() => parseEvidence(`${b64url({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(node) })}.${b64url({ ...payload, keys: [{ name: 'team/a' }, { name: 'team/a' }] })}.AAAA`))).toBe(
      '400 evidence_malformed',
    );
  });
});

describe('parseEvidence: strict JSON and canonical x5c (issue 6 item 7)', () => {
  const sig = 'A'.repeat(86);
  const hdr = () => JSON.stringify({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(node) });
  const jws = (header: string, body: string) => `${b64url(header)}.${b64url(body)}.${sig}`;

  it('parses the same text without duplicates', () => {
    expect(outcome(() => parseEvidence(jws(hdr(), JSON.stringify(payload))))).toBe('parsed');
  });

  it('a header with two alg members, or two x5c: evidence_malformed', () => {
    expect(outcome(() => parseEvidence(jws(hdr().replace('{', '{"alg":"none",'), JSON.stringify(payload))))).toBe('400 evidence_malformed');
    expect(outcome(() => parseEvidence(jws(hdr().replace('{', `{"x5c":${JSON.stringify(toX5c(other))},`), JSON.stringify(payload))))).toBe('400 evidence_malformed');
  });

  it('a payload with two keys members, two nonces, or a duplicate inside cnf.jwk: evidence_malformed', () => {
    const body = JSON.stringify(payload);
    for (const dup of [
      body.replace('{', '{"keys":[{"name":"team/other"}],'),
      body.replace('{', '{"nonce":"m' + 'm'.repeat(42) + '",'),
      body.replace('"kty":"EC"', '"kty":"EC","kty":"EC"'),
    ]) {
      expect(() => JSON.parse(dup)).not.toThrow();
      expect(outcome(() => parseEvidence(jws(hdr(), dup)))).toBe('400 evidence_malformed');
    }
  });

  it('crit in the header, a payload that is not UTF-8, a non-canonical segment: evidence_malformed', () => {
    expect(outcome(() => parseEvidence(jws(hdr().replace('{', '{"crit":["exp"],'), JSON.stringify(payload))))).toBe('400 evidence_malformed');
    const bytes = Buffer.concat([Buffer.from('{"x":"caf'), Buffer.of(0xe9), Buffer.from('"}')]);
    expect(outcome(() => parseEvidence(`${b64url(hdr())}.${bytes.toString('base64url')}.${sig}`))).toBe('400 evidence_malformed');
    expect(outcome(() => parseEvidence(`${b64url(hdr())}.${b64url(JSON.stringify(payload))}=.${sig}`))).toBe('400 evidence_malformed');
  });

  it('an x5c entry in non-canonical base64 (same DER, another spelling) is refused by parseChain', () => {
    const leaf = toX5c(node)[0]!;
    const spellings = [`${leaf}=`, nonCanonicalBase64(leaf)];
    for (const s of spellings) {
      expect(Buffer.from(s, 'base64').equals(Buffer.from(leaf, 'base64'))).toBe(true);
      expect(outcome(() => parseChain([s]))).toBe('400 evidence_malformed');
    }
    expect(outcome(() => parseChain([leaf]))).toBe('parsed');
  });
});

describe('verifyEvidenceSignature', () => {
  it('accepts the signature of the leaf key', async () => {
    const ev = parseEvidence(await signed());
    expect(() => verifyEvidenceSignature(ev, parseChain(ev.header.x5c)[0]!)).not.toThrow();
  });

  it('another node key: 401 evidence_signature_invalid', async () => {
    // Signed by `other`, but the x5c names `node`.
    const ev = parseEvidence(await signed({ x5c: toX5c(node) }, payload, other));
    expect(outcome(() => verifyEvidenceSignature(ev, parseChain(ev.header.x5c)[0]!))).toBe('401 evidence_signature_invalid');
  });

  it('an alg that does not fit the leaf key (ES384 header, P-256 leaf): 401 evidence_signature_invalid', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const jws = await new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES384', typ: EVIDENCE_TYP, x5c: toX5c(node) }).sign(p384);
    const ev = parseEvidence(jws);
    expect(outcome(() => verifyEvidenceSignature(ev, parseChain(ev.header.x5c)[0]!))).toBe('401 evidence_signature_invalid');
  });
});
