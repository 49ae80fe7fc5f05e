/**
 * The keystore file as several processes see it: a second Keystore instance (what the CLI is to
 * the server) sees changes, concurrent updates from two instances are serialised by the lock
 * file, a corrupt file is refused, and writes are atomic and leave no temp files behind.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { SoftwareCustodian } from '../../../src/custody/software.js';
import { writeFileAtomic, writeFileExclusive } from '../../../src/fsAtomic.js';
import { Keystore, KeystoreCorruptError } from '../../../src/keys/keystore.js';
import { KeyService } from '../../../src/keys/keyService.js';
import { emptyKeystore, KEYSTORE_FILE, KEYSTORE_FORMAT } from '../../../src/keys/keystoreFile.js';
import { withFileLock } from '../../../src/keys/lockFile.js';

let dir: string;
const KEK = Buffer.alloc(32, 0x5a);

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-keystore-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const file = () => path.join(dir, KEYSTORE_FILE);
/** A KeyService on its own Keystore instance, as a separate process would have. */
const service = () => new KeyService(new Keystore(dir, 'software'), new SoftwareCustodian(KEK), new ManualClock(Date.UTC(2030, 0, 1)));

function corruptCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KeystoreCorruptError);
    return (e as KeystoreCorruptError).code;
  }
  throw new Error('expected KeystoreCorruptError');
}

describe('Keystore', () => {
  it('starts empty without creating a file', () => {
    const ks = new Keystore(dir, 'software');
    expect(ks.read()).toEqual(emptyKeystore('software'));
    expect(existsSync(file())).toBe(false);
  });

  it('writes the format header, mode 0600', async () => {
    await new Keystore(dir, 'software').update((d) => {
      d.keys['team/a'] = { name: 'team/a', createdAt: 'x', createdBy: 'y', versions: [{ version: 1, state: 'enabled', createdAt: 'x', createdBy: 'y' }] };
    });
    expect(JSON.parse(readFileSync(file(), 'utf8'))).toMatchObject({ format: KEYSTORE_FORMAT, custody: 'software' });
    expect(statSync(file()).mode & 0o777).toBe(0o600);
  });

  it('a second instance sees what the first one wrote, and the other way round', async () => {
    const a = service();
    const b = service();
    expect(b.list()).toEqual([]);
    await a.create('team/x', 'a');
    expect(b.list().map((k) => k.name)).toEqual(['team/x']);
    await b.rotate('team/x', 'b');
    expect(a.show('team/x').versions.map((v) => v.version)).toEqual([1, 2]);
    await a.setState('team/x', 1, 'disabled', 'a');
    expect(b.show('team/x').versions[0]!.state).toBe('disabled');
  });

  it('an update starts from the freshest file, so no change is lost', async () => {
    const a = service();
    const b = service();
    await a.create('team/x', 'a');
    await b.create('team/y', 'b'); // b must not write back its stale, empty view
    expect(a.list().map((k) => k.name)).toEqual(['team/x', 'team/y']);
  });

  it('sees the file being deleted', async () => {
    const a = service();
    await a.create('team/x', 'a');
    rmSync(file());
    expect(a.list()).toEqual([]);
  });

  it('a failed update changes nothing', async () => {
    const a = service();
    await a.create('team/x', 'a');
    const before = readFileSync(file(), 'utf8');
    await expect(a.create('team/x', 'a')).rejects.toMatchObject({ code: 'key_exists' });
    await expect(
      new Keystore(dir, 'software').update((d) => {
        d.keys['team/z'] = d.keys['team/x']!;
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(readFileSync(file(), 'utf8')).toBe(before);
    expect(a.list().map((k) => k.name)).toEqual(['team/x']);
    expect(existsSync(file() + '.lock')).toBe(false);
  });

  it('two concurrent rotates from two instances on the same file both land', async () => {
    const a = service();
    const b = service();
    await a.create('team/x', 'a');
    await Promise.all([a.rotate('team/x', 'a'), b.rotate('team/x', 'b'), a.rotate('team/x', 'a'), b.rotate('team/x', 'b')]);
    const versions = service().show('team/x').versions;
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3, 4, 5]);
    expect(versions.map((v) => v.createdBy).filter((c) => c === 'b')).toHaveLength(2);
    expect(existsSync(file() + '.lock')).toBe(false);
  });

  it('concurrent creates of one name: exactly one wins, the other gets key_exists', async () => {
    const results = await Promise.allSettled([service().create('team/x', 'a'), service().create('team/x', 'b')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason.code).toBe('key_exists');
  });

  describe('a corrupt file: KeystoreCorruptError', () => {
    it('not JSON', () => {
      writeFileSync(file(), '{"format": "keyanchor-keystore/1", "custody": ', { mode: 0o600 });
      expect(corruptCode(() => new Keystore(dir, 'software'))).toBe('keystore_corrupt');
    });

    it('the wrong format', () => {
      writeFileSync(file(), JSON.stringify({ format: 'other/1', custody: 'software', keys: {} }));
      expect(corruptCode(() => new Keystore(dir, 'software'))).toBe('keystore_corrupt');
    });

    it('a key stored under another name', () => {
      const v = { version: 1, state: 'enabled', createdAt: 'x', createdBy: 'y' };
      writeFileSync(file(), JSON.stringify({ format: KEYSTORE_FORMAT, custody: 'software', keys: { 'team/a': { name: 'team/b', createdAt: 'x', createdBy: 'y', versions: [v] } } }));
      expect(corruptCode(() => new Keystore(dir, 'software'))).toBe('keystore_corrupt');
    });

    it('keys of the other custody kind', () => {
      writeFileSync(file(), JSON.stringify(emptyKeystore('pkcs11')));
      expect(corruptCode(() => new Keystore(dir, 'software'))).toBe('keystore_corrupt');
    });

    it('corrupted under a running instance: read() refuses it, and refuses to write over it', async () => {
      const ks = new Keystore(dir, 'software');
      await ks.update(() => undefined);
      writeFileSync(file(), 'garbage, and longer than before');
      expect(corruptCode(() => ks.read())).toBe('keystore_corrupt');
      await expect(ks.update(() => undefined)).rejects.toBeInstanceOf(KeystoreCorruptError);
      expect(readFileSync(file(), 'utf8')).toBe('garbage, and longer than before');
    });
  });
});

describe('withFileLock', () => {
  it('serialises concurrent critical sections on one lock file', async () => {
    const lock = path.join(dir, 'x.lock');
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        withFileLock(lock, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await sleep(15);
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([1, 2, 3, 4]);
    expect(existsSync(lock)).toBe(false);
  });

  it('releases the lock when the section throws', async () => {
    const lock = path.join(dir, 'x.lock');
    await expect(withFileLock(lock, () => Promise.reject(new Error('inside')))).rejects.toThrow('inside');
    expect(await withFileLock(lock, () => 'ran', 200)).toBe('ran');
  });

  it('waits for a live holder and gives up at the timeout', async () => {
    const file = path.join(dir, 'keystore.json');
    let release!: () => void;
    const holding = withFileLock(file, () => new Promise<void>((r) => (release = r)));
    await sleep(20);
    await expect(withFileLock(file, () => 'ran', 100)).rejects.toThrow(`lock on ${file} is held by another process`);
    release();
    await holding;
    expect(await withFileLock(file, () => 'ran', 200)).toBe('ran');
  });

  it('is the same lock whichever path names the file (symlinked directory)', async () => {
    mkdirSync(path.join(dir, 'real'));
    symlinkSync(path.join(dir, 'real'), path.join(dir, 'alias'));
    let release!: () => void;
    const holding = withFileLock(path.join(dir, 'real', 'k.json'), () => new Promise<void>((r) => (release = r)));
    await sleep(20);
    await expect(withFileLock(path.join(dir, 'alias', 'k.json'), () => 'ran', 100)).rejects.toThrow(/held by another process/);
    release();
    await holding;
  });

  it('is released by the kernel when its holder is killed with SIGKILL: no stale lock, no takeover race', async () => {
    const file = path.join(dir, 'keystore.json');
    const mod = new URL('../../../dist/src/keys/lockFile.js', import.meta.url).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', `const { withFileLock } = await import(${JSON.stringify(mod)}); await withFileLock(${JSON.stringify(file)}, () => { process.stdout.write('held'); return new Promise(() => {}); });`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    await expect(withFileLock(file, () => 'ran', 100)).rejects.toThrow(/held by another process/);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await withFileLock(file, () => 'ran', 500)).toBe('ran');
    expect(readdirSync(dir)).toEqual([]); // and it never was a file
  });
});

describe('writeFileAtomic', () => {
  it('replaces the content with the given mode and leaves no temp file', () => {
    const f = path.join(dir, 'data.json');
    writeFileAtomic(f, 'one', 0o600);
    writeFileAtomic(f, Buffer.from('two'), 0o640);
    expect(readFileSync(f, 'utf8')).toBe('two');
    expect(statSync(f).mode & 0o777).toBe(0o640 & ~process.umask());
    expect(readdirSync(dir)).toEqual(['data.json']);
  });

  it('after many keystore updates the state directory holds only the keystore', async () => {
    const a = service();
    await a.create('team/x', 'a');
    for (let i = 0; i < 5; i++) await a.rotate('team/x', 'a');
    expect(readdirSync(dir)).toEqual([KEYSTORE_FILE]);
  });

  it('a write that cannot be renamed into place throws and leaves no temp file', () => {
    const target = path.join(dir, 'occupied');
    mkdirSync(target);
    writeFileSync(path.join(target, 'inside'), 'x');
    expect(() => writeFileAtomic(target, 'data')).toThrow();
    expect(readdirSync(dir)).toEqual(['occupied']);
  });
});

describe('writeFileExclusive', () => {
  it('creates once, then refuses to overwrite', () => {
    const f = path.join(dir, 'once');
    expect(writeFileExclusive(f, 'first')).toBe(true);
    expect(writeFileExclusive(f, 'second')).toBe(false);
    expect(readFileSync(f, 'utf8')).toBe('first');
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });
});
