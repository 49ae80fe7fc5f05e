/**
 * What an agent does with a ReleasedKey, written independently of the broker so the contract
 * tests check the wire form rather than the code that made it. Both forms are opened with jose;
 * for `cek` the key is the JWE's content-encryption key, recovered with node:crypto.
 */
import { constants, generateKeyPairSync, privateDecrypt, type KeyObject } from 'node:crypto';
import { compactDecrypt, decodeProtectedHeader } from 'jose';
import type { RecipientJwk, ReleasedKey } from '../../src/protocol.js';

export interface AgentKey {
  kind: 'RSA' | 'EC';
  privateKey: KeyObject;
  jwk: RecipientJwk;
}

export function agentKey(kind: 'RSA' | 'EC', bits = 2048): AgentKey {
  const { publicKey, privateKey } =
    kind === 'RSA' ? generateKeyPairSync('rsa', { modulusLength: bits }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const j = publicKey.export({ format: 'jwk' });
  const jwk: RecipientJwk = kind === 'RSA' ? { kty: 'RSA', n: j.n!, e: j.e!, use: 'enc' } : { kty: 'EC', crv: 'P-256', x: j.x!, y: j.y!, use: 'enc' };
  return { kind, privateKey, jwk };
}

export interface Opened {
  key: Buffer;
  kid: string;
  alg: string;
}

/** Opens a released key; throws when the JWE does not decrypt or the `cek` plaintext is not the kid. */
export async function openReleasedKey(released: ReleasedKey, agent: AgentKey): Promise<Opened> {
  const header = decodeProtectedHeader(released.jwe);
  const kid = String(header.kid);
  const alg = String(header.alg);
  const { plaintext } = await compactDecrypt(released.jwe, agent.privateKey);
  if (released.form === 'plaintext') return { key: Buffer.from(plaintext), kid, alg };
  if (Buffer.from(plaintext).toString('utf8') !== kid) throw new Error('cek JWE plaintext is not its kid');
  const hash = alg === 'RSA-OAEP' ? 'sha1' : alg === 'RSA-OAEP-256' ? 'sha256' : undefined;
  if (!hash) throw new Error(`unexpected cek alg ${alg}`);
  const encryptedKey = Buffer.from(released.jwe.split('.')[1]!, 'base64url');
  const key = privateDecrypt({ key: agent.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, encryptedKey);
  return { key, kid, alg };
}
