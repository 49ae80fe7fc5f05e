/** Reading the cosign simple-signing payload: strict, tolerant of extra fields, no parser games. */
import { describe, expect, it } from 'vitest';
import { payloadImageDigest } from '../../../src/measurement/cosignPayload.js';
import { foldKey } from '../../../src/measurement/strictJson.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const OTHER = `sha256:${'cd'.repeat(32)}`;
const TYPE = 'cosign container image signature';

const payload = (text: string) => Buffer.from(text, 'utf8');
const standard = (digest = DIGEST) =>
  `{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":{"docker-manifest-digest":"${digest}"},"type":"${TYPE}"},"optional":null}`;
const read = (text: string | Uint8Array): string => {
  try {
    return payloadImageDigest(typeof text === 'string' ? payload(text) : text);
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
};

describe('payloadImageDigest', () => {
  it('reads the digest from the payload cosign generates', () => {
    expect(read(standard())).toBe(DIGEST);
  });

  it('tolerates extra fields and annotations, and lowercases the digest', () => {
    const text = `{"critical":{"identity":{"docker-reference":"r/app"},"image":{"docker-manifest-digest":"${DIGEST.toUpperCase()}","extra":1},"type":"${TYPE}","x":[1,{"y":"}"}]},"optional":{"git-sha":"abc","note":"a \\"quoted\\" value, with {braces}"}}`;
    expect(read(text)).toBe(DIGEST);
  });

  it('matches keys and the type case-insensitively', () => {
    const text = `{"Critical":{"IMAGE":{"Docker-Manifest-Digest":"${DIGEST}"},"Type":"Cosign Container Image Signature"}}`;
    expect(read(text)).toBe(DIGEST);
  });

  it('decodes escaped keys before matching them', () => {
    expect(read(standard().replace('"docker-manifest-digest"', '"\\u0044ocker-manifest-digest"'))).toBe(DIGEST);
  });

  it('refuses keys that collide case-insensitively, at any level', () => {
    const both = `{"critical":{"image":{"docker-manifest-digest":"${DIGEST}","Docker-Manifest-Digest":"${OTHER}"},"type":"${TYPE}"}}`;
    expect(read(both)).toMatch(/duplicate keys/);
    expect(read(`{"critical":{"image":{"docker-manifest-digest":"${DIGEST}"},"type":"${TYPE}"},"CRITICAL":{}}`)).toMatch(/duplicate keys/);
    expect(read(standard().replace('"optional":null', '"optional":{"a":1,"A":2}'))).toMatch(/duplicate keys/);
  });

  it('refuses exact duplicate keys, which JSON.parse would silently merge', () => {
    const text = `{"critical":{"image":{"docker-manifest-digest":"${OTHER}","docker-manifest-digest":"${DIGEST}"},"type":"${TYPE}"}}`;
    expect(read(text)).toMatch(/duplicate keys/);
  });

  it('refuses keys that only Unicode folding makes equal (ſ is s, K is k, to Go)', () => {
    const longS = `{"critical":{"image":{"docker-manifest-digest":"${DIGEST}","docker-manifeſt-digeſt":"${OTHER}"},"type":"${TYPE}"}}`;
    expect(read(longS)).toMatch(/duplicate keys/);
    expect(foldKey('K')).toBe(foldKey('k'));
    expect(foldKey('ß')).not.toBe(foldKey('ss'));
  });

  it('refuses a digest that does not name a sha256 manifest', () => {
    expect(read(standard('sha512:' + 'ab'.repeat(64)))).toMatch(/not sha256:<64 hex>/);
    expect(read(standard('sha256:abc'))).toMatch(/not sha256:<64 hex>/);
    expect(read(`{"critical":{"image":{"docker-manifest-digest":7},"type":"${TYPE}"}}`)).toMatch(/not sha256:<64 hex>/);
    expect(read(`{"critical":{"image":{},"type":"${TYPE}"}}`)).toMatch(/not sha256:<64 hex>/);
  });

  it('refuses the wrong type, or none', () => {
    expect(read(standard().replace(TYPE, 'atomic container signature'))).toMatch(/critical.type/);
    expect(read(`{"critical":{"image":{"docker-manifest-digest":"${DIGEST}"}}}`)).toMatch(/critical.type/);
  });

  it('refuses a payload that is not a JSON object', () => {
    expect(read('not json')).toMatch(/not UTF-8 JSON/);
    expect(read(`[${standard()}]`)).toMatch(/not a JSON object/);
    expect(read('null')).toMatch(/not a JSON object/);
    expect(read(`{"critical":[]}`)).toMatch(/no object "critical"/);
    expect(read(`{"critical":{"image":"x","type":"${TYPE}"}}`)).toMatch(/no object "image"/);
  });

  it('refuses invalid UTF-8, a byte-order mark, and trailing data', () => {
    expect(read(Buffer.concat([payload(standard().slice(0, -1)), Buffer.of(0xff), payload('}')]))).toMatch(/not UTF-8 JSON/);
    expect(read(Buffer.concat([Buffer.of(0xef, 0xbb, 0xbf), payload(standard())]))).toMatch(/not UTF-8 JSON/);
    expect(read(`${standard()}{}`)).toMatch(/not UTF-8 JSON/);
  });

  it('refuses payloads over 16 KiB', () => {
    const padded = standard().replace('"optional":null', `"optional":{"pad":"${'x'.repeat(16 * 1024)}"}`);
    expect(read(padded)).toMatch(/at most 16384 allowed/);
  });
});
