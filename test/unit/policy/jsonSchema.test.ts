/** The committed JSON Schema is the one generated from the broker's own zod schema, and it validates like it where it can. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { policyJsonSchema, POLICY_SCHEMA_FILE } from '../../../src/policy/jsonSchema.js';

const committed = readFileSync(new URL(`../../../${POLICY_SCHEMA_FILE}`, import.meta.url), 'utf8');

describe(POLICY_SCHEMA_FILE, () => {
  it('is what `keyanchor policy schema` generates (regenerate it with that command)', () => {
    expect(committed).toBe(policyJsonSchema());
  });

  it('refuses unknown keys and names every section', () => {
    const s = JSON.parse(committed) as { additionalProperties: boolean; properties: Record<string, unknown> };
    expect(s.additionalProperties).toBe(false);
    expect(Object.keys(s.properties)).toEqual(['version', 'nodeCAs', 'zones', 'publishers', 'software', 'teams', 'limits', 'alarms', 'deniedNodes']);
  });

  it('carries the key-grant form as a pattern an editor can check', () => {
    const pattern = /"pattern": "(\^\[a-z0-9\]\[a-z0-9\._-\]\{0,63\}\\\\\/[^"]*@[^"]*)"/.exec(committed)?.[1];
    expect(pattern).toBeDefined();
    const re = new RegExp(JSON.parse(`"${pattern!}"`) as string);
    expect(['team/a', 'team/a@2'].map((s) => re.test(s))).toEqual([true, true]);
    expect(['Team/a', 'team/a@0', 'team'].map((s) => re.test(s))).toEqual([false, false, false]);
  });
});
