/**
 * Strict JSON for signed payloads: UTF-8 only, no BOM, an object at the top, and no object with
 * two keys that are equal under case folding. Go's encoding/json (which cosign uses) matches struct
 * fields case-insensitively and keeps the last duplicate, while JSON.parse is case-sensitive; a
 * payload whose meaning depends on the parser is refused rather than interpreted.
 */
import { reject } from './verdict.js';

export type JsonObject = { readonly [key: string]: unknown };

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parse `bytes` (at most `maxBytes`) as a JSON object; `what` names it in reasons. */
export function parseJsonObject(bytes: Uint8Array, maxBytes: number, what: string): JsonObject {
  if (bytes.length > maxBytes) reject(`${what} is ${bytes.length} bytes, at most ${maxBytes} allowed`);
  let text: string;
  let value: unknown;
  try {
    text = decoder.decode(bytes);
    value = JSON.parse(text);
  } catch {
    return reject(`${what} is not UTF-8 JSON`);
  }
  if (!isObject(value)) reject(`${what} is not a JSON object`);
  const duplicate = firstFoldedDuplicateKey(text);
  if (duplicate !== undefined) reject(`${what} has duplicate keys (case-insensitively) ${JSON.stringify(duplicate)}`);
  return value;
}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

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

/**
 * Walk already-validated JSON text and return the first key that repeats (after folding) within
 * one object. Strings are skipped by their escapes; keys are decoded with JSON.parse so that
 * `"\u0044ocker"` and `"Docker"` are the same key.
 */
function firstFoldedDuplicateKey(text: string): string | undefined {
  // One frame per open container: a key set for objects, null for arrays.
  const frames: { keys: Set<string> | null; expectKey: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = frames[frames.length - 1];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.keys && top.expectKey) {
        const key = foldKey(JSON.parse(text.slice(i, j + 1)) as string);
        if (top.keys.has(key)) return key;
        top.keys.add(key);
      }
      i = j;
    } else if (c === '{') frames.push({ keys: new Set(), expectKey: true });
    else if (c === '[') frames.push({ keys: null, expectKey: false });
    else if (c === '}' || c === ']') frames.pop();
    else if (c === ':' && top) top.expectKey = false;
    else if (c === ',' && top?.keys) top.expectKey = true;
  }
  return undefined;
}
