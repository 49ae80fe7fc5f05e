/**
 * KeyService over a real SoftwareCustodian and a real Keystore in a temporary state directory:
 * lifecycle, metadata-only results, crypto-shredding, resolution, and a release that an EC
 * recipient made with jose decrypts (and whose key bytes appear nowhere in the keystore file).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compactDecrypt, exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { SoftwareCustodian } from '../../../src/custody/software.js';
import { loadOrCreateSoftwareKek } from '../../../src/custody/softwareKek.js';
import { BrokerError } from '../../../src/errors.js';
import { Keystore } from '../../../src/keys/keystore.js';
import { KeyService } from '../../../src/keys/keyService.js';
import { KEYSTORE_FILE, type KeystoreData } from '../../../src/keys/keystoreFile.js';
import type { RecipientJwk } from '../../../src/protocol.js';

const T0 = Date.UTC(2030, 0, 2, 3, 4, 5);
const ISO0 = new Date(T0).toISOString();

let stateDir: string;
let clock: ManualClock;
let custodian: SoftwareCustodian;
let keys: KeyService;

beforeEach(() => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'keyanchor-keys-'));
  clock = new ManualClock(T0);
  custodian = new SoftwareCustodian(loadOrCreateSoftwareKek(stateDir, { create: true }));
  keys = new KeyService(new Keystore(stateDir, 'software'), custodian, clock);
});
afterEach(async () => {
  await custodian.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const keystoreText = () => readFileSync(path.join(stateDir, KEYSTORE_FILE), 'utf8');
const keystoreJson = () => JSON.parse(keystoreText()) as KeystoreData;

async function failure(p: Promise<unknown> | (() => unknown)): Promise<{ status: number; code: string }> {
  let e: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    e = err;
  }
  expect(e).toBeInstanceOf(BrokerError);
  return { status: (e as BrokerError).status, code: (e as BrokerError).code };
}

async function ecRecipient() {
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
  return { jwk: (await exportJWK(publicKey)) as RecipientJwk, privateKey };
}

describe('create, rotate, list, show', () => {
  it('create returns metadata only', async () => {
    const info = await keys.create('team/db', 'alice');
    expect(info).toEqual({
      name: 'team/db',
      createdAt: ISO0,
      createdBy: 'alice',
      versions: [{ version: 1, state: 'enabled', createdAt: ISO0, createdBy: 'alice' }],
    });
    expect(JSON.stringify(info)).not.toMatch(/wrapped|blob|kekId/);
  });

  it('the keystore holds a wrapped blob for each version', async () => {
    await keys.create('team/db', 'alice');
    const v = keystoreJson().keys['team/db']!.versions[0]!;
    expect(v.wrapped?.alg).toBe('software:A256GCM');
    expect(v.wrapped?.kekId).toBe(custodian.kekId);
    expect(Buffer.from(v.wrapped!.blob, 'base64')).toHaveLength(12 + 32 + 16);
  });

  it('create twice: key_exists (409)', async () => {
    await keys.create('team/db', 'alice');
    expect(await failure(keys.create('team/db', 'bob'))).toEqual({ status: 409, code: 'key_exists' });
    expect(keys.show('team/db').createdBy).toBe('alice');
  });

  it('rotate adds the next version, metadata only', async () => {
    await keys.create('team/db', 'alice');
    clock.advance(60_000);
    const info = await keys.rotate('team/db', 'bob');
    expect(info.versions).toEqual([
      { version: 1, state: 'enabled', createdAt: ISO0, createdBy: 'alice' },
      { version: 2, state: 'enabled', createdAt: new Date(T0 + 60_000).toISOString(), createdBy: 'bob' },
    ]);
    expect(JSON.stringify(info)).not.toMatch(/wrapped|blob/);
    const blobs = keystoreJson().keys['team/db']!.versions.map((v) => v.wrapped!.blob);
    expect(new Set(blobs).size).toBe(2);
  });

  it('rotate an unknown key: key_unknown (404)', async () => {
    expect(await failure(keys.rotate('team/none', 'bob'))).toEqual({ status: 404, code: 'key_unknown' });
  });

  it('list is sorted by name and carries no blobs; show returns one key', async () => {
    await keys.create('zeta/k', 'a');
    await keys.create('alpha/k', 'a');
    await keys.rotate('alpha/k', 'a');
    const list = keys.list();
    expect(list.map((k) => k.name)).toEqual(['alpha/k', 'zeta/k']);
    expect(list[0]!.versions.map((v) => v.version)).toEqual([1, 2]);
    expect(JSON.stringify(list)).not.toMatch(/wrapped|blob/);
    expect(keys.show('zeta/k')).toEqual(list[1]);
    expect(await failure(() => keys.show('team/none'))).toEqual({ status: 404, code: 'key_unknown' });
    expect(keys.has('alpha/k')).toBe(true);
    expect(keys.has('team/none')).toBe(false);
  });

  it('an empty keystore lists nothing', () => {
    expect(keys.list()).toEqual([]);
  });
});

describe('setState', () => {
  it('enabled → disabled → enabled, recording who and when', async () => {
    await keys.create('team/db', 'alice');
    clock.advance(1_000);
    const off = await keys.setState('team/db', 1, 'disabled', 'bob');
    expect(off.versions[0]).toEqual({
      version: 1,
      state: 'disabled',
      createdAt: ISO0,
      createdBy: 'alice',
      changedAt: new Date(T0 + 1_000).toISOString(),
      changedBy: 'bob',
    });
    const on = await keys.setState('team/db', 1, 'enabled', 'carol');
    expect(on.versions[0]).toMatchObject({ state: 'enabled', changedBy: 'carol' });
    expect(keystoreJson().keys['team/db']!.versions[0]!.wrapped).toBeDefined();
  });

  it('to the state it is already in: key_state_invalid (409)', async () => {
    await keys.create('team/db', 'alice');
    expect(await failure(keys.setState('team/db', 1, 'enabled', 'bob'))).toEqual({ status: 409, code: 'key_state_invalid' });
  });

  it('destroyed is final: key_state_invalid (409) for any further change', async () => {
    await keys.create('team/db', 'alice');
    await keys.setState('team/db', 1, 'destroyed', 'bob');
    for (const to of ['enabled', 'disabled', 'destroyed'] as const) {
      expect(await failure(keys.setState('team/db', 1, to, 'bob'))).toEqual({ status: 409, code: 'key_state_invalid' });
    }
    expect(keys.show('team/db').versions[0]!.state).toBe('destroyed');
  });

  it('an unknown key or version: key_unknown (404)', async () => {
    await keys.create('team/db', 'alice');
    expect(await failure(keys.setState('team/none', 1, 'disabled', 'bob'))).toEqual({ status: 404, code: 'key_unknown' });
    expect(await failure(keys.setState('team/db', 2, 'disabled', 'bob'))).toEqual({ status: 404, code: 'key_unknown' });
  });

  it('destroy erases the wrapped blob from the keystore file on disk', async () => {
    await keys.create('team/db', 'alice');
    await keys.rotate('team/db', 'alice');
    const [b1, b2] = keystoreJson().keys['team/db']!.versions.map((v) => v.wrapped!.blob);
    expect(keystoreText()).toContain(b1);
    const info = await keys.setState('team/db', 1, 'destroyed', 'bob');
    expect(info.versions[0]).toMatchObject({ state: 'destroyed', changedBy: 'bob' });
    const text = keystoreText();
    expect(text).not.toContain(b1!);
    expect(text).toContain(b2!);
    expect(keystoreJson().keys['team/db']!.versions[0]).not.toHaveProperty('wrapped');
  });
});

describe('resolve', () => {
  beforeEach(async () => {
    await keys.create('team/db', 'a');
    await keys.rotate('team/db', 'a');
    await keys.rotate('team/db', 'a');
  });

  it('without a version: the newest enabled version', async () => {
    expect(keys.resolve('team/db').ref).toEqual({ name: 'team/db', version: 3 });
    await keys.setState('team/db', 3, 'disabled', 'a');
    expect(keys.resolve('team/db').ref.version).toBe(2);
    await keys.setState('team/db', 2, 'destroyed', 'a');
    expect(keys.resolve('team/db').ref.version).toBe(1);
  });

  it('with a version: that version, if enabled', async () => {
    expect(keys.resolve('team/db', 1).ref).toEqual({ name: 'team/db', version: 1 });
    await keys.setState('team/db', 1, 'disabled', 'a');
    expect(await failure(() => keys.resolve('team/db', 1))).toEqual({ status: 404, code: 'key_unknown' });
    await keys.setState('team/db', 2, 'destroyed', 'a');
    expect(await failure(() => keys.resolve('team/db', 2))).toEqual({ status: 404, code: 'key_unknown' });
    expect(await failure(() => keys.resolve('team/db', 4))).toEqual({ status: 404, code: 'key_unknown' });
  });

  it('no enabled version, or no such key: key_unknown (404)', async () => {
    for (const v of [1, 2, 3]) await keys.setState('team/db', v, 'disabled', 'a');
    expect(await failure(() => keys.resolve('team/db'))).toEqual({ status: 404, code: 'key_unknown' });
    expect(await failure(() => keys.resolve('team/none'))).toEqual({ status: 404, code: 'key_unknown' });
  });
});

describe('releaseTo', () => {
  it('an EC recipient decrypts a 32-byte key that appears nowhere in the keystore file', async () => {
    await keys.create('team/db', 'a');
    await keys.rotate('team/db', 'a');
    const r = await ecRecipient();
    const released = await keys.releaseTo('team/db', undefined, r.jwk);
    expect({ name: released.name, version: released.version, form: released.form }).toEqual({ name: 'team/db', version: 2, form: 'plaintext' });
    const { plaintext, protectedHeader } = await compactDecrypt(released.jwe, r.privateKey);
    expect(protectedHeader).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: 'team/db@2' });
    const key = Buffer.from(plaintext);
    expect(key).toHaveLength(32);

    const text = keystoreText();
    for (const encoding of ['base64', 'base64url', 'hex'] as const) expect(text).not.toContain(key.toString(encoding));
    expect(text).not.toContain(key.toString('hex').toUpperCase());
    expect(readFileSync(path.join(stateDir, KEYSTORE_FILE)).includes(key)).toBe(false);

    // The same version releases the same key; another version a different one.
    const again = Buffer.from((await compactDecrypt((await keys.releaseTo('team/db', 2, r.jwk)).jwe, r.privateKey)).plaintext);
    expect(again.equals(key)).toBe(true);
    const v1 = Buffer.from((await compactDecrypt((await keys.releaseTo('team/db', 1, r.jwk)).jwe, r.privateKey)).plaintext);
    expect(v1.equals(key)).toBe(false);
  });

  it('a destroyed version can never be released again', async () => {
    await keys.create('team/db', 'a');
    const r = await ecRecipient();
    await keys.releaseTo('team/db', 1, r.jwk);
    await keys.setState('team/db', 1, 'destroyed', 'a');
    expect(await failure(keys.releaseTo('team/db', 1, r.jwk))).toEqual({ status: 404, code: 'key_unknown' });
  });

  it('a custodian with another KEK cannot unwrap: custody_unavailable (503)', async () => {
    await keys.create('team/db', 'a');
    const stranger = new KeyService(new Keystore(stateDir, 'software'), new SoftwareCustodian(Buffer.alloc(32, 7)), clock);
    expect(await failure(stranger.releaseTo('team/db', 1, (await ecRecipient()).jwk))).toEqual({ status: 503, code: 'custody_unavailable' });
  });

  it('a blob moved to another version fails authentication: custody_unavailable (503)', async () => {
    await keys.create('team/db', 'a');
    await keys.rotate('team/db', 'a');
    const ks = new Keystore(stateDir, 'software');
    await ks.update((d) => {
      const vs = d.keys['team/db']!.versions;
      vs[1]!.wrapped = { ...vs[0]!.wrapped! };
    });
    expect(await failure(keys.releaseTo('team/db', 2, (await ecRecipient()).jwk))).toEqual({ status: 503, code: 'custody_unavailable' });
  });
});

describe('the keystore file', () => {
  it('has mode 0600 after every write', async () => {
    await keys.create('team/db', 'a');
    expect(statSync(path.join(stateDir, KEYSTORE_FILE)).mode & 0o777).toBe(0o600);
    await keys.rotate('team/db', 'a');
    expect(statSync(path.join(stateDir, KEYSTORE_FILE)).mode & 0o777).toBe(0o600);
  });
});
