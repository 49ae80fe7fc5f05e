/**
 * The keystore file format (`keyanchor-keystore/1`): what `keyanchor keys export` and the admin
 * export print for backup, what `keyanchor keys import` reads, and what the file keystore of
 * earlier versions kept in `stateDir/keystore.json`. Metadata and wrapped blobs only.
 */
import { z } from 'zod';
import type { StoredKey } from '../store/keys.js';
import { KeyName } from '../protocol.js';

export const KEYSTORE_FORMAT = 'keyanchor-keystore/1';
/** Where earlier versions kept the keystore, in the state directory. */
export const LEGACY_KEYSTORE_FILE = 'keystore.json';

export const KeyState = z.enum(['enabled', 'disabled', 'destroyed']);
export type KeyState = z.infer<typeof KeyState>;

const WrappedSchema = z.strictObject({
  alg: z.string().min(1),
  kekId: z.string().min(1),
  blob: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/),
});

export const KeyVersionSchema = z
  .strictObject({
    version: z.number().int().positive(),
    state: KeyState,
    createdAt: z.string(),
    createdBy: z.string(),
    changedAt: z.string().optional(),
    changedBy: z.string().optional(),
    /** Absent once destroyed: crypto-shredding erases the blob. */
    wrapped: WrappedSchema.optional(),
  })
  .refine((v) => (v.state === 'destroyed') === (v.wrapped === undefined), 'a version has a wrapped blob exactly when it is not destroyed');

export const KeyRecordSchema = z.strictObject({
  name: KeyName,
  createdAt: z.string(),
  createdBy: z.string(),
  versions: z
    .array(KeyVersionSchema)
    .min(1)
    .refine((vs) => vs.every((v, i) => v.version === i + 1), 'versions are numbered 1, 2, … in order'),
});

export const KeystoreSchema = z.strictObject({
  format: z.literal(KEYSTORE_FORMAT),
  custody: z.enum(['software', 'pkcs11']),
  keys: z.record(KeyName, KeyRecordSchema),
});
export type KeystoreData = z.infer<typeof KeystoreSchema>;

export function toKeystoreFile(custody: 'software' | 'pkcs11', keys: readonly StoredKey[]): KeystoreData {
  return {
    format: KEYSTORE_FORMAT,
    custody,
    keys: Object.fromEntries(
      keys.map((k) => [
        k.name,
        {
          name: k.name,
          createdAt: k.createdAt,
          createdBy: k.createdBy,
          versions: k.versions.map(({ wrapped, ...v }) => ({ ...v, ...(wrapped ? { wrapped: { alg: wrapped.alg, kekId: wrapped.kekId, blob: wrapped.blob.toString('base64') } } : {}) })),
        },
      ]),
    ),
  };
}

/** Parses a keystore file's text; throws with the first problem and where it is. */
export function fromKeystoreFile(text: string, file: string): { custody: 'software' | 'pkcs11'; keys: StoredKey[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeystoreFileError(`${file}: not valid JSON`);
  }
  const r = KeystoreSchema.safeParse(parsed);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new KeystoreFileError(`${file}: ${i.path.join('.') || '(top)'}: ${i.message}`);
  }
  const keys: StoredKey[] = [];
  for (const [name, rec] of Object.entries(r.data.keys)) {
    if (rec.name !== name) throw new KeystoreFileError(`${file}: key ${name} names itself ${rec.name}`);
    keys.push({
      name, createdAt: rec.createdAt, createdBy: rec.createdBy,
      versions: rec.versions.map(({ wrapped, ...v }) => ({ ...v, ...(wrapped ? { wrapped: { alg: wrapped.alg, kekId: wrapped.kekId, blob: Buffer.from(wrapped.blob, 'base64') } } : {}) })),
    });
  }
  return { custody: r.data.custody, keys };
}

export class KeystoreFileError extends Error {
  readonly code = 'keystore_invalid';
}
