/**
 * The JSON Schema of a policy file, generated from the zod schema the broker itself uses, for
 * editors (`# yaml-language-server: $schema=…`). Refinements that JSON Schema cannot express
 * (exactly one of `file`/`pem`, cross-references between sections) are checked by the broker and
 * `keyanchor policy check` only. The committed copy (schema/policy.schema.json) is kept equal to
 * this by a test.
 */
import { z } from 'zod';
import { PolicyFileSchema } from './schema.js';

export const POLICY_SCHEMA_FILE = 'schema/policy.schema.json';

export function policyJsonSchema(): string {
  return JSON.stringify(z.toJSONSchema(PolicyFileSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }), null, 2) + '\n';
}
