/** The keystore file format: metadata and wrapped blobs only. Never a key in the clear. */
import { z } from 'zod';
import { KeyName } from '../protocol.js';

export const KEYSTORE_FORMAT = 'keyanchor-keystore/1';
export const KEYSTORE_FILE = 'keystore.json';

export const KeyState = z.enum(['enabled', 'disabled', 'destroyed']);
export type KeyState = z.infer<typeof KeyState>;

const WrappedSchema = z.strictObject({
  alg: z.string().min(1),
  kekId: z.string().min(1),
  blob: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/),
});

export const KeyVersionSchema = z.strictObject({
  version: z.number().int().positive(),
  state: KeyState,
  createdAt: z.string(),
  createdBy: z.string(),
  /** Last state change (disable, enable, destroy). */
  changedAt: z.string().optional(),
  changedBy: z.string().optional(),
  /** Absent once destroyed: crypto-shredding erases the blob. */
  wrapped: WrappedSchema.optional(),
});
export type KeyVersion = z.infer<typeof KeyVersionSchema>;

export const KeyRecordSchema = z.strictObject({
  name: KeyName,
  createdAt: z.string(),
  createdBy: z.string(),
  versions: z.array(KeyVersionSchema).min(1),
});
export type KeyRecord = z.infer<typeof KeyRecordSchema>;

export const KeystoreSchema = z.strictObject({
  format: z.literal(KEYSTORE_FORMAT),
  custody: z.enum(['software', 'pkcs11']),
  keys: z.record(KeyName, KeyRecordSchema),
});
export type KeystoreData = z.infer<typeof KeystoreSchema>;

export const emptyKeystore = (custody: 'software' | 'pkcs11'): KeystoreData => ({ format: KEYSTORE_FORMAT, custody, keys: {} });
