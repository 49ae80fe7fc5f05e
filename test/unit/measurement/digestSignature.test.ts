/** Format 1: ECDSA P-256 / P-384 over the measured SHA-256, as `openssl dgst -sha256 -sign` makes it. */
import { p256, p384 } from '@noble/curves/nist.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBinarySignature, verifyBinarySignature } from '../../../src/measurement/index.js';
import type { Publisher } from '../../../src/policy/types.js';
import { cmd, flipBit, Workdir } from './openssl.js';

const NOW = Date.now();
let w: Workdir;

const publisher = (pub: string): Publisher => ({ name: pub, kind: 'key', key: w.publicKey(pub) });
const verify = (pub: string, sha256: string, sig: Uint8Array) => verifyBinarySignature(publisher(pub), sha256, sig, undefined, NOW);
const reason = (pub: string, sha256: string, sig: Uint8Array) => {
  const v = checkBinarySignature(publisher(pub), sha256, sig, undefined, NOW);
  return v.ok ? 'accepted' : v.reason;
};

beforeAll(() => {
  w = new Workdir();
  w.write('app', 'the release binary\n');
  w.write('other', 'some other binary\n');
  for (const [curve, name] of [['P-256', 'p256'], ['P-384', 'p384'], ['P-256', 'stranger']] as const) {
    w.sh(cmd.ecKey(curve, `${name}.key`));
    w.sh(cmd.publicKey(`${name}.key`, `${name}.pub`));
    w.sh(cmd.signDigest(`${name}.key`, 'app', `app.${name}.sig`));
    w.sh(cmd.signDigest(`${name}.key`, 'other', `other.${name}.sig`));
  }
  w.sh(cmd.ed25519Key('ed.key'));
  w.sh(cmd.publicKey('ed.key', 'ed.pub'));
  // Wrong format for the key type: Ed25519 over the file itself, ECDSA over the statement.
  w.sh(cmd.signEd25519('ed.key', 'app', 'app.ed.sig'));
  w.sh(cmd.statement('app', 'app.stmt'));
  w.sh(cmd.signDigest('p256.key', 'app.stmt', 'app.stmt.p256.sig'));
});
afterAll(() => w?.remove());

describe.each([
  { name: 'p256', curve: p256 },
  { name: 'p384', curve: p384 },
])('ECDSA $name digest signature', ({ name, curve }) => {
  const sig = () => w.read(`app.${name}.sig`);

  it('is accepted for the measured digest of the signed file', () => {
    expect(w.succeeds(cmd.verifyDigest(`${name}.pub`, 'app', `app.${name}.sig`))).toBe(true); // openssl agrees
    expect(reason(`${name}.pub`, w.sha256('app'), sig())).toBe('accepted');
  });

  it('is accepted from the base64 form cosign prints, once the agent decodes it to bytes', () => {
    w.sh(cmd.base64(`app.${name}.sig`, `app.${name}.sig.b64`));
    const bytes = Buffer.from(w.read(`app.${name}.sig.b64`).toString('ascii'), 'base64');
    expect(verify(`${name}.pub`, w.sha256('app'), bytes)).toBe(true);
  });

  it('is accepted in its high-S twin too (openssl does not normalise S)', () => {
    const { r, s } = curve.Signature.fromBytes(sig(), 'der');
    const twin = new curve.Signature(r, curve.Point.Fn.ORDER - s);
    expect(verify(`${name}.pub`, w.sha256('app'), twin.toBytes('der'))).toBe(true);
  });

  it('is refused for another key', () => {
    expect(verify('stranger.pub', w.sha256('app'), sig())).toBe(false);
    expect(verify(`${name}.pub`, w.sha256('app'), w.read('app.stranger.sig'))).toBe(false);
  });

  it('is refused when it signs a different file', () => {
    expect(reason(`${name}.pub`, w.sha256('app'), w.read(`other.${name}.sig`))).toMatch(/does not verify/);
  });

  it('is refused for a different measured digest', () => {
    expect(verify(`${name}.pub`, w.sha256('other'), sig())).toBe(false);
  });

  it('is refused when its bytes are mutated, truncated or extended', () => {
    const good = sig();
    expect(verify(`${name}.pub`, w.sha256('app'), flipBit(good, -1))).toBe(false); // in s
    expect(verify(`${name}.pub`, w.sha256('app'), flipBit(good, 8))).toBe(false); // in r
    expect(verify(`${name}.pub`, w.sha256('app'), good.subarray(0, good.length - 1))).toBe(false);
    expect(verify(`${name}.pub`, w.sha256('app'), Buffer.concat([good, Buffer.of(0)]))).toBe(false);
  });

  it('is refused in compact r‖s form: only DER is accepted', () => {
    const compact = curve.Signature.fromBytes(sig(), 'der').toBytes('compact');
    expect(verify(`${name}.pub`, w.sha256('app'), compact)).toBe(false);
  });
});

describe('key type and format must match', () => {
  it('refuses an EC key signing the statement instead of the digest', () => {
    expect(reason('p256.pub', w.sha256('app'), w.read('app.stmt.p256.sig'))).toMatch(/ECDSA P-256 digest signature does not verify/);
  });

  it('refuses an Ed25519 signature made over the file (the digest format)', () => {
    expect(reason('ed.pub', w.sha256('app'), w.read('app.ed.sig'))).toMatch(/Ed25519 statement signature does not verify/);
  });
});

describe('malformed input', () => {
  it('refuses a measured digest that is not 64 lowercase hex characters', () => {
    const good = w.sha256('app');
    for (const bad of [good.toUpperCase(), good.slice(2), `sha256:${good}`, '']) {
      expect(reason('p256.pub', bad, w.read('app.p256.sig'))).toMatch(/not 64 lowercase hex/);
    }
  });

  it('refuses garbage and empty signatures without throwing', () => {
    expect(verify('p256.pub', w.sha256('app'), Buffer.from('not a signature'))).toBe(false);
    expect(reason('p256.pub', w.sha256('app'), new Uint8Array())).toMatch(/signature is 0 bytes/);
    expect(reason('p256.pub', w.sha256('app'), new Uint8Array(4096))).toMatch(/signature is 4096 bytes/);
  });
});
