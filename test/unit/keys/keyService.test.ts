/**
 * KeyService over a real SoftwareCustodian and a real SQLite state store in a temporary state
 * directory: lifecycle, metadata-only results, crypto-shredding, resolution, a second store (what
 * another process sees), and a release that an EC recipient made with jose decrypts (and whose
 * key bytes appear nowhere in the database files).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compactDecrypt, exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { SoftwareCustodian } from '../../../src/custody/software.js';
import { loadOrCreateSoftwareKek } from '../../../src/custody/softwareKek.js';
import { BrokerError } from '../../../src/errors.js';
import { KeyService } from '../../../src/keys/keyService.js';
import type { RecipientJwk } from '../../../src/protocol.js';
import { openStore, type StateStore } from '../../../src/store/index.js';
import { readKeys } from '../../../src/store/keys.js';

const T0 = Date.UTC(2030, 0, 2, 3, 4, 5);
const ISO0 = new Date(T0).toISOString();

let stateDir: string;
let clock: ManualClock;
let custodian: SoftwareCustodian;
let store: StateStore;
let keys: KeyService;
const stores: StateStore[] = [];

const storeConfig = () => ({ kind: 'sqlite' as const, file: path.join(stateDir, 'keyanchor.db'), synchronous: 'full' as const, busyTimeoutMs: 5000, changePollMs: 500 });
/** Another store on the same file: what another process sees. */
async function another(c: SoftwareCustodian = custodian): Promise<KeyService> {
  const s = await openStore(storeConfig(), { clock });
  stores.push(s);
  return new KeyService(s, c, clock);
}

beforeEach(async () => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'keyanchor-keys-'));
  clock = new ManualClock(T0);
  custodian = new SoftwareCustodian(loadOrCreateSoftwareKek(stateDir, { create: true }));
  store = await openStore(storeConfig(), { clock, create: true });
  stores.push(store);
  keys = new KeyService(store, custodian, clock);
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  await custodian.close();
  rmSync(stateDir, { recursive: true, force: true });
});

/** Every byte the store keeps on disk (database, WAL). */
const storeBytes = () => Buffer.concat(readdirSync(stateDir).filter((f) => f.startsWith('keyanchor.db')).map((f) => readFileSync(path.join(stateDir, f))));
const versionsOf = async (name: string) => (await readKeys(store.read, { names: [name], blobs: true }))[0]!.versions;

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
    const v = (await versionsOf('team/db'))[0]!;
    expect(v.wrapped?.alg).toBe('software:A256GCM');
    expect(v.wrapped?.kekId).toBe(custodian.kekId);
    expect(v.wrapped!.blob).toHaveLength(12 + 32 + 16);
  });

  it('create twice: key_exists (409)', async () => {
    await keys.create('team/db', 'alice');
    expect(await failure(keys.create('team/db', 'bob'))).toEqual({ status: 409, code: 'key_exists' });
    expect((await keys.show('team/db')).createdBy).toBe('alice');
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
    const blobs = (await versionsOf('team/db')).map((v) => v.wrapped!.blob.toString('hex'));
    expect(new Set(blobs).size).toBe(2);
  });

  it('rotate an unknown key: key_unknown (404)', async () => {
    expect(await failure(keys.rotate('team/none', 'bob'))).toEqual({ status: 404, code: 'key_unknown' });
  });

  it('list is sorted by name and carries no blobs; show returns one key', async () => {
    await keys.create('zeta/k', 'a');
    await keys.create('alpha/k', 'a');
    await keys.rotate('alpha/k', 'a');
    const list = await keys.list();
    expect(list.map((k) => k.name)).toEqual(['alpha/k', 'zeta/k']);
    expect(list[0]!.versions.map((v) => v.version)).toEqual([1, 2]);
    expect(JSON.stringify(list)).not.toMatch(/wrapped|blob/);
    expect(await keys.show('zeta/k')).toEqual(list[1]);
    expect(await failure(() => keys.show('team/none'))).toEqual({ status: 404, code: 'key_unknown' });
    expect(await keys.has('alpha/k')).toBe(true);
    expect(await keys.has('team/none')).toBe(false);
  });

  it('an empty keystore lists nothing', async () => {
    expect(await keys.list()).toEqual([]);
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
    expect((await versionsOf('team/db'))[0]!.wrapped).toBeDefined();
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
    expect((await keys.show('team/db')).versions[0]!.state).toBe('destroyed');
  });

  it('an unknown key or version: key_unknown (404)', async () => {
    await keys.create('team/db', 'alice');
    expect(await failure(keys.setState('team/none', 1, 'disabled', 'bob'))).toEqual({ status: 404, code: 'key_unknown' });
    expect(await failure(keys.setState('team/db', 2, 'disabled', 'bob'))).toEqual({ status: 404, code: 'key_unknown' });
  });

  it('destroy erases the wrapped blob from the database files on disk (secure_delete)', async () => {
    await keys.create('team/db', 'alice');
    await keys.rotate('team/db', 'alice');
    const [b1, b2] = (await versionsOf('team/db')).map((v) => v.wrapped!.blob);
    expect(storeBytes().includes(b1!)).toBe(true);
    const info = await keys.setState('team/db', 1, 'destroyed', 'bob');
    expect(info.versions[0]).toMatchObject({ state: 'destroyed', changedBy: 'bob' });
    // The old page images are still in the WAL until a checkpoint writes them back (zeroed).
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const bytes = storeBytes();
    expect(bytes.includes(b1!)).toBe(false);
    expect(bytes.includes(b2!)).toBe(true);
    store = await openStore(storeConfig(), { clock });
    stores.push(store);
    expect((await versionsOf('team/db'))[0]).not.toHaveProperty('wrapped');
  });
});

describe('resolve', () => {
  beforeEach(async () => {
    await keys.create('team/db', 'a');
    await keys.rotate('team/db', 'a');
    await keys.rotate('team/db', 'a');
  });

  it('without a version: the newest enabled version', async () => {
    expect((await keys.resolve('team/db')).ref).toEqual({ name: 'team/db', version: 3 });
    await keys.setState('team/db', 3, 'disabled', 'a');
    expect((await keys.resolve('team/db')).ref.version).toBe(2);
    await keys.setState('team/db', 2, 'destroyed', 'a');
    expect((await keys.resolve('team/db')).ref.version).toBe(1);
  });

  it('with a version: that version, if enabled', async () => {
    expect((await keys.resolve('team/db', 1)).ref).toEqual({ name: 'team/db', version: 1 });
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
  it('an EC recipient decrypts a 32-byte key that appears nowhere in the database files', async () => {
    await keys.create('team/db', 'a');
    await keys.rotate('team/db', 'a');
    const r = await ecRecipient();
    const released = await keys.releaseTo('team/db', undefined, r.jwk);
    expect({ name: released.name, version: released.version, form: released.form }).toEqual({ name: 'team/db', version: 2, form: 'plaintext' });
    const { plaintext, protectedHeader } = await compactDecrypt(released.jwe, r.privateKey);
    expect(protectedHeader).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: 'team/db@2' });
    const key = Buffer.from(plaintext);
    expect(key).toHaveLength(32);

    const bytes = storeBytes();
    const text = bytes.toString('latin1');
    for (const encoding of ['base64', 'base64url', 'hex'] as const) expect(text).not.toContain(key.toString(encoding));
    expect(text).not.toContain(key.toString('hex').toUpperCase());
    expect(bytes.includes(key)).toBe(false);

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
    const stranger = await another(new SoftwareCustodian(Buffer.alloc(32, 7)));
    expect(await failure(stranger.releaseTo('team/db', 1, (await ecRecipient()).jwk))).toEqual({ status: 503, code: 'custody_unavailable' });
  });

  it('a blob moved to another version fails authentication: custody_unavailable (503)', async () => {
    await keys.create('team/db', 'a');
    await keys.rotate('team/db', 'a');
    await store.transaction((tx) => tx.run("UPDATE key_versions SET blob = (SELECT blob FROM key_versions WHERE name = 'team/db' AND version = 1) WHERE name = 'team/db' AND version = 2"));
    expect(await failure(keys.releaseTo('team/db', 2, (await ecRecipient()).jwk))).toEqual({ status: 503, code: 'custody_unavailable' });
  });
});

describe('the store file and other processes', () => {
  it('has mode 0600 after every write', async () => {
    await keys.create('team/db', 'a');
    expect(statSync(storeConfig().file).mode & 0o777).toBe(0o600);
    await keys.rotate('team/db', 'a');
    for (const f of readdirSync(stateDir).filter((n) => n.startsWith('keyanchor.db'))) expect(statSync(path.join(stateDir, f)).mode & 0o777, f).toBe(0o600);
  });

  it('a second store (another process) sees what the first wrote at once, and the other way round', async () => {
    const b = await another();
    expect(await b.list()).toEqual([]);
    await keys.create('team/a', 'x');
    expect((await b.show('team/a')).versions).toHaveLength(1);
    await b.rotate('team/a', 'y');
    expect((await keys.show('team/a')).versions.map((v) => v.createdBy)).toEqual(['x', 'y']);
    expect((await keys.resolve('team/a')).ref.version).toBe(2);
  });

  it('concurrent rotations from two stores all land, each with a version of its own', async () => {
    const b = await another();
    await keys.create('team/a', 'x');
    const made = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? b : keys).rotate('team/a', `r${i}`)));
    const versions = (await keys.show('team/a')).versions;
    expect(versions.map((v) => v.version)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    expect(new Set(versions.map((v) => v.createdBy))).toEqual(new Set(['x', ...made.map((_, i) => `r${i}`)]));
    // Every version still unwraps (each blob is bound to its own version).
    const r = await ecRecipient();
    for (const v of versions) expect((await keys.releaseTo('team/a', v.version, r.jwk)).version).toBe(v.version);
  });

  it('concurrent creates of one name from two stores: exactly one wins, the others get key_exists', async () => {
    const b = await another();
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => (i % 2 ? b : keys).create('team/a', `c${i}`)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as BrokerError).code).toBe('key_exists');
  });

  it('a change and its audit record land together: a failing record leaves no change', async () => {
    await keys.create('team/a', 'x');
    await store.transaction((tx) => tx.run('ALTER TABLE audit RENAME TO audit_gone'));
    expect(await failure(keys.rotate('team/a', 'y'))).toEqual({ status: 503, code: 'store_unavailable' });
    expect(await failure(keys.setState('team/a', 1, 'destroyed', 'y'))).toEqual({ status: 503, code: 'store_unavailable' });
    await store.transaction((tx) => tx.run('ALTER TABLE audit_gone RENAME TO audit'));
    expect((await keys.show('team/a')).versions).toEqual([expect.objectContaining({ version: 1, state: 'enabled' })]);
    expect((await store.read.all("SELECT event FROM audit WHERE event LIKE 'key.%'")).map((r) => r.event)).toEqual(['key.create']);
  });
});
