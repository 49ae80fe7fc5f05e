/** The YAML examples in docs/policy.md are valid policies, loaded as if they sat in policies/. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildPolicy } from '../../src/policy/load.js';

const doc = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
const policiesDir = new URL('../../policies/', import.meta.url).pathname;

describe('docs/policy.md', () => {
  const examples = [...doc.matchAll(/<!-- policy-example -->\n```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  it('has examples', () => expect(examples.length).toBeGreaterThan(0));
  examples.forEach((text, i) => {
    it(`example ${i + 1} loads`, () => {
      const p = buildPolicy([{ file: path.join(policiesDir, `doc-example-${i}.yaml`), text }]);
      expect(p.software.length).toBeGreaterThan(0);
      expect(p.teams.length).toBeGreaterThan(0);
    });
  });
});
