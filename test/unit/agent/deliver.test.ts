import { existsSync, readFileSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertOnTmpfs, deliverKeys, isTmpfs, TMPFS_MAGIC, writeKeyFile } from '../../../attest-agent/src/deliver.js';
import { parseKeySpecs } from '../../../attest-agent/src/keySpecs.js';
import { scratchDir } from './helpers.js';

const shm = scratchDir('agent-deliver-', '/dev/shm');
// A directory on a disk filesystem: the temp dir if it is not a tmpfs, else the checkout.
const diskBase = [tmpdir(), join(import.meta.dirname, '..', '..', '..')].find((d) => statfsSync(d).type !== TMPFS_MAGIC);
const diskDir = scratchDir('agent-disk-', diskBase ?? tmpdir());
const diskIsTmpfs = diskBase === undefined;
if (diskIsTmpfs) console.warn('no disk-backed directory found: skipping the non-tmpfs refusal test');
afterAll(() => { shm.remove(); diskDir.remove(); });

describe('tmpfs check', () => {
  it('recognises /dev/shm as tmpfs', () => {
    expect(isTmpfs('/dev/shm')).toBe(true);
    expect(() => assertOnTmpfs(join(shm.dir, 'k'))).not.toThrow();
  });

  it.skipIf(diskIsTmpfs)('refuses a key file in a directory that is not on a tmpfs', () => {
    expect(isTmpfs(diskDir.dir)).toBe(false);
    expect(() => assertOnTmpfs(join(diskDir.dir, 'k'))).toThrow(expect.objectContaining({ code: 'tmpfs_refused' }));
    expect(() => writeKeyFile(join(diskDir.dir, 'k'), Buffer.from('secret'))).toThrow(expect.objectContaining({ code: 'tmpfs_refused' }));
    expect(existsSync(join(diskDir.dir, 'k'))).toBe(false);
  });

  it('refuses a directory that does not exist', () => {
    expect(() => assertOnTmpfs('/dev/shm/no/such/dir/k')).toThrow(expect.objectContaining({ code: 'tmpfs_refused' }));
  });
});

describe('writeKeyFile', () => {
  it('creates the file 0400 with the raw bytes and never overwrites', () => {
    const path = join(shm.dir, 'raw.key');
    writeKeyFile(path, Buffer.from([0, 1, 2, 255]));
    expect(statSync(path).mode & 0o777).toBe(0o400);
    expect([...readFileSync(path)]).toEqual([0, 1, 2, 255]);
    expect(() => writeKeyFile(path, Buffer.from('other'))).toThrow(expect.objectContaining({ code: 'delivery_failed' }));
    expect([...readFileSync(path)]).toEqual([0, 1, 2, 255]);
  });
});

describe('deliverKeys', () => {
  it('puts base64 in env vars, raw bytes in tmpfs files, zeroes the buffers, and cleans up', () => {
    const filePath = join(shm.dir, 'tls.key');
    const specs = parseKeySpecs(['app/db=DB_KEY', `app/tls:file=${filePath}`], true);
    const db = Buffer.from('database-key-bytes');
    const tls = Buffer.from('tls-key-bytes');
    const keys = new Map([['app/db', db], ['app/tls', tls]]);
    const d = deliverKeys(specs, keys, { PATH: '/bin' });
    expect(d.env).toEqual({ PATH: '/bin', DB_KEY: Buffer.from('database-key-bytes').toString('base64') });
    expect(readFileSync(filePath, 'utf8')).toBe('tls-key-bytes');
    expect(db.every((b) => b === 0) && tls.every((b) => b === 0)).toBe(true);
    d.cleanup();
    expect(existsSync(filePath)).toBe(false);
  });

  it('removes files it already wrote when a later one fails', () => {
    const first = join(shm.dir, 'first.key');
    const existing = join(shm.dir, 'existing.key');
    writeFileSync(existing, 'x');
    const specs = parseKeySpecs([`app/a:file=${first}`, `app/b:file=${existing}`], true);
    expect(() => deliverKeys(specs, new Map([['app/a', Buffer.from('a')], ['app/b', Buffer.from('b')]]), {}))
      .toThrow(expect.objectContaining({ code: 'delivery_failed' }));
    expect(existsSync(first)).toBe(false);
    expect(readFileSync(existing, 'utf8')).toBe('x');
  });
});
