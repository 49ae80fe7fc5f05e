/** Other spellings of the same bytes, which a strict decoder must refuse. */
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Unpadded base64url with a bit set after the last byte (decoders drop it). Needs a length ≢ 0 mod 4. */
export function nonCanonicalB64u(s: string): string {
  return s.slice(0, -1) + B64URL[B64URL.indexOf(s[s.length - 1]!) | 1];
}

/**
 * Standard base64 decoding to the same bytes but not re-encoding to `s`: padded, a bit set after
 * the last byte; unpadded, one `=` too many. Both still match the wire schema's base64 pattern.
 */
export function nonCanonicalBase64(s: string): string {
  if (!s.endsWith('=')) return `${s}=`;
  const at = s.replace(/=+$/, '').length - 1;
  return s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) + 1) + s.slice(at + 1);
}
