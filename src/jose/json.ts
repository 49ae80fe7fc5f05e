/**
 * Strict JSON, the one parser for every security-relevant JSON document the broker and the agent
 * read (JOSE headers and payloads, the attest body, admin JWTs, cosign payloads): UTF-8 only (no
 * BOM, no invalid sequences), and no object with two members of the same name. JSON.parse keeps
 * the last of two equal members, so `{"alg":"none","alg":"ES256"}` means what one parser says and
 * not what another does; such a document is refused rather than interpreted (RFC 7515 §5.2,
 * RFC 8259 §4). `fold` widens "the same name", e.g. to Go's case-insensitive matching for cosign.
 */
export type JsonObject = { readonly [key: string]: unknown };

export type StrictJson =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly why: 'not UTF-8' | 'not JSON' | 'duplicate member'; readonly key?: string };

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BACKSLASH = 0x5c;
const same = (key: string): string => key;

export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses `bytes` as UTF-8 JSON whose objects have no duplicate member names (after `fold`). */
export function parseStrictJson(bytes: Uint8Array, fold: (key: string) => string = same): StrictJson {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { ok: false, why: 'not UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  const key = firstDuplicateKey(text, fold);
  return key === undefined ? { ok: true, value } : { ok: false, why: 'duplicate member', key };
}

/**
 * Walks JSON text that JSON.parse has already accepted and returns the first member name that
 * repeats (after `fold`) within one object. Strings are skipped to their closing quote; a name
 * with escapes is decoded by JSON.parse so that `"\u0061lg"` and `"alg"` are the same name.
 */
export function firstDuplicateKey(text: string, fold: (key: string) => string = same): string | undefined {
  // One frame per open container: the names seen so far for an object, null for an array.
  const frames: { names: Set<string> | null; expectName: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = frames[frames.length - 1];
    if (c === '"') {
      const end = closingQuote(text, i);
      if (top?.names && top.expectName) {
        const raw = text.slice(i + 1, end);
        const name = fold(raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw);
        if (top.names.has(name)) return name;
        top.names.add(name);
      }
      i = end;
    } else if (c === '{') frames.push({ names: new Set(), expectName: true });
    else if (c === '[') frames.push({ names: null, expectName: false });
    else if (c === '}' || c === ']') frames.pop();
    else if (c === ':' && top) top.expectName = false;
    else if (c === ',' && top?.names) top.expectName = true;
  }
  return undefined;
}

/** The index of the quote that closes the string opening at `start` (valid JSON: it exists). */
function closingQuote(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    let b = q - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    // An even number of backslashes before the quote: it is not escaped.
    if ((q - 1 - b) % 2 === 0) return q;
    from = q + 1;
  }
}
