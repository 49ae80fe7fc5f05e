/** Format 3: cosign simple-signing payloads for container images, signed with openssl. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkImageSignature, verifyImageSignature } from '../../../src/measurement/index.js';
import type { Publisher } from '../../../src/policy/types.js';
import { cmd, flipBit, Workdir } from './openssl.js';

const NOW = Date.now();
const REF = 'registry.example/app';
const DIGEST = `sha256:${randomBytes(32).toString('hex')}`;
const OTHER_DIGEST = `sha256:${randomBytes(32).toString('hex')}`;
const TYPE = 'cosign container image signature';
let w: Workdir;

const publisher = (pub: string): Publisher => ({ name: pub, kind: 'key', key: w.publicKey(pub) });
const reason = (pub: string, digest: string, payload: string, sig: string | Uint8Array) => {
  const signature = typeof sig === 'string' ? w.read(sig) : sig;
  const v = checkImageSignature(publisher(pub), digest, w.read(payload), signature, undefined, NOW);
  return v.ok ? 'accepted' : v.reason;
};

/** How each key type signs a payload with openssl. */
const SIGNERS = {
  p256: (payload: string, sig: string) => cmd.signPayloadEcdsa('sha256', 'p256.key', payload, sig),
  p384: (payload: string, sig: string) => cmd.signPayloadEcdsa('sha384', 'p384.key', payload, sig),
  ed: (payload: string, sig: string) => cmd.signEd25519('ed.key', payload, sig),
  'rsa-pkcs1': (payload: string, sig: string) => cmd.signPayloadRsaPkcs1('rsa.key', payload, sig),
  'rsa-pss': (payload: string, sig: string) => cmd.signRsaPss('rsa.key', payload, sig),
};
const PUB: Record<keyof typeof SIGNERS, string> = { p256: 'p256.pub', p384: 'p384.pub', ed: 'ed.pub', 'rsa-pkcs1': 'rsa.pub', 'rsa-pss': 'rsa.pub' };

/** Write a payload variant and sign it with the P-256 key. */
function signedVariant(name: string, text: string): void {
  w.write(name, text);
  w.sh(SIGNERS.p256(name, `${name}.sig`));
}

beforeAll(() => {
  w = new Workdir();
  w.sh(cmd.ecKey('P-256', 'p256.key'));
  w.sh(cmd.ecKey('P-384', 'p384.key'));
  w.sh(cmd.ecKey('P-256', 'stranger.key'));
  w.sh(cmd.ed25519Key('ed.key'));
  w.sh(cmd.rsaKey(2048, 'rsa.key'));
  w.sh(cmd.rsaKey(1024, 'rsa1024.key'));
  for (const k of ['p256', 'p384', 'stranger', 'ed', 'rsa', 'rsa1024']) w.sh(cmd.publicKey(`${k}.key`, `${k}.pub`));

  w.sh(cmd.cosignPayload(REF, DIGEST, 'payload.json'));
  for (const [name, sign] of Object.entries(SIGNERS)) w.sh(sign('payload.json', `payload.${name}.sig`));
  w.sh(cmd.signPayloadEcdsa('sha256', 'p384.key', 'payload.json', 'payload.p384-sha256.sig'));
  w.sh(cmd.signPayloadEcdsa('sha256', 'stranger.key', 'payload.json', 'payload.stranger.sig'));
  w.sh(cmd.signRsaPss('rsa1024.key', 'payload.json', 'payload.rsa1024.sig'));

  w.sh(cmd.cosignPayload(REF, OTHER_DIGEST, 'other.json'));
  w.sh(SIGNERS.p256('other.json', 'other.json.sig'));
  signedVariant('cased.json', `{"Critical":{"Identity":{"Docker-Reference":"${REF}"},"Image":{"Docker-Manifest-Digest":"${DIGEST.toUpperCase()}"},"Type":"Cosign Container Image Signature"},"Optional":null}`);
  signedVariant('dup.json', `{"critical":{"image":{"docker-manifest-digest":"${OTHER_DIGEST}","Docker-Manifest-Digest":"${DIGEST}"},"type":"${TYPE}"}}`);
  signedVariant('notjson.txt', `docker-manifest-digest: ${DIGEST}\n`);
  signedVariant('wrongtype.json', `{"critical":{"image":{"docker-manifest-digest":"${DIGEST}"},"type":"something else"}}`);
});
afterAll(() => w?.remove());

describe.each(Object.keys(SIGNERS) as (keyof typeof SIGNERS)[])('%s payload signature', (name) => {
  const sig = `payload.${name}.sig`;

  it('is accepted for the image the payload names', () => {
    expect(reason(PUB[name], DIGEST, 'payload.json', sig)).toBe('accepted');
  });

  it('is accepted from base64, once the agent decodes it to bytes', () => {
    w.sh(cmd.base64(sig, `${sig}.b64`));
    const bytes = Buffer.from(w.read(`${sig}.b64`).toString(), 'base64');
    expect(verifyImageSignature(publisher(PUB[name]), DIGEST, w.read('payload.json'), bytes, undefined, NOW)).toBe(true);
  });

  it('is refused for a different measured image', () => {
    expect(reason(PUB[name], OTHER_DIGEST, 'payload.json', sig)).toMatch(/payload approves image sha256:[0-9a-f]+, the measured image is/);
  });

  it('is refused when its bytes are mutated', () => {
    expect(reason(PUB[name], DIGEST, 'payload.json', flipBit(w.read(sig), -1))).not.toBe('accepted');
    expect(reason(PUB[name], DIGEST, 'payload.json', flipBit(w.read(sig), 7))).not.toBe('accepted');
  });
});

describe('image signatures refused', () => {
  it('by another key', () => {
    expect(reason('p256.pub', DIGEST, 'payload.json', 'payload.stranger.sig')).toMatch(/does not verify/);
    expect(reason('stranger.pub', DIGEST, 'payload.json', 'payload.p256.sig')).toMatch(/does not verify/);
  });

  it('over a different payload, or a payload changed after signing', () => {
    expect(reason('p256.pub', DIGEST, 'payload.json', 'other.json.sig')).toMatch(/does not verify/);
    w.write('tampered.json', w.read('payload.json').toString().replace(DIGEST, OTHER_DIGEST));
    expect(reason('p256.pub', OTHER_DIGEST, 'tampered.json', 'payload.p256.sig')).toMatch(/does not verify/);
  });

  it('when a P-384 key used SHA-256 instead of SHA-384', () => {
    expect(reason('p384.pub', DIGEST, 'payload.json', 'payload.p384-sha256.sig')).toMatch(/ECDSA P-384\/SHA384 signature/);
  });

  it('for an RSA key below 2048 bits', () => {
    expect(reason('rsa1024.pub', DIGEST, 'payload.json', 'payload.rsa1024.sig')).toMatch(/1024 bits, at least 2048/);
  });

  it('when the signed payload names another image', () => {
    expect(reason('p256.pub', DIGEST, 'other.json', 'other.json.sig')).toMatch(/payload approves image/);
  });

  it('when the signed payload has case-insensitively duplicate keys', () => {
    expect(reason('p256.pub', DIGEST, 'dup.json', 'dup.json.sig')).toMatch(/duplicate keys/);
  });

  it('when the signed payload is not JSON, or not a cosign image signature', () => {
    expect(reason('p256.pub', DIGEST, 'notjson.txt', 'notjson.txt.sig')).toMatch(/not UTF-8 JSON/);
    expect(reason('p256.pub', DIGEST, 'wrongtype.json', 'wrongtype.json.sig')).toMatch(/critical.type/);
  });

  it('when the measured image digest is malformed', () => {
    expect(reason('p256.pub', DIGEST.slice(7), 'payload.json', 'payload.p256.sig')).toMatch(/measured image digest is not/);
  });
});

it('accepts key and value case variants in a signed payload', () => {
  expect(reason('p256.pub', DIGEST, 'cased.json', 'cased.json.sig')).toBe('accepted');
});
