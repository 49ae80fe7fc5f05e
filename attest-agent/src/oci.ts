/**
 * Image digest from an OCI image layout (https://github.com/opencontainers/image-spec,
 * image-layout.md). The agent picks one manifest descriptor from index.json, re-hashes the blob it
 * names and fails closed unless both the digest and the size match. Only sha256 is accepted.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentError } from './errors.js';
import { openRegularFile, pump } from './measure.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const MAX_INDEX_BYTES = 4 << 20;
const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

const Descriptor = z.object({
  mediaType: z.string().optional(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
});
const IndexSchema = z.object({ schemaVersion: z.literal(2), manifests: z.array(Descriptor) });
const LayoutFileSchema = z.object({ imageLayoutVersion: z.string() });

export interface LayoutSpec { dir: string; tag?: string }

/**
 * Parses `DIR[:TAG]`. The last `:` splits off a tag only when what follows looks like a tag
 * (ref.name characters, no `/`); write a directory whose name contains `:` with a trailing `/`.
 */
export function parseLayoutSpec(spec: string): LayoutSpec {
  const at = spec.lastIndexOf(':');
  if (at > 0) {
    const tag = spec.slice(at + 1);
    if (/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag)) return { dir: spec.slice(0, at), tag };
  }
  return { dir: spec };
}

const invalid = (msg: string, cause?: unknown) =>
  new AgentError('image_layout_invalid', msg, cause === undefined ? {} : { cause });

async function readJson(path: string, what: string): Promise<unknown> {
  try {
    const st = await stat(path);
    if (!st.isFile() || st.size > MAX_INDEX_BYTES) throw new Error('not a regular file of sane size');
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw invalid(`cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

function pickDescriptor(manifests: z.infer<typeof Descriptor>[], tag: string | undefined) {
  const candidates = tag === undefined ? manifests : manifests.filter((m) => m.annotations?.[REF_NAME] === tag);
  if (candidates.length === 1) return candidates[0]!;
  const what = tag === undefined ? 'no tag given' : `tag ${JSON.stringify(tag)}`;
  throw invalid(`${candidates.length} manifests match (${what}); exactly one must`);
}

/** Returns `sha256:<hex>` of the selected manifest after re-verifying its blob. */
export async function ociImageDigest(spec: LayoutSpec): Promise<string> {
  const layout = LayoutFileSchema.safeParse(await readJson(join(spec.dir, 'oci-layout'), 'layout marker'));
  if (!layout.success) throw invalid(`${spec.dir}/oci-layout has no imageLayoutVersion`);
  const index = IndexSchema.safeParse(await readJson(join(spec.dir, 'index.json'), 'index'));
  if (!index.success) throw invalid(`${spec.dir}/index.json is not an OCI image index`);
  const desc = pickDescriptor(index.data.manifests, spec.tag);
  const hex = SHA256_DIGEST.exec(desc.digest)?.[1];
  if (!hex) throw invalid(`manifest digest ${JSON.stringify(desc.digest)} is not sha256:<64 hex>`);

  const blobPath = join(spec.dir, 'blobs', 'sha256', hex);
  const fh = await openRegularFile(blobPath).catch((err: unknown) => {
    throw invalid(`manifest blob ${blobPath} is missing`, err);
  });
  let size: number;
  const hash = createHash('sha256');
  try {
    size = await pump(fh, hash);
  } finally {
    await fh.close();
  }
  if (size !== desc.size) throw invalid(`manifest blob size ${size} differs from descriptor size ${desc.size}`);
  const actual = hash.digest();
  if (!timingSafeEqual(actual, Buffer.from(hex, 'hex'))) {
    throw invalid(`manifest blob ${blobPath} does not hash to its digest`);
  }
  return `sha256:${hex}`;
}
