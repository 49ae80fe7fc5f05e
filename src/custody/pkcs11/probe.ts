/**
 * The readiness probe: one full release round through the token with the configured mechanisms —
 * generate a data key (AES_KEY_GEN, the wrap mechanism, AES_CMAC), release it to an RSA key of the
 * probe's own (unwrap, CMAC verify, RSA-OAEP with `oaepHash`, AES_GCM) — and then open the result
 * here with node:crypto, so a token that refuses a mechanism or produces output that does not
 * decrypt is found at start, and on a timer, instead of at the first release.
 *
 * The probe's data key is a session object destroyed by the release code like any other; its blob
 * is never stored. The probe's RSA key lives in this process only and opens nothing but the probe.
 */
import { constants, createDecipheriv, generateKeyPair, privateDecrypt, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { Pkcs11CustodyConfig } from '../../config.js';
import { BrokerError } from '../../errors.js';
import { releaseKid, type RecipientJwk } from '../../protocol.js';
import { CustodyNotReady, type KeyCustodian } from '../custodian.js';

const PROBE_REF = { name: 'keyanchor/readiness-probe', version: 1 } as const;

export interface ProbeKey {
  privateKey: KeyObject;
  jwk: RecipientJwk;
}

export async function makeProbeKey(): Promise<ProbeKey> {
  const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const j = publicKey.export({ format: 'jwk' });
  return { privateKey, jwk: { kty: 'RSA', n: j.n!, e: j.e!, use: 'enc' } };
}

type Mechanisms = Pick<Pkcs11CustodyConfig, 'wrapMechanism' | 'oaepHash'>;

/** Runs `step`; a failure becomes CustodyNotReady with `summary` (for /readyz) and the full reason (for the log). */
async function step<T>(summary: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new CustodyNotReady(summary, `pkcs11: readiness probe: ${summary}: ${e instanceof BrokerError ? e.reason : String(e)}`, { cause: e });
  }
}

/** Throws CustodyNotReady naming the step that failed and the config options behind it. */
export async function probeRelease(custodian: Pick<KeyCustodian, 'generate' | 'releaseTo'>, key: ProbeKey, { wrapMechanism, oaepHash }: Mechanisms): Promise<void> {
  const wrapped = await step(`making and wrapping a data key failed (custody.wrapMechanism ${wrapMechanism})`, () => custodian.generate(PROBE_REF));
  const released = await step(`a release to an RSA-OAEP/${oaepHash} recipient failed (custody.oaepHash ${oaepHash}; SoftHSM 2.6 has SHA-1 only)`, () =>
    custodian.releaseTo(PROBE_REF, wrapped, key.jwk));
  const [header, encryptedKey, iv, ciphertext, tag] = released.jwe.split('.').map((p, i) => (i === 0 ? p : Buffer.from(p, 'base64url'))) as [string, Buffer, Buffer, Buffer, Buffer];
  let kid: string;
  try {
    const cek = privateDecrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: oaepHash === 'SHA-1' ? 'sha1' : 'sha256' }, encryptedKey);
    const gcm = createDecipheriv('aes-256-gcm', cek, iv).setAAD(Buffer.from(header, 'ascii')).setAuthTag(tag);
    kid = Buffer.concat([gcm.update(ciphertext), gcm.final()]).toString('utf8');
    cek.fill(0);
  } catch (e) {
    const summary = `the token's release does not decrypt with RSA-OAEP/${oaepHash} and AES-GCM (custody.oaepHash)`;
    throw new CustodyNotReady(summary, `pkcs11: readiness probe: ${summary}: ${(e as Error).message}`, { cause: e });
  }
  if (kid !== releaseKid(PROBE_REF.name, PROBE_REF.version)) {
    throw new CustodyNotReady('the token released something other than the probe key', 'pkcs11: readiness probe: the released content is not the key id');
  }
}
