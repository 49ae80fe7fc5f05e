/** Format 2: Ed25519 / RSA-PSS over the artifact statement `keyanchor.artifact.v1:sha256:<hex>`. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactStatement, checkBinarySignature, verifyBinarySignature } from '../../../src/measurement/index.js';
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

const KEYS = [
  { name: 'ed', make: (key: string) => cmd.ed25519Key(key), sign: cmd.signEd25519, check: cmd.verifyEd25519 },
  { name: 'rsa2048', make: (key: string) => cmd.rsaKey(2048, key), sign: cmd.signRsaPss, check: cmd.verifyRsaPss },
  { name: 'rsa3072', make: (key: string) => cmd.rsaKey(3072, key), sign: cmd.signRsaPss, check: cmd.verifyRsaPss },
];

beforeAll(() => {
  w = new Workdir();
  w.write('app', 'the release binary\n');
  w.write('other', 'some other binary\n');
  w.sh(cmd.statement('app', 'app.stmt'));
  w.sh(cmd.statement('other', 'other.stmt'));
  for (const k of KEYS) {
    for (const name of [k.name, `${k.name}-stranger`]) {
      w.sh(k.make(`${name}.key`));
      w.sh(cmd.publicKey(`${name}.key`, `${name}.pub`));
      w.sh(k.sign(`${name}.key`, 'app.stmt', `app.${name}.sig`));
      w.sh(k.sign(`${name}.key`, 'other.stmt', `other.${name}.sig`));
    }
  }
  // Wrong format for the key type: ECDSA over the statement; RSA over the file's digest directly.
  w.sh(cmd.ecKey('P-256', 'p256.key'));
  w.sh(cmd.publicKey('p256.key', 'p256.pub'));
  w.sh(cmd.signDigest('p256.key', 'app.stmt', 'app.stmt.p256.sig'));
  w.sh(cmd.signRsaPss('rsa2048.key', 'app', 'app.file.rsa2048.sig'));
  // RSA below 2048 bits, and padding other than PSS.
  w.sh(cmd.rsaKey(1024, 'rsa1024.key'));
  w.sh(cmd.publicKey('rsa1024.key', 'rsa1024.pub'));
  w.sh(cmd.signRsaPss('rsa1024.key', 'app.stmt', 'app.rsa1024.sig'));
  w.sh(cmd.signPayloadRsaPkcs1('rsa2048.key', 'app.stmt', 'app.pkcs1.sig'));
  w.sh('openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max -sign rsa2048.key -out app.saltmax.sig app.stmt');
  // A common mistake: echo adds a newline to the statement.
  w.sh(`echo "keyanchor.artifact.v1:sha256:$(sha256sum app | cut -d' ' -f1)" > app.stmt-nl`);
  w.sh(cmd.signEd25519('ed.key', 'app.stmt-nl', 'app.nl.sig'));
});
afterAll(() => w?.remove());

describe('artifactStatement', () => {
  it('is the exact ASCII the printf command writes, without a newline', () => {
    const statement = artifactStatement(w.sha256('app'));
    expect(statement.toString('latin1')).toBe(`keyanchor.artifact.v1:sha256:${w.sha256('app')}`);
    expect(statement.equals(w.read('app.stmt'))).toBe(true);
  });

  it('throws a RangeError for anything but 64 lowercase hex characters', () => {
    expect(() => artifactStatement('AB'.repeat(32))).toThrow(RangeError);
    expect(() => artifactStatement('ab'.repeat(31))).toThrow(RangeError);
  });
});

describe.each(KEYS)('$name statement signature', ({ name, check }) => {
  const sig = () => w.read(`app.${name}.sig`);

  it('is accepted for the measured digest of the signed file', () => {
    expect(w.succeeds(check(`${name}.pub`, 'app.stmt', `app.${name}.sig`))).toBe(true); // openssl agrees
    expect(reason(`${name}.pub`, w.sha256('app'), sig())).toBe('accepted');
  });

  it('is accepted from base64, once the agent decodes it to bytes', () => {
    w.sh(cmd.base64(`app.${name}.sig`, `app.${name}.sig.b64`));
    expect(verify(`${name}.pub`, w.sha256('app'), Buffer.from(w.read(`app.${name}.sig.b64`).toString(), 'base64'))).toBe(true);
  });

  it('is refused for another key', () => {
    expect(verify(`${name}-stranger.pub`, w.sha256('app'), sig())).toBe(false);
    expect(verify(`${name}.pub`, w.sha256('app'), w.read(`app.${name}-stranger.sig`))).toBe(false);
  });

  it('is refused when it signs a different file', () => {
    expect(reason(`${name}.pub`, w.sha256('app'), w.read(`other.${name}.sig`))).toMatch(/statement signature does not verify/);
  });

  it('is refused for a different measured digest', () => {
    expect(verify(`${name}.pub`, w.sha256('other'), sig())).toBe(false);
  });

  it('is refused when its bytes are mutated or truncated', () => {
    expect(verify(`${name}.pub`, w.sha256('app'), flipBit(sig(), 0))).toBe(false);
    expect(verify(`${name}.pub`, w.sha256('app'), flipBit(sig(), -1))).toBe(false);
    expect(verify(`${name}.pub`, w.sha256('app'), sig().subarray(1))).toBe(false);
  });
});

describe('what the statement format does not accept', () => {
  it('refuses an EC key: EC publishers sign the digest, not the statement', () => {
    expect(reason('p256.pub', w.sha256('app'), w.read('app.stmt.p256.sig'))).toMatch(/ECDSA P-256 digest signature does not verify/);
  });

  it('refuses an RSA signature over the file instead of the statement', () => {
    expect(verify('rsa2048.pub', w.sha256('app'), w.read('app.file.rsa2048.sig'))).toBe(false);
  });

  it('refuses RSA keys below 2048 bits, even with a valid signature', () => {
    expect(w.succeeds(cmd.verifyRsaPss('rsa1024.pub', 'app.stmt', 'app.rsa1024.sig'))).toBe(true);
    expect(reason('rsa1024.pub', w.sha256('app'), w.read('app.rsa1024.sig'))).toMatch(/1024 bits, at least 2048/);
  });

  it('refuses RSA PKCS#1 v1.5 for binaries (PSS only), and accepts any PSS salt length', () => {
    expect(verify('rsa2048.pub', w.sha256('app'), w.read('app.pkcs1.sig'))).toBe(false);
    expect(verify('rsa2048.pub', w.sha256('app'), w.read('app.saltmax.sig'))).toBe(true);
  });

  it('refuses a statement signed with a trailing newline', () => {
    expect(verify('ed.pub', w.sha256('app'), w.read('app.nl.sig'))).toBe(false);
  });
});
