/**
 * The broker's own check of an admin client certificate chain (the second look after OpenSSL's):
 * real certificates issued at test time, time given explicitly.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readAdminCa, verifyClientChain } from '../../../src/admin/mtlsAuth.js';
import { ConfigError } from '../../../src/config.js';
import { BrokerError } from '../../../src/errors.js';
import { issueCertificate, nodeCert, SERVER_AUTH, x509, type Issued } from '../../../src/pki.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY = 86_400_000;
const now = Date.now();

let ca: Issued, otherCa: Issued, inter: Issued, inter2: Issued, notCa: Issued;
let leaf: Issued, viaInter: Issued, viaTwo: Issued, viaNotCa: Issued, foreign: Issued, serverOnly: Issued, clientEku: Issued, caLeaf: Issued;

beforeAll(async () => {
  ca = await issueCertificate({ subject: 'CN=admin CA', ca: true });
  otherCa = await issueCertificate({ subject: 'CN=admin CA', ca: true }); // same name, other key
  inter = await issueCertificate({ subject: 'CN=admin intermediate', ca: true, pathLength: 0 }, ca);
  inter2 = await issueCertificate({ subject: 'CN=admin intermediate 2', ca: true }, inter);
  // keyCertSign but basicConstraints cA=false: OpenSSL's issuer check alone would let it through.
  notCa = await issueCertificate({ subject: 'CN=not a CA', usages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature }, ca);
  leaf = await issueCertificate({ subject: 'CN=ci', uris: ['spiffe://admin.test/ci'] }, ca);
  viaInter = await issueCertificate({ subject: 'CN=ci-2' }, inter);
  viaTwo = await issueCertificate({ subject: 'CN=ci-3' }, inter2);
  viaNotCa = await issueCertificate({ subject: 'CN=ci-4' }, notCa);
  foreign = await issueCertificate({ subject: 'CN=ci' }, otherCa);
  serverOnly = await issueCertificate({ subject: 'CN=ci', eku: [SERVER_AUTH] }, ca);
  clientEku = await issueCertificate({ subject: 'CN=ci', eku: [SERVER_AUTH, CLIENT_AUTH] }, ca);
  caLeaf = await issueCertificate({ subject: 'CN=sub CA', ca: true }, ca);
});

const n = (i: Issued): X509Certificate => nodeCert(i);

function refusal(f: () => void): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    expect((e as BrokerError).code).toBe('unauthorized');
    return (e as BrokerError).reason;
  }
  return 'accepted';
}

const check = (l: Issued, presented: Issued[] = [], at = now, anchors: Issued[] = [ca]) =>
  refusal(() => verifyClientChain(n(l), presented.map(n), anchors.map(n), at));

describe('verifyClientChain', () => {
  it('accepts a leaf issued by the admin CA, with or without EKU clientAuth', () => {
    expect(check(leaf)).toBe('accepted');
    expect(check(clientEku)).toBe('accepted');
  });
  it('accepts a path through a sent intermediate, also when the anchor is appended', () => {
    expect(check(viaInter, [inter])).toBe('accepted');
    expect(check(viaInter, [inter, ca])).toBe('accepted');
  });
  it('refuses a leaf whose intermediate was not sent', () => {
    expect(check(viaInter)).toBe('client certificate does not chain to the admin CA');
  });
  it('refuses a certificate from another CA with the same name', () => {
    expect(check(foreign)).toBe('client certificate does not chain to the admin CA');
    expect(check(foreign, [otherCa])).toBe('intermediate CN=admin CA does not chain to the admin CA');
  });
  it('refuses a leaf with an EKU that lacks clientAuth', () => {
    expect(check(serverOnly)).toBe('client certificate extendedKeyUsage lacks clientAuth');
  });
  it('refuses a CA certificate as a client identity', () => {
    expect(check(caLeaf)).toBe('client certificate is a CA');
  });
  it('refuses a path through a certificate that is not a CA', () => {
    expect(check(viaNotCa, [notCa])).toBe('intermediate CN=not a CA is not a CA allowed to sign certificates');
  });
  it('honours pathLen', () => {
    expect(check(viaTwo, [inter2, inter])).toBe('intermediate CN=admin intermediate pathLen exceeded');
  });
  it('checks validity at the given time, for every certificate on the path', () => {
    expect(check(leaf, [], now + 900 * DAY)).toBe('client certificate is outside its validity period');
    expect(check(leaf, [], now - DAY)).toBe('client certificate is outside its validity period');
  });
  it('refuses when no anchor is configured that issued it', () => {
    expect(check(leaf, [ca], now, [otherCa])).toBe('intermediate CN=admin CA does not chain to the admin CA');
  });
});

describe('readAdminCa', () => {
  it('reads a PEM bundle and refuses a file without CA certificates', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-adminca-'));
    try {
      writeFileSync(path.join(dir, 'bundle.pem'), ca.certPem + otherCa.certPem);
      expect(readAdminCa(path.join(dir, 'bundle.pem')).map((c) => c.subject)).toEqual(['CN=admin CA', 'CN=admin CA']);
      writeFileSync(path.join(dir, 'leaf.pem'), leaf.certPem);
      expect(() => readAdminCa(path.join(dir, 'leaf.pem'))).toThrow(ConfigError);
      writeFileSync(path.join(dir, 'empty.pem'), 'nothing here\n');
      expect(() => readAdminCa(path.join(dir, 'empty.pem'))).toThrow(/holds no PEM certificate/);
      expect(() => readAdminCa(path.join(dir, 'missing.pem'))).toThrow(/cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
