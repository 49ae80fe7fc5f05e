/**
 * The software KEK file: created once from the CSPRNG with mode 0600, never overwritten, and
 * refused when others can read it or it has the wrong size.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCustodian } from '../../../src/custody/index.js';
import { SoftwareCustodian } from '../../../src/custody/software.js';
import { KEK_FILE, loadOrCreateSoftwareKek } from '../../../src/custody/softwareKek.js';
import { BrokerError } from '../../../src/errors.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-kek-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const kekFile = () => path.join(dir, KEK_FILE);

function failure(f: () => unknown): { status: number; code: string } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    return { status: (e as BrokerError).status, code: (e as BrokerError).code };
  }
  throw new Error('expected a BrokerError');
}

describe('loadOrCreateSoftwareKek', () => {
  it('creates a 32-byte KEK file with mode 0600', () => {
    const kek = loadOrCreateSoftwareKek(dir, { create: true });
    expect(kek).toHaveLength(32);
    expect(statSync(kekFile()).mode & 0o777).toBe(0o600);
    expect(readFileSync(kekFile()).equals(kek)).toBe(true);
    expect(kek.equals(Buffer.alloc(32))).toBe(false);
  });

  it('keeps an existing KEK: a second start loads the same bytes', () => {
    const first = Buffer.from(loadOrCreateSoftwareKek(dir, { create: true }));
    expect(loadOrCreateSoftwareKek(dir, { create: true }).equals(first)).toBe(true);
    expect(loadOrCreateSoftwareKek(dir, { create: false }).equals(first)).toBe(true);
  });

  it('a missing KEK without create: custody_unavailable (503)', () => {
    expect(failure(() => loadOrCreateSoftwareKek(dir, { create: false }))).toEqual({ status: 503, code: 'custody_unavailable' });
  });

  it.each([0o644, 0o640, 0o604, 0o660])('a KEK with mode %o is refused: custody_unavailable', (mode) => {
    loadOrCreateSoftwareKek(dir, { create: true });
    chmodSync(kekFile(), mode);
    expect(failure(() => loadOrCreateSoftwareKek(dir, { create: true }))).toEqual({ status: 503, code: 'custody_unavailable' });
  });

  it('mode 0400 is accepted', () => {
    loadOrCreateSoftwareKek(dir, { create: true });
    chmodSync(kekFile(), 0o400);
    expect(loadOrCreateSoftwareKek(dir, { create: false })).toHaveLength(32);
  });

  it.each([0, 16, 31, 33, 64])('a KEK of %i bytes is refused: custody_unavailable', (size) => {
    writeFileSync(kekFile(), Buffer.alloc(size, 1), { mode: 0o600 });
    expect(failure(() => loadOrCreateSoftwareKek(dir, { create: true }))).toEqual({ status: 503, code: 'custody_unavailable' });
  });
});

describe('SoftwareCustodian', () => {
  it('refuses a KEK that is not 32 bytes: custody_unavailable', () => {
    expect(failure(() => new SoftwareCustodian(Buffer.alloc(31)))).toEqual({ status: 503, code: 'custody_unavailable' });
  });

  it('does not keep a reference to the caller buffer, and its KEK id does not reveal the KEK', () => {
    const kek = Buffer.alloc(32, 9);
    const c = new SoftwareCustodian(kek);
    const id = c.kekId;
    kek.fill(0);
    expect(new SoftwareCustodian(Buffer.alloc(32, 9)).kekId).toBe(id);
    expect(id).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(id).not.toContain(Buffer.alloc(32, 9).toString('hex').slice(0, 16));
  });

  it('createCustodian builds the software custodian from the state directory, creating the KEK', async () => {
    const c = await createCustodian({ custody: { kind: 'software' }, stateDir: dir }, { create: true });
    expect(c.kind).toBe('software');
    expect(c.recipientKeyTypes).toEqual(['EC', 'RSA']);
    expect(statSync(kekFile()).mode & 0o777).toBe(0o600);
    await c.close();
  });
});
