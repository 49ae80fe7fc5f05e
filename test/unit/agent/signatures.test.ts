import { execFileSync } from 'node:child_process';
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectSignatures, normaliseSignature, readCertChain, readSignatureFile } from '../../../attest-agent/src/signatures.js';
import { makeNodeCert, scratchDir } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());
const file = (name: string, content: string | Buffer) => {
  const p = join(scratch.dir, name);
  writeFileSync(p, content);
  return p;
};

// A publisher key and a DER ECDSA signature over a program, made with openssl.
const publisher = makeNodeCert(scratch.dir, 'P-256', 'publisher');
const program = file('program', 'program bytes\n');
const derSigFile = join(scratch.dir, 'program.der.sig');
execFileSync('openssl', ['dgst', '-sha256', '-sign', publisher.keyFile, '-out', derSigFile, program]);
const der = readFileSync(derSigFile);

describe('signature normalisation', () => {
  it('keeps raw DER as is', async () => {
    expect(der[0]).toBe(0x30);
    expect((await readSignatureFile(derSigFile)).equals(der)).toBe(true);
  });

  it('decodes base64 text as cosign sign-blob prints it (with a trailing newline)', async () => {
    const b64File = file('program.b64.sig', `${der.toString('base64')}\n`);
    expect((await readSignatureFile(b64File)).equals(der)).toBe(true);
  });

  it('decodes wrapped base64 and base64url text', () => {
    const wrapped = der.toString('base64').replace(/(.{16})/g, '$1\n');
    expect(normaliseSignature(Buffer.from(wrapped)).equals(der)).toBe(true);
    expect(normaliseSignature(Buffer.from(der.toString('base64url'))).equals(der)).toBe(true);
  });

  it('produces bytes that still verify against the publisher key', async () => {
    const bytes = await readSignatureFile(file('v.sig', der.toString('base64')));
    const pub = createPublicKey(publisher.certPem);
    expect(verify('sha256', readFileSync(program), pub, bytes)).toBe(true);
  });

  it('rejects empty and oversized files with signature_unreadable', async () => {
    await expect(readSignatureFile(file('empty.sig', ''))).rejects.toMatchObject({ code: 'signature_unreadable' });
    await expect(readSignatureFile(file('huge.sig', Buffer.alloc(20_000, 1)))).rejects.toMatchObject({ code: 'signature_unreadable' });
    await expect(readSignatureFile(join(scratch.dir, 'absent.sig'))).rejects.toMatchObject({ code: 'signature_unreadable' });
  });
});

describe('certificate chains', () => {
  it('turns a PEM chain into x5c, leaf first', async () => {
    const other = makeNodeCert(scratch.dir, 'Ed25519', 'other');
    const chain = file('chain.pem', publisher.certPem + other.certPem);
    const x5c = await readCertChain(chain);
    expect(x5c).toHaveLength(2);
    expect(new X509Certificate(Buffer.from(x5c[0]!, 'base64')).subject).toContain('node-publisher');
    expect(new X509Certificate(Buffer.from(x5c[1]!, 'base64')).subject).toContain('node-other');
  });

  it('rejects files without certificates', async () => {
    await expect(readCertChain(file('nocert.pem', 'hello'))).rejects.toMatchObject({ code: 'signature_unreadable' });
  });
});

describe('collectSignatures', () => {
  it('uses PROGRAM.sig beside the program when no --sig is given', async () => {
    const prog = file('withsig', 'x');
    file('withsig.sig', der.toString('base64'));
    const { binary, image } = await collectSignatures({ sigFiles: [], programPath: prog, imageSigs: [] });
    expect(binary).toEqual([{ sig: der.toString('base64url') }]);
    expect(image).toEqual([]);
    const none = await collectSignatures({ sigFiles: [], programPath: file('nosig', 'y'), imageSigs: [] });
    expect(none.binary).toEqual([]);
  });

  it('adds x5c from --sig-cert and reads image payload/signature pairs', async () => {
    const payload = file('payload.json', '{"critical":{"image":{"docker-manifest-digest":"sha256:00"}}}');
    const { binary, image } = await collectSignatures({
      sigFiles: [derSigFile],
      programPath: program,
      sigCert: file('pub.pem', publisher.certPem),
      imageSigs: [{ payload, sig: derSigFile }],
    });
    const x5c = await readCertChain(join(scratch.dir, 'pub.pem'));
    expect(binary).toEqual([{ sig: der.toString('base64url'), x5c }]);
    expect(image).toEqual([{ payload: Buffer.from(readFileSync(payload)).toString('base64url'), sig: der.toString('base64url'), x5c }]);
  });
});
