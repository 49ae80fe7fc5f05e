/**
 * A second JWE decryption, written from RFC 7516/7518 without the code under test: the openssl
 * CLI does the ECDH (`pkeyutl -derive`) and the RSA-OAEP (`pkeyutl -decrypt`), WebCrypto does the
 * Concat KDF's SHA-256, the AES key unwrap and AES-GCM. Only the compact splitting is shared
 * knowledge. Needs openssl on PATH (checked by the caller with requireTool).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;

const subtle = globalThis.crypto.subtle;
/** DER of SubjectPublicKeyInfo for id-ecPublicKey / prime256v1, up to the 65-byte point. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

const pem = (label: string, der: Buffer) => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;

function openssl(args: string[], files: Record<string, string | Buffer>, input?: Buffer): Buffer {
  const dir = mkdtempSync(path.join(tmpdir(), 'jwe-independent-'));
  try {
    for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, name), data);
    return execFileSync('openssl', args.map((a) => (a.startsWith('@') ? path.join(dir, a.slice(1)) : a)), { input, stdio: ['pipe', 'pipe', 'pipe'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function concatKdf256(z: Buffer, alg: string): Promise<Buffer> {
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const algId = Buffer.from(alg, 'ascii');
  const otherInfo = Buffer.concat([u32(algId.length), algId, u32(0), u32(0), u32(256)]);
  return Buffer.from(await subtle.digest('SHA-256', Buffer.concat([u32(1), z, otherInfo])));
}

async function gcmDecrypt(cek: CryptoKey, parts: string[]): Promise<Buffer> {
  const [, , iv, ct, tag] = parts.map((p) => Buffer.from(p, 'base64url'));
  return Buffer.from(
    await subtle.decrypt(
      { name: 'AES-GCM', iv: iv!, additionalData: Buffer.from(parts[0]!, 'ascii'), tagLength: 128 },
      cek,
      Buffer.concat([ct!, tag!]),
    ),
  );
}

/** Decrypts an ECDH-ES+A256KW / A256GCM compact JWE with the recipient's PKCS#8 PEM key. */
export async function independentEcdhDecrypt(compact: string, recipientPkcs8Pem: string): Promise<{ header: Record<string, unknown>; plaintext: Buffer }> {
  const parts = compact.split('.');
  const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as { epk: { x: string; y: string }; alg: string };
  const point = Buffer.concat([Buffer.of(4), Buffer.from(header.epk.x, 'base64url'), Buffer.from(header.epk.y, 'base64url')]);
  const z = openssl(['pkeyutl', '-derive', '-inkey', '@me.pem', '-peerkey', '@epk.pem'], { 'me.pem': recipientPkcs8Pem, 'epk.pem': pem('PUBLIC KEY', Buffer.concat([P256_SPKI_PREFIX, point])) });
  const kek = await subtle.importKey('raw', await concatKdf256(z, header.alg), 'AES-KW', false, ['unwrapKey']);
  const cek = await subtle.unwrapKey('raw', Buffer.from(parts[1]!, 'base64url'), kek, 'AES-KW', 'AES-GCM', false, ['decrypt']);
  return { header, plaintext: await gcmDecrypt(cek, parts) };
}

/** Decrypts an RSA-OAEP-256 / A256GCM compact JWE with the recipient's PKCS#8 PEM key. */
export async function independentRsaDecrypt(compact: string, recipientPkcs8Pem: string): Promise<{ header: Record<string, unknown>; plaintext: Buffer }> {
  const parts = compact.split('.');
  const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  const rawCek = openssl(
    ['pkeyutl', '-decrypt', '-inkey', '@me.pem', '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256'],
    { 'me.pem': recipientPkcs8Pem },
    Buffer.from(parts[1]!, 'base64url'),
  );
  const cek = await subtle.importKey('raw', rawCek, 'AES-GCM', false, ['decrypt']);
  return { header, plaintext: await gcmDecrypt(cek, parts) };
}
