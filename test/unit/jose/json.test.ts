/** parseStrictJson: the one strict JSON reader (JOSE segments, the attest body, JWTs, cosign payloads). */
import { describe, expect, it } from 'vitest';
import { firstDuplicateKey, parseStrictJson } from '../../../src/jose/json.js';
import { foldKey } from '../../../src/measurement/strictJson.js';

const parse = (s: string | Uint8Array, fold?: (k: string) => string) => parseStrictJson(typeof s === 'string' ? Buffer.from(s, 'utf8') : s, fold);

describe('parseStrictJson', () => {
  it('accepts ordinary JSON of any shape', () => {
    for (const s of ['{}', '[]', '1', '"x"', 'null', '{"a":[{"a":1},{"a":2}],"b":{"a":{"a":3}}}', '{"a":"}{\\"a\\":","b":"\\\\","c":"\\\\\\""}']) {
      expect(parse(s), s).toEqual({ ok: true, value: JSON.parse(s) });
    }
  });

  it('refuses a repeated member in any object, however deep or escaped', () => {
    expect(parse('{"a":1,"a":1}')).toEqual({ ok: false, why: 'duplicate member', key: 'a' });
    expect(parse('{"x":[{"k":1,"b":2,"k":3}]}')).toMatchObject({ ok: false, key: 'k' });
    expect(parse('{"alg":"ES256","\\u0061lg":"none"}')).toMatchObject({ ok: false, key: 'alg' });
    expect(parse('{"a\\"b":1,"a\\u0022b":2}')).toMatchObject({ ok: false, key: 'a"b' });
    expect(parse('{"s":"\\\\","s":"x"}')).toMatchObject({ ok: false, key: 's' });
    // A name that only looks like the other one inside a string value does not count.
    expect(parse('{"a":"\\"a\\":1","b":1}')).toMatchObject({ ok: true });
  });

  it('is case-sensitive unless given a fold', () => {
    expect(parse('{"Alg":1,"alg":2}')).toMatchObject({ ok: true });
    expect(parse('{"Alg":1,"alg":2}', foldKey)).toMatchObject({ ok: false, key: 'alg' });
  });

  it('refuses invalid UTF-8, a BOM and what JSON.parse refuses', () => {
    expect(parse(Buffer.from([0x22, 0xff, 0x22]))).toEqual({ ok: false, why: 'not UTF-8' });
    expect(parse(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]))).toEqual({ ok: false, why: 'not UTF-8' });
    expect(parse('\ufeff{}')).toEqual({ ok: false, why: 'not JSON' });
    expect(parse('{"a":1,}')).toEqual({ ok: false, why: 'not JSON' });
  });

  it('firstDuplicateKey walks a 64 KiB document', () => {
    const big = JSON.stringify({ x5c: Array.from({ length: 40 }, () => 'A'.repeat(1600)), n: { a: 1 } });
    expect(firstDuplicateKey(big)).toBeUndefined();
    expect(firstDuplicateKey(big.replace('"n":', '"x5c":'))).toBe('x5c');
  });
});
