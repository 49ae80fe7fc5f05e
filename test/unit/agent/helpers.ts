/**
 * Test fixtures for the agent, all generated at test time: node certificates and keys with the
 * openssl CLI, scratch directories, and hand-built `cek`-form JWEs.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function scratchDir(prefix = 'agent-test-', base = tmpdir()): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export type NodeKeyKind = 'P-256' | 'P-384' | 'Ed25519' | 'RSA' | 'P-521';

const NEWKEY: Record<NodeKeyKind, string[]> = {
  'P-256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'P-384': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'P-521': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'],
  Ed25519: ['-newkey', 'ed25519'],
  RSA: ['-newkey', 'rsa:2048'],
};

export interface NodeFiles { certFile: string; keyFile: string; certPem: string; keyPem: string }

/** A self-signed node certificate and its PKCS#8 key, valid for `days` from now. */
export function makeNodeCert(dir: string, kind: NodeKeyKind, name: string = kind, days = 2): NodeFiles {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', ...NEWKEY[kind], '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', String(days), '-subj', `/CN=node-${name}`], { stdio: 'pipe' });
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
}

export interface CekJweOptions {
  alg: 'RSA-OAEP' | 'RSA-OAEP-256';
  kid: string;
  /** The released key (the CEK); random 32 bytes by default. */
  cek?: Buffer;
  /** Plaintext to encrypt; the kid by default. */
  plaintext?: string;
  /** Bytes to wrap in the encrypted key instead of the CEK (to test a lying encrypted key). */
  wrapped?: Buffer;
  /** Extra protected header members. */
  header?: Record<string, unknown>;
}

/**
 * Builds a `cek`-form compact JWE by hand, as the PKCS#11 custodian does: the key is the CEK,
 * wrapped with RSA-OAEP to the recipient; AES-256-GCM over the kid with the protected header
 * (base64url) as AAD.
 */
export function makeCekJwe(recipientPublic: KeyObject, o: CekJweOptions): { jwe: string; cek: Buffer } {
  const cek = o.cek ?? randomBytes(32);
  const header = Buffer.from(JSON.stringify({ alg: o.alg, enc: 'A256GCM', ...o.header })).toString('base64url');
  const encryptedKey = publicEncrypt(
    { key: recipientPublic, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: o.alg === 'RSA-OAEP' ? 'sha1' : 'sha256' },
    o.wrapped ?? cek,
  );
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', cek, iv);
  cipher.setAAD(Buffer.from(header, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(o.plaintext ?? o.kid, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  const jwe = [header, encryptedKey.toString('base64url'), iv.toString('base64url'),
    ciphertext.toString('base64url'), tag.toString('base64url')].join('.');
  return { jwe, cek: Buffer.from(cek) };
}

/** Flips one bit in the given segment of a compact serialization. */
export function tamper(compact: string, segment: number): string {
  const parts = compact.split('.');
  const bytes = Buffer.from(parts[segment]!, 'base64url');
  bytes[bytes.length - 1]! ^= 0x01;
  parts[segment] = bytes.toString('base64url');
  return parts.join('.');
}
