import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { CompactEncrypt, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { releaseKid, type ReleasedKey } from '../../../src/protocol.js';
import { createRecipient, type Recipient } from '../../../attest-agent/src/recipient.js';
import { openReleasedKey, openReleasedKeys } from '../../../attest-agent/src/release.js';
import { makeCekJwe, tamper } from './helpers.js';

const NAME = 'billing/db';
const KID = releaseKid(NAME, 3);
const ec = await createRecipient('EC');
const rsa = await createRecipient('RSA');

async function plaintextJwe(r: Recipient, key: Uint8Array, header: Record<string, unknown> = {}, alg?: string): Promise<string> {
  const a = alg ?? (r.type === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256');
  const pub = await importJWK({ ...r.publicJwk, alg: a }, a);
  return new CompactEncrypt(key).setProtectedHeader({ alg: a, enc: 'A256GCM', kid: KID, ...header }).encrypt(pub);
}
const released = (jwe: string, form: 'plaintext' | 'cek' = 'plaintext', version = 3): ReleasedKey => ({ name: NAME, version, form, jwe });
const rsaPrivate = (r: Recipient): KeyObject => (r.decryptionKey as { key: KeyObject }).key;
const rsaPublic = () => createPublicKey(rsaPrivate(rsa));

describe('recipient keys', () => {
  it('are fresh P-256 and RSA-2048 keys whose JWKs match the protocol', () => {
    expect(ec.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW' });
    expect(rsaPrivate(rsa).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(ec.decryptionKey.kty).toBe('EC');
    expect(Object.keys(rsa.publicJwk).sort()).toEqual(['e', 'kty', 'n', 'use']);
  });
});

describe('plaintext form', () => {
  it.each([['EC', ec], ['RSA', rsa]] as const)('opens a key released to an %s recipient', async (_t, r) => {
    const key = randomBytes(32);
    expect((await openReleasedKey(released(await plaintextJwe(r, key)), r)).equals(key)).toBe(true);
  });

  it('opens RSA-OAEP (SHA-1) too', async () => {
    const key = randomBytes(48);
    expect((await openReleasedKey(released(await plaintextJwe(rsa, key, {}, 'RSA-OAEP')), rsa)).equals(key)).toBe(true);
  });

  it('rejects a kid that is not name@version, or missing', async () => {
    const jwe = await plaintextJwe(ec, randomBytes(32), { kid: releaseKid(NAME, 4) });
    await expect(openReleasedKey(released(jwe), ec)).rejects.toMatchObject({ code: 'release_invalid' });
    const noKid = await plaintextJwe(ec, randomBytes(32), { kid: undefined });
    await expect(openReleasedKey(released(noKid), ec)).rejects.toMatchObject({ code: 'release_invalid' });
  });

  it('rejects tampered ciphertext, tag, header and a JWE for another recipient', async () => {
    const jwe = await plaintextJwe(ec, randomBytes(32));
    for (const segment of [3, 4]) {
      await expect(openReleasedKey(released(tamper(jwe, segment)), ec)).rejects.toMatchObject({ code: 'release_invalid' });
    }
    await expect(openReleasedKey(released(tamper(jwe, 0)), ec)).rejects.toMatchObject({ code: 'release_invalid' });
    const other = await createRecipient('EC');
    await expect(openReleasedKey(released(jwe), other)).rejects.toMatchObject({ code: 'release_invalid' });
  });

  it('rejects algorithms outside the protocol (e.g. RSA-OAEP-384)', async () => {
    const jwe = await plaintextJwe(rsa, randomBytes(32), {}, 'RSA-OAEP-384');
    await expect(openReleasedKey(released(jwe), rsa)).rejects.toThrow(/unexpected alg/);
  });

  it('rejects a header with a duplicate member, crit or zip, even when jose would decrypt it', async () => {
    const jwe = await plaintextJwe(ec, randomBytes(32));
    const parts = jwe.split('.');
    const header = Buffer.from(parts[0]!, 'base64url').toString();
    for (const edited of [header.replace('{', `{"kid":"${KID}",`), header.replace('{', '{"crit":["x"],"x":1,'), header.replace('{', '{"zip":"DEF",')]) {
      const forged = [Buffer.from(edited).toString('base64url'), ...parts.slice(1)].join('.');
      await expect(openReleasedKey(released(forged), ec)).rejects.toMatchObject({ code: 'release_invalid' });
    }
  });

  it('never puts key bytes in the error', async () => {
    const key = Buffer.from('supersecretkeymaterial-0123456789');
    const jwe = await plaintextJwe(ec, key, { kid: 'wrong@1' });
    const err = await openReleasedKey(released(jwe), ec).catch((e: Error) => e);
    expect(String((err as Error).message)).not.toContain('supersecret');
  });
});

describe('cek form', () => {
  it.each(['RSA-OAEP', 'RSA-OAEP-256'] as const)('unwraps the CEK (%s) and checks the JWE decrypts to the kid', async (alg) => {
    const { jwe, cek } = makeCekJwe(rsaPublic(), { alg, kid: KID });
    const key = await openReleasedKey(released(jwe, 'cek'), rsa);
    expect(key.equals(cek)).toBe(true);
  });

  it('rejects a JWE whose plaintext is another kid', async () => {
    const { jwe } = makeCekJwe(rsaPublic(), { alg: 'RSA-OAEP-256', kid: KID, plaintext: releaseKid(NAME, 2) });
    await expect(openReleasedKey(released(jwe, 'cek'), rsa)).rejects.toThrow(/name@version/);
  });

  it('rejects tampered ciphertext, tag and encrypted key', async () => {
    const { jwe } = makeCekJwe(rsaPublic(), { alg: 'RSA-OAEP-256', kid: KID });
    for (const segment of [1, 3, 4]) {
      await expect(openReleasedKey(released(tamper(jwe, segment), 'cek'), rsa)).rejects.toMatchObject({ code: 'release_invalid' });
    }
  });

  it('rejects a header that lies about the OAEP hash', async () => {
    const { jwe } = makeCekJwe(rsaPublic(), { alg: 'RSA-OAEP-256', kid: KID });
    const header = Buffer.from(JSON.stringify({ alg: 'RSA-OAEP', enc: 'A256GCM' })).toString('base64url');
    const relabelled = [header, ...jwe.split('.').slice(1)].join('.');
    await expect(openReleasedKey(released(relabelled, 'cek'), rsa)).rejects.toMatchObject({ code: 'release_invalid' });
  });

  it('rejects a CEK of the wrong size, an EC recipient, and another RSA recipient', async () => {
    const short = makeCekJwe(rsaPublic(), { alg: 'RSA-OAEP-256', kid: KID, wrapped: randomBytes(16) });
    await expect(openReleasedKey(released(short.jwe, 'cek'), rsa)).rejects.toThrow(/16 bytes/);
    const mismatched = makeCekJwe(rsaPublic(), { alg: 'RSA-OAEP-256', kid: KID, wrapped: randomBytes(32) });
    await expect(openReleasedKey(released(mismatched.jwe, 'cek'), rsa)).rejects.toThrow(/does not authenticate/);
    const good = makeCekJwe(rsaPublic(), { alg: 'RSA-OAEP-256', kid: KID });
    await expect(openReleasedKey(released(good.jwe, 'cek'), ec)).rejects.toMatchObject({ code: 'release_invalid' });
    const other = await createRecipient('RSA');
    await expect(openReleasedKey(released(good.jwe, 'cek'), other)).rejects.toMatchObject({ code: 'release_invalid' });
  });
});

describe('openReleasedKeys (the released set must be what was asked)', () => {
  it('returns every requested key and its version', async () => {
    const key = randomBytes(32);
    const { keys, versions } = await openReleasedKeys([released(await plaintextJwe(ec, key))], [{ name: NAME }], ec);
    expect(keys.get(NAME)?.equals(key)).toBe(true);
    expect(versions.get(NAME)).toBe(3);
  });

  it('rejects a missing key, an extra key, a duplicate and a wrong version', async () => {
    const one = released(await plaintextJwe(ec, randomBytes(32)));
    await expect(openReleasedKeys([one], [{ name: NAME }, { name: 'billing/tls' }], ec)).rejects.toThrow(/not released/);
    await expect(openReleasedKeys([one], [{ name: 'billing/tls' }], ec)).rejects.toThrow(/not requested/);
    await expect(openReleasedKeys([one, one], [{ name: NAME }], ec)).rejects.toThrow(/twice/);
    await expect(openReleasedKeys([one], [{ name: NAME, version: 2 }], ec)).rejects.toThrow(/asked for 2/);
  });
});
