/**
 * The key-encryption key on the token: finding it by label, reading its attributes (never its
 * value), the policy it must meet, its id, and creating one. The custodian, `hsm init` and
 * `hsm status` all go through here, so they agree on what an acceptable KEK is.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BrokerError } from '../../errors.js';
import { CKA, CKK, CKM, CKO } from './constants.js';
import { custodyError } from './errors.js';
import type { Handle, Pkcs11Module } from './library.js';

export const KEK_BYTES = 32;

export interface KekAttributes {
  keyType: number;
  valueLen: number;
  /** CKA_ID in hex; empty when the object has none. */
  id: string;
  token: boolean;
  private: boolean;
  sensitive: boolean;
  extractable: boolean;
  alwaysSensitive: boolean;
  neverExtractable: boolean;
  local: boolean;
  modifiable: boolean;
  wrap: boolean;
  unwrap: boolean;
  encrypt: boolean;
  decrypt: boolean;
  sign: boolean;
  verify: boolean;
  derive: boolean;
}

export interface Kek {
  handle: Handle;
  label: string;
  /** `pkcs11:<label>:<CKA_ID hex>`, or a hash of label and token serial when the KEK has no CKA_ID. */
  id: string;
  attributes: KekAttributes;
}

const BOOLEAN_ATTRIBUTES = [
  ['token', CKA.TOKEN],
  ['private', CKA.PRIVATE],
  ['sensitive', CKA.SENSITIVE],
  ['extractable', CKA.EXTRACTABLE],
  ['alwaysSensitive', CKA.ALWAYS_SENSITIVE],
  ['neverExtractable', CKA.NEVER_EXTRACTABLE],
  ['local', CKA.LOCAL],
  ['modifiable', CKA.MODIFIABLE],
  ['wrap', CKA.WRAP],
  ['unwrap', CKA.UNWRAP],
  ['encrypt', CKA.ENCRYPT],
  ['decrypt', CKA.DECRYPT],
  ['sign', CKA.SIGN],
  ['verify', CKA.VERIFY],
  ['derive', CKA.DERIVE],
] as const;

/** Secret-key objects with this label. */
export function findSecretKeys(mod: Pkcs11Module, session: Handle, label: string): Handle[] {
  mod.C_FindObjectsInit(session, [
    { type: CKA.CLASS, value: CKO.SECRET_KEY },
    { type: CKA.LABEL, value: label },
  ]);
  try {
    return mod.C_FindObjects(session, 16);
  } finally {
    mod.C_FindObjectsFinal(session);
  }
}

/** Reads the KEK's metadata. Never asks for CKA_VALUE. */
export function readKekAttributes(mod: Pkcs11Module, session: Handle, handle: Handle): KekAttributes {
  const template = [CKA.KEY_TYPE, CKA.VALUE_LEN, CKA.ID, ...BOOLEAN_ATTRIBUTES.map(([, t]) => t)].map((type) => ({ type }));
  const values = mod.C_GetAttributeValue(session, handle, template).map((a) => a.value);
  const [keyType, valueLen, id, ...flags] = values;
  const out = { keyType: readUlong(keyType), valueLen: readUlong(valueLen), id: (id ?? Buffer.alloc(0)).toString('hex') } as KekAttributes;
  BOOLEAN_ATTRIBUTES.forEach(([name], i) => {
    out[name] = (flags[i]?.[0] ?? 0) !== 0;
  });
  return out;
}

/**
 * What makes a KEK unusable (`problems`, the custodian refuses it) or merely broader than it
 * needs to be (`warnings`, reported by `hsm status`).
 */
export function assessKek(a: KekAttributes): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (a.keyType !== CKK.AES) problems.push('it is not an AES key');
  else if (a.valueLen !== KEK_BYTES) problems.push(`it is AES-${a.valueLen * 8}, not AES-256`);
  if (!a.token) problems.push('it is a session object (CKA_TOKEN false)');
  if (a.extractable) problems.push('it is extractable (CKA_EXTRACTABLE true): it could be exported from the token');
  if (!a.sensitive) problems.push('it is not sensitive (CKA_SENSITIVE false)');
  if (!a.private) problems.push('it is a public object (CKA_PRIVATE false): usable without logging in');
  if (!a.wrap) problems.push('it cannot wrap (CKA_WRAP false)');
  if (!a.unwrap) problems.push('it cannot unwrap (CKA_UNWRAP false)');
  const extra = (['encrypt', 'decrypt', 'sign', 'verify', 'derive'] as const).filter((u) => a[u]);
  if (extra.length) warnings.push(`it also permits ${extra.join(', ')}; keyanchor needs only wrap and unwrap`);
  if (!a.neverExtractable) warnings.push('it was extractable at some time (CKA_NEVER_EXTRACTABLE false)');
  if (!a.alwaysSensitive) warnings.push('it was not always sensitive (CKA_ALWAYS_SENSITIVE false)');
  if (a.modifiable) warnings.push('its attributes can still be changed (CKA_MODIFIABLE true)');
  return { problems, warnings };
}

export const kekId = (label: string, idHex: string, tokenSerial: string): string =>
  `pkcs11:${label}:${idHex || createHash('sha256').update(`${label}\0${tokenSerial}`).digest('hex').slice(0, 32)}`;

/** How to make an acceptable KEK, for error messages and `hsm status`. */
/**
 * The OpenSC flags that make a KEK keyanchor accepts: AES-256, sensitive, private (needs the PIN),
 * never extractable, wrap and unwrap. pkcs11-tool cannot switch the other usages off (SoftHSM turns
 * on encrypt/decrypt/verify by default), so `hsm status` warns about them; `keyanchor hsm init` is
 * what makes a wrap-only, non-modifiable KEK. docs/operations.md quotes this exact command (tested).
 */
export const pkcs11ToolKekFlags = (label: string, id = '<hex>'): string[] =>
  ['--keygen', '--key-type', 'AES:32', '--label', label, '--id', id, '--sensitive', '--private', '--usage-wrap'];

export const pkcs11ToolKekCommand = (modulePath: string, label: string, id?: string): string =>
  ['pkcs11-tool', '--module', modulePath, '--login', ...pkcs11ToolKekFlags(label, id)].join(' ');

export const kekRemedy = (modulePath: string, label: string): string =>
  `create one with \`keyanchor hsm init\` (wrap-only), or with OpenSC: ${pkcs11ToolKekCommand(modulePath, label)}`;

/** Finds the KEK labelled `label` and checks it meets the policy; fails closed otherwise. */
export function findKek(mod: Pkcs11Module, session: Handle, label: string, tokenSerial: string, modulePath: string): Kek {
  let handles: Handle[];
  let attributes: KekAttributes;
  try {
    handles = findSecretKeys(mod, session, label);
    if (handles.length !== 1) {
      const what = handles.length === 0 ? 'no secret key' : `${handles.length} secret keys`;
      throw new BrokerError('custody_unavailable', `pkcs11: ${what} labelled "${label}" on the token; ${kekRemedy(modulePath, label)}`);
    }
    attributes = readKekAttributes(mod, session, handles[0]!);
  } catch (e) {
    throw custodyError(`finding the KEK "${label}"`, e);
  }
  const { problems } = assessKek(attributes);
  if (problems.length) {
    throw new BrokerError('custody_unavailable', `pkcs11: refusing the KEK "${label}": ${problems.join('; ')}; ${kekRemedy(modulePath, label)}`);
  }
  return { handle: handles[0]!, label, id: kekId(label, attributes.id, tokenSerial), attributes };
}

/**
 * Generates an AES-256 KEK as a token object that never leaves the token and can do nothing but
 * wrap and unwrap. CKA_MODIFIABLE false keeps anyone with the PIN from enabling decrypt later.
 */
export async function generateKek(mod: Pkcs11Module, session: Handle, label: string): Promise<Handle> {
  return mod.C_GenerateKeyAsync(session, { mechanism: CKM.AES_KEY_GEN }, [
    { type: CKA.CLASS, value: CKO.SECRET_KEY },
    { type: CKA.KEY_TYPE, value: CKK.AES },
    { type: CKA.VALUE_LEN, value: KEK_BYTES },
    { type: CKA.LABEL, value: label },
    { type: CKA.ID, value: randomBytes(16) },
    { type: CKA.TOKEN, value: true },
    { type: CKA.PRIVATE, value: true },
    { type: CKA.SENSITIVE, value: true },
    { type: CKA.EXTRACTABLE, value: false },
    { type: CKA.MODIFIABLE, value: false },
    { type: CKA.WRAP, value: true },
    { type: CKA.UNWRAP, value: true },
    { type: CKA.ENCRYPT, value: false },
    { type: CKA.DECRYPT, value: false },
    { type: CKA.SIGN, value: false },
    { type: CKA.VERIFY, value: false },
    { type: CKA.DERIVE, value: false },
  ]);
}

/** A CK_ULONG attribute in native byte order. */
function readUlong(b: Buffer | undefined): number {
  if (!b || b.length === 0) return 0;
  return b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUIntLE(0, b.length);
}
