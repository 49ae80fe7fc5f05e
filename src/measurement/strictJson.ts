/**
 * Strict JSON for signed payloads: UTF-8 only, no BOM, an object at the top, and no object with
 * two keys that are equal under case folding. Go's encoding/json (which cosign uses) matches struct
 * fields case-insensitively and keeps the last duplicate, while JSON.parse is case-sensitive; a
 * payload whose meaning depends on the parser is refused rather than interpreted.
 */
import { isJsonObject, parseStrictJson, type JsonObject } from '../jose/json.js';
import { reject } from './verdict.js';

export type { JsonObject };

/** Parse `bytes` (at most `maxBytes`) as a JSON object; `what` names it in reasons. */
export function parseJsonObject(bytes: Uint8Array, maxBytes: number, what: string): JsonObject {
  if (bytes.length > maxBytes) reject(`${what} is ${bytes.length} bytes, at most ${maxBytes} allowed`);
  const parsed = parseStrictJson(bytes, foldKey);
  if (!parsed.ok) {
    reject(parsed.why === 'duplicate member' ? `${what} has duplicate keys (case-insensitively) ${JSON.stringify(parsed.key)}` : `${what} is not UTF-8 JSON`);
  }
  if (!isObject(parsed.value)) reject(`${what} is not a JSON object`);
  return parsed.value;
}

export const isObject = isJsonObject;

/** The value under the one key equal to `name` case-insensitively, or undefined if none. */
export function foldedField(obj: JsonObject, name: string): unknown {
  const wanted = foldKey(name);
  const keys = Object.keys(obj).filter((k) => foldKey(k) === wanted);
  if (keys.length > 1) reject(`several keys match ${JSON.stringify(name)} case-insensitively`);
  return keys.length === 1 ? obj[keys[0] as string] : undefined;
}

/**
 * Case folding per code point, close to Go's encoding/json: one-to-one mappings only, so `ſ`
 * folds to `s` and the Kelvin sign to `k`, while `ß` or the `ﬅ` ligature stay themselves.
 */
export function foldKey(key: string): string {
  let out = '';
  for (const ch of key) {
    const upper = ch.toUpperCase();
    const u = [...upper].length === 1 ? upper : ch;
    const lower = u.toLowerCase();
    out += [...lower].length === 1 ? lower : u;
  }
  return out;
}
