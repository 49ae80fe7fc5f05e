import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../attest-agent/src/cli.js';
import { exitCodeFor } from '../../../attest-agent/src/exitCodes.js';
import { ociImageDigest, parseLayoutSpec } from '../../../attest-agent/src/oci.js';
import { scratchDir } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

function hasUmoci(): boolean {
  try {
    execFileSync('which', ['umoci'], { stdio: 'pipe' });
    return true;
  } catch {
    if (process.env.KEYANCHOR_REQUIRE_DEPS === '1') throw new Error('umoci is required (KEYANCHOR_REQUIRE_DEPS=1) but not installed');
    console.warn('umoci not installed: skipping the real OCI layout tests');
    return false;
  }
}
const umoci = hasUmoci();

interface IndexJson { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] }
const readIndex = (dir: string) => JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as IndexJson;
const blobPath = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));

/** A layout written by hand: one manifest blob, correctly described unless told otherwise. */
function handLayout(name: string, opts: { digestAlg?: string; sizeDelta?: number; tags?: (string | undefined)[] } = {}): string {
  const dir = join(scratch.dir, name);
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const manifests = (opts.tags ?? [undefined]).map((tag, i) => {
    const blob = Buffer.from(JSON.stringify({ schemaVersion: 2, n: i }));
    const hex = createHash('sha256').update(blob).digest('hex');
    writeFileSync(join(dir, 'blobs', 'sha256', hex), blob);
    return {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `${opts.digestAlg ?? 'sha256'}:${hex}`,
      size: blob.length + (opts.sizeDelta ?? 0),
      ...(tag ? { annotations: { 'org.opencontainers.image.ref.name': tag } } : {}),
    };
  });
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  return dir;
}

describe.skipIf(!umoci)('ociImageDigest on a layout made by umoci', () => {
  const dir = join(scratch.dir, 'umoci-layout');
  if (umoci) {
    execFileSync('umoci', ['init', '--layout', dir]);
    execFileSync('umoci', ['new', '--image', `${dir}:v1`]);
    execFileSync('umoci', ['new', '--image', `${dir}:v2`]);
  }

  it('returns the digest of the manifest tagged TAG', async () => {
    const idx = readIndex(dir);
    for (const tag of ['v1', 'v2']) {
      const desc = idx.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!;
      expect(await ociImageDigest({ dir, tag })).toBe(desc.digest);
      const actual = createHash('sha256').update(readFileSync(blobPath(dir, desc.digest))).digest('hex');
      expect(desc.digest).toBe(`sha256:${actual}`);
    }
  });

  it('is printed by `attest-agent measure --oci-layout DIR:TAG`', async () => {
    let out = '';
    const io = { out: (t: string) => { out += t; }, err: () => undefined };
    expect(await runCli(['node', 'attest-agent', 'measure', '/bin/true', '--oci-layout', `${dir}:v2`], io)).toBe(0);
    const v2 = readIndex(dir).manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'v2')!;
    expect(out.split('\n')[1]).toBe(`${v2.digest}  ${dir}:v2`);
    expect(await runCli(['node', 'attest-agent', 'measure', '/bin/true', '--oci-layout', dir], io)).toBe(exitCodeFor('image_layout_invalid'));
  });

  it('needs a tag when the layout holds several manifests, and an existing one', async () => {
    await expect(ociImageDigest({ dir })).rejects.toMatchObject({ code: 'image_layout_invalid' });
    await expect(ociImageDigest({ dir, tag: 'nope' })).rejects.toMatchObject({ code: 'image_layout_invalid' });
  });

  it('fails closed when the manifest blob was tampered with', async () => {
    const copy = join(scratch.dir, 'umoci-tampered');
    cpSync(dir, copy, { recursive: true });
    const desc = readIndex(copy).manifests[0]!;
    const blob = readFileSync(blobPath(copy, desc.digest));
    blob[blob.length - 2]! ^= 0x20; // same size, different content
    writeFileSync(blobPath(copy, desc.digest), blob);
    await expect(ociImageDigest({ dir: copy, tag: 'v1' })).rejects.toMatchObject({ code: 'image_layout_invalid' });
  });

  it('fails closed when the blob size differs from the descriptor', async () => {
    const copy = join(scratch.dir, 'umoci-resized');
    cpSync(dir, copy, { recursive: true });
    const desc = readIndex(copy).manifests[0]!;
    writeFileSync(blobPath(copy, desc.digest), Buffer.concat([readFileSync(blobPath(copy, desc.digest)), Buffer.from(' ')]));
    await expect(ociImageDigest({ dir: copy, tag: 'v1' })).rejects.toThrow(/size/);
  });
});

describe('ociImageDigest on hand-made layouts', () => {
  it('takes the only manifest when no tag is given', async () => {
    const dir = handLayout('single');
    expect(await ociImageDigest({ dir })).toBe(readIndex(dir).manifests[0]!.digest);
  });

  it('rejects a descriptor whose size is wrong even though the digest matches', async () => {
    await expect(ociImageDigest({ dir: handLayout('bad-size', { sizeDelta: 1 }) })).rejects.toMatchObject({ code: 'image_layout_invalid' });
  });

  it('accepts only sha256 digests', async () => {
    await expect(ociImageDigest({ dir: handLayout('sha512', { digestAlg: 'sha512' }) })).rejects.toThrow(/sha256/);
  });

  it('rejects two manifests carrying the same tag', async () => {
    await expect(ociImageDigest({ dir: handLayout('dup-tag', { tags: ['t', 't'] }), tag: 't' })).rejects.toThrow(/2 manifests/);
  });

  it('rejects a missing blob, a missing oci-layout file and a non-index index.json', async () => {
    const noBlob = handLayout('no-blob');
    rmSync(blobPath(noBlob, readIndex(noBlob).manifests[0]!.digest));
    await expect(ociImageDigest({ dir: noBlob })).rejects.toMatchObject({ code: 'image_layout_invalid' });
    const noMarker = handLayout('no-marker');
    rmSync(join(noMarker, 'oci-layout'));
    await expect(ociImageDigest({ dir: noMarker })).rejects.toMatchObject({ code: 'image_layout_invalid' });
    const badIndex = handLayout('bad-index');
    writeFileSync(join(badIndex, 'index.json'), '{"schemaVersion":1}');
    await expect(ociImageDigest({ dir: badIndex })).rejects.toMatchObject({ code: 'image_layout_invalid' });
  });
});

describe('parseLayoutSpec', () => {
  it('splits DIR:TAG and leaves plain directories alone', () => {
    expect(parseLayoutSpec('/x/layout:v1.2')).toEqual({ dir: '/x/layout', tag: 'v1.2' });
    expect(parseLayoutSpec('/x/layout')).toEqual({ dir: '/x/layout' });
    expect(parseLayoutSpec('/x/a:b/')).toEqual({ dir: '/x/a:b/' });
    expect(parseLayoutSpec('rel:latest')).toEqual({ dir: 'rel', tag: 'latest' });
  });
});
