/**
 * The signed-bundle envelope: DSSE (Dead Simple Signing Envelope, as in-toto and sigstore use).
 * Chosen over JWS because DSSE signs the payload bytes exactly as stored (no re-encoding, no
 * header to canonicalise or to choose an algorithm from: the key decides), its signing input is
 * one documented byte string that `openssl pkeyutl`/`openssl dgst` can sign on an offline machine
 * or through a token, and several signatures over one payload (a k-of-n threshold) are native.
 *
 *   PAE = "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload      (LEN: ASCII decimal bytes)
 *   envelope = {"payloadType": type, "payload": base64(payload), "signatures": [{"keyid", "sig": base64}]}
 */
import { parseJsonObject, type JsonObject } from '../../measurement/strictJson.js';
import { settle } from '../../measurement/verdict.js';

export const PAYLOAD_TYPE = 'application/vnd.keyanchor.policy-manifest+json';
/** The envelope's file name in the policy directory (not itself covered by the manifest). */
export const BUNDLE_FILE = 'policy.dsse';
const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;
const MAX_SIGNATURES = 64;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface Signature {
  keyid: string;
  sig: Buffer;
}

export interface Envelope {
  payload: Buffer;
  signatures: Signature[];
}

export class EnvelopeError extends Error {}

/** The bytes every signature covers. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export function parseEnvelope(bytes: Buffer): Envelope {
  let obj: JsonObject = {};
  const parsed = settle(() => void (obj = parseJsonObject(bytes, MAX_ENVELOPE_BYTES, 'the envelope')));
  if (!parsed.ok) throw new EnvelopeError(parsed.reason);
  const extra = Object.keys(obj).filter((k) => !['payloadType', 'payload', 'signatures'].includes(k));
  if (extra.length) throw new EnvelopeError(`unknown envelope member ${JSON.stringify(extra[0])}`);
  if (obj.payloadType !== PAYLOAD_TYPE) throw new EnvelopeError(`payloadType must be ${PAYLOAD_TYPE}`);
  const payload = base64(obj.payload, 'payload');
  const sigs = obj.signatures;
  if (!Array.isArray(sigs) || sigs.length > MAX_SIGNATURES) throw new EnvelopeError(`signatures must be an array of at most ${MAX_SIGNATURES}`);
  const signatures = sigs.map((s: unknown, i): Signature => {
    const o = s as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || Array.isArray(o) || Object.keys(o).some((k) => k !== 'keyid' && k !== 'sig')) {
      throw new EnvelopeError(`signatures[${i}] must be {"keyid", "sig"}`);
    }
    if (typeof o.keyid !== 'string' || !/^[0-9a-f]{64}$/.test(o.keyid)) throw new EnvelopeError(`signatures[${i}].keyid must be 64 lowercase hex digits`);
    return { keyid: o.keyid, sig: base64(o.sig, `signatures[${i}].sig`) };
  });
  return { payload, signatures };
}

export function serializeEnvelope(env: Envelope): string {
  const signatures = env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig.toString('base64') }));
  return JSON.stringify({ payloadType: PAYLOAD_TYPE, payload: env.payload.toString('base64'), signatures }, null, 2) + '\n';
}

function base64(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || v.length === 0 || !BASE64.test(v)) throw new EnvelopeError(`${what} must be standard base64`);
  return Buffer.from(v, 'base64');
}
