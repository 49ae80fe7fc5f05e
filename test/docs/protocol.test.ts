/** The JSON examples in docs/protocol.md parse against the wire schemas, and every code is documented. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AttestRequestSchema, AttestResponseSchema, ChallengeResponseSchema, EvidenceHeaderSchema,
  EvidencePayloadSchema, PROBLEM_CODES, PROBLEM_STATUS, ProblemSchema,
} from '../../src/protocol.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const schemas = {
  ChallengeResponse: ChallengeResponseSchema, EvidenceHeader: EvidenceHeaderSchema, EvidencePayload: EvidencePayloadSchema,
  AttestRequest: AttestRequestSchema, AttestResponse: AttestResponseSchema, Problem: ProblemSchema,
} as const;

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
});
