/**
 * Fixtures made at test time with the real openssl CLI, in a throwaway directory. The command
 * builders below are the single source of the shell lines in docs/signing.md: each test runs
 * them verbatim through /bin/sh, exactly as a release pipeline would.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const cmd = {
  // keys
  ecKey: (curve: 'P-256' | 'P-384', key: string) => `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:${curve} -out ${key}`,
  ed25519Key: (key: string) => `openssl genpkey -algorithm ed25519 -out ${key}`,
  rsaKey: (bits: number, key: string) => `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:${bits} -out ${key}`,
  publicKey: (key: string, pub: string) => `openssl pkey -in ${key} -pubout -out ${pub}`,

  // 1. digest signatures (ECDSA P-256 / P-384)
  signDigest: (key: string, file: string, sig: string) => `openssl dgst -sha256 -sign ${key} -out ${sig} ${file}`,
  verifyDigest: (pub: string, file: string, sig: string) => `openssl dgst -sha256 -verify ${pub} -signature ${sig} ${file}`,
  base64: (sig: string, out: string) => `openssl base64 -A -in ${sig} -out ${out}`,

  // 2. statement signatures (Ed25519 / RSA-PSS)
  statement: (file: string, stmt: string) =>
    `printf 'keyanchor.artifact.v1:sha256:%s' "$(sha256sum ${file} | cut -d' ' -f1)" > ${stmt}`,
  signEd25519: (key: string, msg: string, sig: string) => `openssl pkeyutl -sign -inkey ${key} -rawin -in ${msg} -out ${sig}`,
  verifyEd25519: (pub: string, msg: string, sig: string) =>
    `openssl pkeyutl -verify -pubin -inkey ${pub} -rawin -in ${msg} -sigfile ${sig}`,
  signRsaPss: (key: string, msg: string, sig: string) =>
    `openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sign ${key} -out ${sig} ${msg}`,
  verifyRsaPss: (pub: string, msg: string, sig: string) =>
    `openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify ${pub} -signature ${sig} ${msg}`,

  // 3. cosign simple-signing payloads
  cosignPayload: (ref: string, digest: string, out: string) =>
    `printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' '${ref}' '${digest}' > ${out}`,
  signPayloadEcdsa: (hash: 'sha256' | 'sha384', key: string, payload: string, sig: string) =>
    `openssl dgst -${hash} -sign ${key} -out ${sig} ${payload}`,
  signPayloadRsaPkcs1: (key: string, payload: string, sig: string) => `openssl dgst -sha256 -sign ${key} -out ${sig} ${payload}`,

  // 4. certificates
  caExt: (out: string) =>
    `printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\n' > ${out}`,
  intermediateExt: (out: string) =>
    `printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ${out}`,
  codeSigningExt: (out: string) =>
    `printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=codeSigning\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ${out}`,
  csr: (key: string, subject: string, csr: string) => `openssl req -new -key ${key} -subj '${subject}' -out ${csr}`,
  selfSign: (csr: string, key: string, ext: string, days: number, cert: string) =>
    `openssl x509 -req -in ${csr} -signkey ${key} -days ${days} -set_serial 1 -extfile ${ext} -out ${cert}`,
  issue: (csr: string, ca: string, caKey: string, serial: number, days: number, ext: string, cert: string) =>
    `openssl x509 -req -in ${csr} -CA ${ca} -CAkey ${caKey} -set_serial ${serial} -days ${days} -extfile ${ext} -out ${cert}`,
  verifyChain: (ca: string, intermediates: string, cert: string) =>
    `openssl verify -CAfile ${ca} -untrusted ${intermediates} -purpose any ${cert}`,
  x5c: (cert: string) => `openssl x509 -in ${cert} -outform DER | openssl base64 -A`,
} as const;

/** A temporary directory where commands run with the directory as cwd. */
export class Workdir {
  readonly dir = mkdtempSync(join(tmpdir(), 'keyanchor-measurement-'));

  sh(line: string): string {
    try {
      return execFileSync('/bin/sh', ['-c', line], { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: string };
      throw new Error(`command failed: ${line}\n${err.stderr ?? ''}`, { cause: e });
    }
  }

  /** Does the command exit 0? (for openssl -verify cross-checks) */
  succeeds(line: string): boolean {
    try {
      this.sh(line);
      return true;
    } catch {
      return false;
    }
  }

  read(name: string): Buffer {
    return readFileSync(join(this.dir, name));
  }

  write(name: string, data: string | Uint8Array): void {
    writeFileSync(join(this.dir, name), data);
  }

  /** What the broker receives as the measured digest: lowercase hex SHA-256 of the file. */
  sha256(name: string): string {
    return createHash('sha256').update(this.read(name)).digest('hex');
  }

  publicKey(name: string): KeyObject {
    return createPublicKey(this.read(name));
  }

  cert(name: string): X509Certificate {
    return new X509Certificate(this.read(name));
  }

  /** One x5c entry: the certificate as standard base64 DER, made by openssl (once per file). */
  x5c(cert: string): string {
    let entry = this.x5cCache.get(cert);
    if (entry === undefined) this.x5cCache.set(cert, (entry = this.sh(cmd.x5c(cert)).trim()));
    return entry;
  }
  private readonly x5cCache = new Map<string, string>();

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The same bytes with one bit flipped at `index` (negative counts from the end). */
export function flipBit(bytes: Uint8Array, index: number): Buffer {
  const copy = Buffer.from(bytes);
  const i = index < 0 ? copy.length + index : index;
  copy[i] = (copy[i] as number) ^ 0x01;
  return copy;
}
