/** The JSON parts of a compact serialization: base64url-decoded, then parsed strictly. */
import { b64u, fromB64u } from './base64url.js';
import { JoseError } from './errors.js';
import { isJsonObject, parseStrictJson, type JsonObject } from './json.js';

/** Decodes a base64url segment holding strict JSON (UTF-8, no duplicate members). */
export function jsonSegment(segment: string, what: string): unknown {
  const parsed = parseStrictJson(fromB64u(segment, what));
  if (!parsed.ok) {
    throw new JoseError('ERR_JOSE_INVALID', `${what} is ${parsed.why === 'duplicate member' ? `JSON with a duplicate member ${JSON.stringify(parsed.key)}` : parsed.why}`);
  }
  return parsed.value;
}

/**
 * A protected header: a JSON object without `crit`. No extension is understood here, so a header
 * that marks one critical is refused (RFC 7515 §4.1.11) rather than half-processed.
 */
export function protectedHeader(segment: string, what: string): JsonObject {
  const header = jsonSegment(segment, what);
  if (!isJsonObject(header)) throw new JoseError('ERR_JOSE_INVALID', `${what} is not a JSON object`);
  if (Object.hasOwn(header, 'crit')) throw new JoseError('ERR_JOSE_NOT_ALLOWED', `${what} has "crit"; no extension is supported`);
  return header;
}

/** The string member `name` of `header` if it is one of `allowed`, else a refusal. */
export function allowedMember<T extends string>(header: JsonObject, name: string, allowed: readonly T[], what: string): T {
  const value = header[name];
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new JoseError('ERR_JOSE_NOT_ALLOWED', `${what} ${name} ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  }
  return value as T;
}

export const encodeJsonSegment = (value: unknown): string => b64u(Buffer.from(JSON.stringify(value), 'utf8'));
