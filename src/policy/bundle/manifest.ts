/**
 * The bundle manifest: what the signatures cover. Canonical JSON (keys sorted, no whitespace) of
 *
 *   { "expires": "2027-01-31T00:00:00Z",            RFC 3339, UTC, whole seconds
 *     "files": { "<relative path>": "<sha256 hex>" },  every file of the directory but the envelope
 *     "root": { "version": 2, "keys": ["<base64 SPKI DER>"], "threshold": 2,      optional: the trust root,
 *               "signers": { "keys": [...], "threshold": 1 } },              carried or a new one
 *     "signers": ["<key id>"],                      who is to sign it (a signature counts only if listed)
 *     "version": 7 }                                a positive integer, higher for every new bundle
 *
 * A manifest that is not in canonical form is refused, so that one bundle has one byte string
 * and one digest (the manifest hash recorded in every audit record).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { parseJsonObject } from '../../measurement/strictJson.js';
import { settle } from '../../measurement/verdict.js';
import { BUNDLE_FILE } from './dsse.js';

const RelPath = z.string().regex(/^(?:[^/\0.][^/\0]*)(?:\/[^/\0.][^/\0]*)*$/, 'a relative path without hidden or empty segments');
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits');
export const Expires = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, 'an RFC 3339 UTC time like 2027-01-31T00:00:00Z');

const KeySet = {
  keys: z.array(z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64 SPKI DER')).min(1).max(64),
  threshold: z.number().int().min(1).max(64),
};
/** Bundle versions stay below 2^32, root versions below 2^21: together they order in one safe integer. */
export const MAX_BUNDLE_VERSION = 2 ** 32 - 1;
export const MAX_ROOT_VERSION = 2 ** 21 - 1;

/**
 * A trust root. Its `keys` (offline) change the root; its `signers` (online), when present, sign
 * ordinary bundles — without `signers`, the root keys sign those too. Every change of the root
 * raises its `version` by one.
 */
export const RootSchema = z.strictObject({
  version: z.number().int().min(1).max(MAX_ROOT_VERSION),
  ...KeySet,
  signers: z.strictObject(KeySet).optional(),
});
export type RootData = z.infer<typeof RootSchema>;

export const ManifestSchema = z.strictObject({
  version: z.number().int().min(1).max(MAX_BUNDLE_VERSION),
  expires: Expires,
  files: z.record(RelPath, Hex64),
  signers: z.array(Hex64).min(1).max(64),
  root: RootSchema.optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export class ManifestError extends Error {}

/** JSON with object keys sorted at every level and no whitespace. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export const manifestBytes = (m: Manifest): Buffer => Buffer.from(canonicalJson(m), 'utf8');
export const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export function parseManifest(bytes: Buffer): Manifest {
  let obj: unknown;
  const read = settle(() => void (obj = parseJsonObject(bytes, 8 * 1024 * 1024, 'the manifest')));
  if (!read.ok) throw new ManifestError(read.reason);
  const parsed = ManifestSchema.safeParse(obj);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new ManifestError(`manifest ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  if (!manifestBytes(parsed.data).equals(bytes)) throw new ManifestError('the manifest is not in canonical form (sorted keys, no whitespace)');
  if (Number.isNaN(Date.parse(parsed.data.expires))) throw new ManifestError(`manifest expires: ${parsed.data.expires} is not a date`);
  return parsed.data;
}

/** The sha256 of every file of the directory but the envelope, as a manifest lists them. */
export function fileDigests(files: ReadonlyMap<string, Buffer>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [rel, bytes] of files) if (rel !== BUNDLE_FILE) out[rel] = sha256Hex(bytes);
  return out;
}

export interface FileDifferences {
  altered: string[];
  added: string[];
  removed: string[];
}

export function compareFiles(signed: Record<string, string>, actual: Record<string, string>): FileDifferences {
  const d: FileDifferences = { altered: [], added: [], removed: [] };
  for (const [f, h] of Object.entries(signed)) {
    if (!Object.hasOwn(actual, f)) d.removed.push(f);
    else if (actual[f] !== h) d.altered.push(f);
  }
  for (const f of Object.keys(actual)) if (!Object.hasOwn(signed, f)) d.added.push(f);
  return d;
}
