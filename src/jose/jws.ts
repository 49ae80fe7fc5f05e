/**
 * Compact JWS (RFC 7515 §7.1) for the algorithms in JWS_SPECS. Parsing and verifying are two
 * steps so that a caller can check the header and payload (and spend a nonce) before paying for
 * the signature; `compactVerify` does both.
 */
import type { KeyObject } from 'node:crypto';
import { b64u, fromB64u } from './base64url.js';
import { JoseError } from './errors.js';
import type { JsonObject } from './json.js';
import { allowedMember, encodeJsonSegment, protectedHeader } from './segments.js';
import { checkKeyFits, checkSignature, JWS_SPECS, makeSignature, type JwsAlg } from './signatures.js';

export interface ParsedJws {
  readonly header: JsonObject;
  readonly alg: JwsAlg;
  readonly payload: Buffer;
  /** ASCII(BASE64URL(header) ‖ '.' ‖ BASE64URL(payload)): what the signature covers. */
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

/** Splits and decodes a compact JWS; `alg` must be one of `algorithms`. Verifies nothing. */
export function parseCompactJws(compact: string, algorithms: readonly JwsAlg[]): ParsedJws {
  const parts = compact.split('.');
  if (parts.length !== 3) throw new JoseError('ERR_JOSE_INVALID', 'not a compact JWS (three segments)');
  const [h, p, s] = parts as [string, string, string];
  const header = protectedHeader(h, 'JWS protected header');
  const alg = allowedMember(header, 'alg', algorithms, 'JWS');
  const signature = fromB64u(s, 'JWS signature');
  if (signature.length === 0) throw new JoseError('ERR_JOSE_INVALID', 'JWS signature is empty');
  return { header, alg, payload: fromB64u(p, 'JWS payload'), signingInput: Buffer.from(compact.slice(0, h.length + 1 + p.length), 'latin1'), signature };
}

/** Throws unless the signature verifies under `key`, which must fit the header's alg. */
export function verifyParsedJws(jws: ParsedJws, key: KeyObject): void {
  const spec = JWS_SPECS[jws.alg];
  checkKeyFits(spec, key, jws.alg);
  if (!checkSignature(spec, key, jws.signingInput, jws.signature)) {
    throw new JoseError('ERR_JWS_SIGNATURE_INVALID', `the ${jws.alg} signature does not verify`);
  }
}

export function compactVerify(compact: string, key: KeyObject, options: { algorithms: readonly JwsAlg[] }): ParsedJws {
  const jws = parseCompactJws(compact, options.algorithms);
  verifyParsedJws(jws, key);
  return jws;
}

/** Signs `payload` with `key` under the protected header (whose `alg` must fit the key). */
export function compactSign(header: { readonly alg: JwsAlg } & JsonObject, payload: Uint8Array, key: KeyObject): string {
  const spec = JWS_SPECS[header.alg];
  if (spec === undefined || header.crit !== undefined) throw new JoseError('ERR_JOSE_NOT_ALLOWED', `cannot sign with header alg ${String(header.alg)}`);
  checkKeyFits(spec, key, header.alg);
  const input = `${encodeJsonSegment(header)}.${b64u(payload)}`;
  return `${input}.${b64u(makeSignature(spec, key, Buffer.from(input, 'latin1')))}`;
}
