import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../attest-agent/src/cli.js';
import { measureFile } from '../../../attest-agent/src/measure.js';
import { prepareProgram } from '../../../attest-agent/src/privateCopy.js';
import { scratchDir } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

const sha256sum = (path: string) => execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];

describe('measureFile', () => {
  it('matches sha256sum on a generated multi-chunk file with a ragged tail', async () => {
    const path = join(scratch.dir, 'random.bin');
    writeFileSync(path, randomBytes(5 * (1 << 20) + 12_345));
    const m = await measureFile(path);
    expect(m.sha256).toBe(sha256sum(path));
    expect(m.size).toBe(5 * (1 << 20) + 12_345);
  });

  it('hashes the empty file', async () => {
    const path = join(scratch.dir, 'empty');
    writeFileSync(path, '');
    expect((await measureFile(path)).sha256).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('refuses missing files and directories with measurement_failed', async () => {
    await expect(measureFile(join(scratch.dir, 'nope'))).rejects.toMatchObject({ code: 'measurement_failed' });
    mkdirSync(join(scratch.dir, 'adir'));
    await expect(measureFile(join(scratch.dir, 'adir'))).rejects.toMatchObject({ code: 'measurement_failed' });
  });

  it('streams: hashing a 256 MiB file never holds it in memory (speed is for npm run bench)', async () => {
    const path = join(scratch.dir, 'big.bin');
    const fd = openSync(path, 'w');
    const chunk = Buffer.alloc(1 << 20, 7);
    for (let i = 0; i < 256; i++) writeSync(fd, chunk);
    closeSync(fd);
    const before = process.memoryUsage();
    let peak = 0;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - before.arrayBuffers)), 1);
    const m = await measureFile(path);
    clearInterval(sample);
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - before.arrayBuffers);
    expect(m.size).toBe(256 << 20);
    expect(m.sha256).toBe(execFileSync('sha256sum', [path], { encoding: 'utf8' }).slice(0, 64));
    expect(peak).toBeLessThan(64 << 20);
  });
});

describe('prepareProgram (measure into a private copy)', () => {
  it('copies exactly the hashed bytes into a 0700 directory as a 0500 file', async () => {
    const path = join(scratch.dir, 'prog.bin');
    writeFileSync(path, randomBytes(3 * (1 << 20) + 1));
    const work = join(scratch.dir, 'work');
    mkdirSync(work);
    const p = await prepareProgram(path, work);
    expect(p.sha256).toBe(sha256sum(path));
    expect(p.copyPath.startsWith(work)).toBe(true);
    expect(readFileSync(p.copyPath).equals(readFileSync(path))).toBe(true);
    expect(statSync(p.copyPath).mode & 0o777).toBe(0o500);
    const dir = join(p.copyPath, '..');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await p.cleanup();
    expect(existsSync(dir)).toBe(false);
  });

  it('reports a missing work dir as config', async () => {
    const path = join(scratch.dir, 'prog-nowork');
    writeFileSync(path, 'x');
    await expect(prepareProgram(path, join(scratch.dir, 'no-such-work-dir'))).rejects.toMatchObject({ code: 'config' });
  });

  it('leaves nothing behind when the source cannot be read', async () => {
    const work = join(scratch.dir, 'work2');
    mkdirSync(work);
    await expect(prepareProgram(join(scratch.dir, 'missing'), work)).rejects.toMatchObject({ code: 'measurement_failed' });
    expect(execFileSync('ls', ['-A', work], { encoding: 'utf8' })).toBe('');
  });
});

describe('attest-agent measure', () => {
  it('prints sha256sum-compatible output, or JSON', async () => {
    const path = join(scratch.dir, 'cli.bin');
    writeFileSync(path, randomBytes(1000));
    let out = '';
    const io = { out: (t: string) => { out += t; }, err: () => undefined };
    expect(await runCli(['node', 'attest-agent', 'measure', path], io)).toBe(0);
    expect(out).toBe(execFileSync('sha256sum', [path], { encoding: 'utf8' }));
    out = '';
    expect(await runCli(['node', 'attest-agent', 'measure', '--json', path], io)).toBe(0);
    expect(JSON.parse(out)).toEqual({ path, sha256: sha256sum(path), size: 1000 });
  });
});
