/** The YAML examples in docs/policy.md are valid policies, loaded as if they sat in policies/payments/ (whose certs/ they name). */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { compilePolicy } from '../../src/policy/compile.js';
import { readPolicyTree } from '../../src/policy/files.js';
import { hydrate } from '../../src/policy/hydrate.js';
import { formatProblem } from '../../src/policy/problems.js';

const doc = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
const paymentsDir = new URL('../../policies/payments/', import.meta.url).pathname;

describe('docs/policy.md', () => {
  const examples = [...doc.matchAll(/<!-- policy-example -->\n```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  it('has examples', () => expect(examples.length).toBeGreaterThan(0));
  examples.forEach((text, i) => {
    it(`example ${i + 1} loads`, () => {
      const tree = readPolicyTree(paymentsDir);
      // The example replaces the directory's own policy file.
      tree.files.delete('payments.yaml');
      tree.files.set(`doc-example-${i}.yaml`, Buffer.from(text));
      const { policy, problems } = compilePolicy(tree);
      expect(problems.map(formatProblem)).toEqual([]);
      const p = hydrate(policy!);
      expect(p.software.length).toBeGreaterThan(0);
      expect(p.teams.length).toBeGreaterThan(0);
    });
  });
});
