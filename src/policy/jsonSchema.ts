/**
 * The JSON Schema of a policy file, generated from the zod schema the broker itself uses, for
 * editors (`# yaml-language-server: $schema=…`). Refinements that JSON Schema cannot express
 * (exactly one of `file`/`pem`, cross-references between sections) are checked by the broker and
 * `keyanchor policy check` only. The same for policy test files. The committed copies (schema/)
 * are kept equal to these by a test.
 */
import { z } from 'zod';
import { PolicyTestFileSchema } from './policyTests.js';
import { PolicyFileSchema } from './schema.js';

/** The committed schemas, by what they describe. */
export const SCHEMAS = {
  policy: { file: 'schema/policy.schema.json', schema: PolicyFileSchema },
  tests: { file: 'schema/policy-tests.schema.json', schema: PolicyTestFileSchema },
} as const;
export const POLICY_SCHEMA_FILE = SCHEMAS.policy.file;

export function jsonSchema(which: keyof typeof SCHEMAS): string {
  return JSON.stringify(z.toJSONSchema(SCHEMAS[which].schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }), null, 2) + '\n';
}

export const policyJsonSchema = (): string => jsonSchema('policy');
