/**
 * The JSON examples in docs/protocol.md parse against the wire schemas, every code is documented,
 * the image signature example verifies under the documented publisher key, and the released-key
 * example carries exactly the documented JWE header.
 */
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isOnP256, parseStrictJson } from '../../src/jose/index.js';
import { payloadImageDigest } from '../../src/measurement/cosignPayload.js';
import {
  AttestRequestSchema, AttestResponseSchema, ChallengeResponseSchema, EvidenceHeaderSchema,
  EvidencePayloadSchema, PROBLEM_CODES, PROBLEM_STATUS, ProblemSchema,
} from '../../src/protocol.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const schemas = {
  ChallengeResponse: ChallengeResponseSchema, EvidenceHeader: EvidenceHeaderSchema, EvidencePayload: EvidencePayloadSchema,
  AttestRequest: AttestRequestSchema, AttestResponse: AttestResponseSchema, Problem: ProblemSchema,
} as const;

/** The body of the fenced block after `<!-- name: id -->` (any indentation, any info string). */
function block(name: string, id: string): string {
  const m = new RegExp(`<!-- ${name}: ${id} -->\\n( *)\`\`\`\\w*\\n([\\s\\S]*?)\\n\\1\`\`\``).exec(doc);
  if (!m) throw new Error(`docs/protocol.md has no ${name} block ${id}`);
  return m[2]!.split('\n').map((l) => l.slice(m[1]!.length)).join('\n');
}

describe('docs/protocol.md', () => {
  const examples = [...doc.matchAll(/<!-- schema: (\w+) -->\n```json\n([\s\S]*?)```/g)];
  it('has an example for every wire type', () => {
    expect(new Set(examples.map((m) => m[1]))).toEqual(new Set(Object.keys(schemas)));
  });
  for (const [, name, json] of examples) {
    it(`the ${name} example is valid`, () => {
      const r = schemas[name as keyof typeof schemas].safeParse(JSON.parse(json!));
      expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
    });
  }
  it('lists every problem code with its status', () => {
    const table = doc.split('<!-- problem-table -->')[1]!;
    const rows = [...table.matchAll(/^\| `(\w+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(Object.fromEntries(rows)).toEqual(PROBLEM_STATUS);
    expect(rows).toHaveLength(PROBLEM_CODES.length);
  });

  it('the image signature in the evidence example is the documented payload, signed by the documented key, for the example digest', () => {
    const payload = EvidencePayloadSchema.parse(JSON.parse(block('schema', 'EvidencePayload')));
    const image = payload.workload.image!;
    expect(image.signatures).toHaveLength(1);
    const bytes = Buffer.from(image.signatures[0]!.payload, 'base64url');
    expect(bytes.toString('utf8')).toBe(block('example', 'image-payload'));
    const key = createPublicKey(block('example', 'image-publisher-key'));
    expect(verify('sha256', bytes, { key, dsaEncoding: 'der' }, Buffer.from(image.signatures[0]!.sig, 'base64url'))).toBe(true);
    expect(payloadImageDigest(bytes)).toBe(image.digest);
  });

  it('the released key example has exactly the documented protected header, in strict JSON', () => {
    const released = AttestResponseSchema.parse(JSON.parse(block('schema', 'AttestResponse'))).keys[0]!;
    const headerBytes = Buffer.from(released.jwe.split('.')[0]!, 'base64url');
    const strict = parseStrictJson(headerBytes);
    expect(strict.ok).toBe(true);
    expect(headerBytes.toString('utf8')).toBe(block('example', 'release-header'));
    const header = JSON.parse(block('example', 'release-header')) as { kid: string; epk: { x: string; y: string } };
    expect(Object.keys(header)).toEqual(['alg', 'enc', 'kid', 'epk']);
    expect(header).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: `${released.name}@${released.version}` });
    expect(isOnP256(Buffer.from(header.epk.x, 'base64url'), Buffer.from(header.epk.y, 'base64url'))).toBe(true);
    expect(released.jwe.split('.').map((p) => Buffer.from(p, 'base64url').length).slice(1)).toEqual([40, 12, 32, 16]);
  });
});
