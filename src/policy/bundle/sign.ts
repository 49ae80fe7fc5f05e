/**
 * Making bundles (`keyanchor policy sign`): the manifest of a directory's files, signed by the
 * keys at hand, with the key ids of everyone who is to sign listed in it; and adding one more
 * signature later — made here with a private key, or elsewhere (openssl, a token) over the PAE.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { PAYLOAD_TYPE, pae, parseEnvelope, serializeEnvelope, type Envelope } from './dsse.js';
import { fileDigests, manifestBytes, parseManifest, type Manifest, type RootData } from './manifest.js';
import { keyId, signPae, verifyPae } from './signingKeys.js';

export class SignError extends Error {}

export interface BundleSpec {
  version: number;
  /** Epoch milliseconds; stored to the second. */
  expires: number;
  /** Private keys that sign now. */
  keys: KeyObject[];
  /** Public keys of co-signers who will add their signatures later. */
  cosigners?: KeyObject[];
  /** A new trust root (rotation). */
  root?: RootData;
}

export function makeBundle(files: ReadonlyMap<string, Buffer>, spec: BundleSpec): string {
  if (!Number.isSafeInteger(spec.version) || spec.version < 1) throw new SignError('the version must be a positive integer');
  const signers = [...new Set([...spec.keys.map((k) => createPublicKey(k)), ...(spec.cosigners ?? [])].map(keyId))].sort();
  if (signers.length === 0) throw new SignError('give at least one signing key (--key) or co-signer (--signer)');
  const manifest: Manifest = {
    version: spec.version,
    expires: new Date(Math.floor(spec.expires / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
    files: fileDigests(files),
    signers,
    ...(spec.root ? { root: spec.root } : {}),
  };
  const payload = manifestBytes(manifest);
  parseManifest(payload); // what we write must be what the broker accepts
  const env: Envelope = { payload, signatures: [] };
  for (const k of spec.keys) env.signatures.push({ keyid: keyId(createPublicKey(k)), sig: signPae(k, pae(PAYLOAD_TYPE, payload)) });
  return serializeEnvelope(env);
}

/** The bytes a co-signer signs: the DSSE PAE of the envelope's payload. */
export const paeOf = (envelope: Buffer): Buffer => pae(PAYLOAD_TYPE, parseEnvelope(envelope).payload);

/**
 * Adds a signature by `publicKey` — `sig` made elsewhere, or made here with `privateKey` — after
 * checking that the key is one the manifest lists and that the signature verifies.
 */
export function addSignature(envelope: Buffer, s: { privateKey: KeyObject } | { publicKey: KeyObject; sig: Buffer }): string {
  const env = parseEnvelope(envelope);
  const manifest = parseManifest(env.payload);
  const data = pae(PAYLOAD_TYPE, env.payload);
  const publicKey = 'privateKey' in s ? createPublicKey(s.privateKey) : s.publicKey;
  const id = keyId(publicKey);
  if (!manifest.signers.includes(id)) throw new SignError(`key ${id} is not among the manifest's signers; sign again with it as --key or --signer`);
  const sig = 'privateKey' in s ? signPae(s.privateKey, data) : s.sig;
  if (!verifyPae(publicKey, data, sig)) throw new SignError(`the signature does not verify under key ${id} (was it made over the output of \`keyanchor policy pae\`?)`);
  env.signatures = [...env.signatures.filter((x) => x.keyid !== id), { keyid: id, sig }];
  return serializeEnvelope(env);
}

/** `30d`, `12h`, `90m`, `2w` from now, or an absolute RFC 3339 time. */
export function parseExpiry(s: string, now: number): number {
  const m = /^(\d{1,6})([mhdw])$/.exec(s);
  if (m) return now + Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 'm' | 'h' | 'd' | 'w'];
  const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s) ? Date.parse(s) : NaN;
  if (Number.isNaN(t)) throw new SignError(`--expires ${s}: give a duration (30d, 12h, 90m, 2w) or an RFC 3339 time`);
  return t;
}
