/** Format 4: certificate publishers. The agent sends x5c; the path must lead to the publisher CA. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBinarySignature, checkImageSignature } from '../../../src/measurement/index.js';
import type { Publisher } from '../../../src/policy/types.js';
import { cmd, Workdir } from './openssl.js';

/** Set once the certificates exist: openssl dates them to the second it issues them. */
let NOW: number;
const DAY = 24 * 60 * 60 * 1000;
const SIGNER_SUBJECT = '/O=Example/CN=Example Release Signing';
const DIGEST = `sha256:${'5e'.repeat(32)}`;
let w: Workdir;
let sha256: string;

const caPublisher = (ca: string, subjects?: string[]): Publisher => ({ name: ca, kind: 'ca', ca: w.cert(ca), subjects });
const x5c = (...certs: string[]) => certs.map((c) => w.x5c(c));
const binary = (pub: Publisher, sig: string, chain: string[] | undefined, now?: number) => {
  const v = checkBinarySignature(pub, sha256, w.read(sig), chain, now ?? NOW);
  return v.ok ? 'accepted' : v.reason;
};

let serial = 1000;
/** A certificate for `key`, issued by `ca` with the extensions in `ext`; `extra` appends openssl options. */
function issue(name: string, key: string, ca: string, ext: string, options: { days?: number; subject?: string; extra?: string } = {}): void {
  w.sh(cmd.csr(key, options.subject ?? SIGNER_SUBJECT, `${name}.csr`));
  w.sh(`${cmd.issue(`${name}.csr`, `${ca}.pem`, `${ca}.key`, ++serial, options.days ?? 365, ext, `${name}.pem`)}${options.extra ?? ''}`);
}

function root(name: string, subject: string): void {
  w.sh(cmd.ecKey('P-256', `${name}.key`));
  w.sh(cmd.csr(`${name}.key`, subject, `${name}.csr`));
  w.sh(cmd.selfSign(`${name}.csr`, `${name}.key`, 'ca.ext', 3650, `${name}.pem`));
}

beforeAll(() => {
  w = new Workdir();
  w.write('app', 'the release binary\n');
  sha256 = w.sha256('app');
  w.sh(cmd.caExt('ca.ext'));
  w.sh(cmd.intermediateExt('intermediate.ext'));
  w.sh(cmd.codeSigningExt('codesign.ext'));

  root('ca', '/O=Example/CN=Example Code Signing Root');
  root('other-ca', '/O=Other/CN=Other Root');
  root('impostor-ca', '/O=Example/CN=Example Code Signing Root'); // same name, different key

  w.sh(cmd.ecKey('P-256', 'intermediate.key'));
  issue('intermediate', 'intermediate.key', 'ca', 'intermediate.ext', { subject: '/O=Example/CN=Example Release Intermediate' });
  w.sh(cmd.ecKey('P-256', 'intermediate2.key'));
  issue('intermediate2', 'intermediate2.key', 'intermediate', 'intermediate.ext', { subject: '/O=Example/CN=Second Intermediate' });

  w.sh(cmd.ecKey('P-256', 'signer.key'));
  w.sh(cmd.ed25519Key('ed-signer.key'));
  issue('signer', 'signer.key', 'ca', 'codesign.ext');
  issue('signer-via-intermediate', 'signer.key', 'intermediate', 'codesign.ext');
  issue('signer-too-deep', 'signer.key', 'intermediate2', 'codesign.ext');
  issue('ed-signer', 'ed-signer.key', 'ca', 'codesign.ext');
  issue('signer-other-ca', 'signer.key', 'other-ca', 'codesign.ext');
  issue('signer-impostor', 'signer.key', 'impostor-ca', 'codesign.ext');
  issue('short-lived', 'signer.key', 'ca', 'codesign.ext', { days: 1 });
  issue('sha1', 'signer.key', 'ca', 'codesign.ext', { extra: ' -sha1' });

  // Negative fixtures: extensions a code-signing leaf must not have, or must have.
  w.write('server.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  w.write('encipher.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=codeSigning\n');
  w.write('leaf-ca.ext', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nextendedKeyUsage=codeSigning\n');
  w.write('policy.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\ncertificatePolicies=critical,1.2.3.4\n');
  w.write('codesign-no-aki.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nauthorityKeyIdentifier=none\n');
  issue('signer-impostor-no-aki', 'signer.key', 'impostor-ca', 'codesign-no-aki.ext');
  issue('no-codesigning', 'signer.key', 'ca', 'server.ext');
  issue('no-digitalsignature', 'signer.key', 'ca', 'encipher.ext');
  issue('leaf-is-ca', 'signer.key', 'ca', 'leaf-ca.ext');
  issue('unknown-critical', 'signer.key', 'ca', 'policy.ext');
  // An "intermediate" that is not a CA, with a leaf under it.
  w.sh(cmd.ecKey('P-256', 'not-ca.key'));
  issue('not-ca', 'not-ca.key', 'ca', 'codesign.ext', { subject: '/O=Example/CN=Not A CA' });
  issue('signer-under-not-ca', 'signer.key', 'not-ca', 'codesign.ext');

  w.sh(cmd.signDigest('signer.key', 'app', 'app.sig'));
  w.sh(cmd.statement('app', 'app.stmt'));
  w.sh(cmd.signEd25519('ed-signer.key', 'app.stmt', 'app.ed.sig'));
  w.sh(cmd.signEd25519('ed-signer.key', 'app', 'app.ed-file.sig'));
  w.sh(cmd.cosignPayload('registry.example/app', DIGEST, 'payload.json'));
  w.sh(cmd.signPayloadEcdsa('sha256', 'signer.key', 'payload.json', 'payload.sig'));
  NOW = Date.now() + 1000;
});
afterAll(() => w?.remove());

describe('valid certificate paths', () => {
  it('accepts a signing certificate issued by the publisher CA', () => {
    expect(w.succeeds(cmd.verifyChain('ca.pem', 'ca.pem', 'signer.pem'))).toBe(true); // openssl agrees
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer.pem'))).toBe('accepted');
  });

  it('accepts a signing certificate under an intermediate', () => {
    expect(w.succeeds(cmd.verifyChain('ca.pem', 'intermediate.pem', 'signer-via-intermediate.pem'))).toBe(true);
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer-via-intermediate.pem', 'intermediate.pem'))).toBe('accepted');
  });

  it('tolerates the CA itself at the end of x5c, but not alone', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer.pem', 'ca.pem'))).toBe('accepted');
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('ca.pem'))).toMatch(/only the publisher CA/);
  });

  it('uses the signing certificate key in the format of its type (Ed25519: statement)', () => {
    expect(binary(caPublisher('ca.pem'), 'app.ed.sig', x5c('ed-signer.pem'))).toBe('accepted');
    expect(binary(caPublisher('ca.pem'), 'app.ed-file.sig', x5c('ed-signer.pem'))).toMatch(/Ed25519 statement signature does not verify/);
  });

  it('accepts a cosign image signature made with the signing certificate key', () => {
    const v = checkImageSignature(caPublisher('ca.pem'), DIGEST, w.read('payload.json'), w.read('payload.sig'), x5c('signer.pem'), NOW);
    expect(v).toEqual({ ok: true });
  });

  it('matches subjects exactly, in node X509Certificate.subject form', () => {
    expect(w.cert('signer.pem').subject).toBe('O=Example\nCN=Example Release Signing');
    expect(binary(caPublisher('ca.pem', ['O=Example\nCN=Example Release Signing']), 'app.sig', x5c('signer.pem'))).toBe('accepted');
    expect(binary(caPublisher('ca.pem', ['O=Example\nCN=Someone Else']), 'app.sig', x5c('signer.pem'))).toMatch(/subject .* is not one of/);
    expect(binary(caPublisher('ca.pem', ['CN=Example Release Signing']), 'app.sig', x5c('signer.pem'))).toMatch(/subject/);
  });
});

describe('refused certificate paths', () => {
  it('a certificate from another CA', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer-other-ca.pem'))).toMatch(/not issued by publisher CA/);
    expect(binary(caPublisher('other-ca.pem'), 'app.sig', x5c('signer.pem'))).toMatch(/not issued by publisher CA/);
  });

  it('a certificate from an impostor CA with the same name', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer-impostor.pem'))).toMatch(/not issued by publisher CA \(names or key ids differ\)/);
    // Without an authority key id only the name links it to the CA; the signature check refuses it.
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer-impostor-no-aki.pem'))).toMatch(/does not verify with publisher CA's key/);
  });

  it('a missing or misplaced intermediate', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer-via-intermediate.pem'))).toMatch(/not issued by/);
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('intermediate.pem', 'signer-via-intermediate.pem'))).toMatch(/signing certificate is a CA/);
  });

  it('a signing certificate without extendedKeyUsage codeSigning', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('no-codesigning.pem'))).toMatch(/lacks extendedKeyUsage codeSigning/);
  });

  it('a signing certificate whose keyUsage lacks digitalSignature', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('no-digitalsignature.pem'))).toMatch(/lacks digitalSignature/);
  });

  it('a signing certificate that is itself a CA', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('leaf-is-ca.pem'))).toMatch(/signing certificate is a CA/);
  });

  it('an expired signing certificate, or one not yet valid', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('short-lived.pem'))).toBe('accepted');
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('short-lived.pem'), NOW + 2 * DAY)).toMatch(/signing certificate expired at/);
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer.pem'), NOW - 2 * DAY)).toMatch(/signing certificate is not valid before/);
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer.pem'), NOW + 20 * 365 * DAY)).toMatch(/expired at/);
  });

  it('an intermediate that is not a CA', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('signer-under-not-ca.pem', 'not-ca.pem'))).toMatch(/intermediate 1 is not a CA/);
  });

  it('a path longer than an intermediate pathlen allows', () => {
    const chain = x5c('signer-too-deep.pem', 'intermediate2.pem', 'intermediate.pem');
    expect(binary(caPublisher('ca.pem'), 'app.sig', chain)).toMatch(/intermediate 2 allows 0 intermediates below it, the path has 1/);
  });

  it('an unknown critical extension', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('unknown-critical.pem'))).toMatch(/unknown critical extension 2.5.29.32/);
  });

  it('a certificate signed with SHA-1', () => {
    expect(binary(caPublisher('ca.pem'), 'app.sig', x5c('sha1.pem'))).toMatch(/SHA-1, SHA-256 or stronger required/);
  });

  it('a signature by a key other than the certificate key', () => {
    expect(binary(caPublisher('ca.pem'), 'app.ed.sig', x5c('signer.pem'))).toMatch(/does not verify/);
  });
});

describe('malformed x5c', () => {
  it('is refused without throwing', () => {
    const pub = caPublisher('ca.pem');
    const good = w.x5c('signer.pem');
    expect(binary(pub, 'app.sig', undefined)).toMatch(/no x5c/);
    expect(binary(pub, 'app.sig', [])).toMatch(/no x5c/);
    expect(binary(pub, 'app.sig', ['not base64!'])).toMatch(/not standard base64/);
    expect(binary(pub, 'app.sig', [good.slice(0, -1)])).toMatch(/not canonical base64/);
    expect(binary(pub, 'app.sig', [`${good}\n`])).toMatch(/not standard base64/);
    expect(binary(pub, 'app.sig', [Buffer.concat([w.cert('signer.pem').raw, Buffer.of(0)]).toString('base64')])).toMatch(/not a DER X.509/);
    expect(binary(pub, 'app.sig', [Buffer.from('garbage').toString('base64')])).toMatch(/not a DER X.509 certificate/);
    expect(binary(pub, 'app.sig', [w.read('signer.pem').toString('base64')])).toMatch(/not a DER X.509 certificate/); // PEM inside
    expect(binary(pub, 'app.sig', Array(6).fill(good))).toMatch(/at most 5 allowed/);
    expect(binary(pub, 'app.sig', [42 as unknown as string])).toMatch(/not standard base64/);
    expect(binary(pub, 'app.sig', x5c('signer.pem'), Number.NaN)).toMatch(/not a finite number/);
  });
});
