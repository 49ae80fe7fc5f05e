/** Atomic file writes (dev material, the software KEK): no partial files, no temp files left. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileExclusive } from '../../src/fsAtomic.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-fs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('replaces the content with the given mode and leaves no temp file', () => {
    const f = path.join(dir, 'data.json');
    writeFileAtomic(f, 'one', 0o600);
    writeFileAtomic(f, Buffer.from('two'), 0o640);
    expect(readFileSync(f, 'utf8')).toBe('two');
    expect(statSync(f).mode & 0o777).toBe(0o640 & ~process.umask());
    expect(readdirSync(dir)).toEqual(['data.json']);
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
    expect(readdirSync(dir)).toEqual(['once']);
  });
});
