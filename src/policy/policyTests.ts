/**
 * Policy tests (`keyanchor policy test DIR`): YAML cases kept beside the policy, in DIR/tests/,
 * each a described request and the decision expected for it — allowed (optionally with the exact
 * keys, software entries and zones) or denied with a code. A request says which publishers
 * signed the binary and image (`signedBy`) instead of carrying signatures: these tests are about
 * what the policy decides, the signature checks have their own.
 *
 * The node CA and publishers a case names must exist in the policy, so that a typo cannot make a
 * case pass for the wrong reason.
 */
import path from 'node:path';
import { z } from 'zod';
import { ImageDigest, Sha256Hex } from '../protocol.js';
import { formatPath } from '../yamlSource.js';
import { evaluate, type Claims, type Decision } from './evaluate.js';
import { displayPath, POLICY_LIMITS, readRegularFile, ReadRefusal } from './files.js';
import { parseSchemaFile } from './policyText.js';
import { fileProblem, type PolicyProblem } from './problems.js';
import { KeyGrantRef, PolicyName } from './schema.js';
import type { Policy } from './types.js';

const SignedBy = z.array(PolicyName).default([]).describe('publishers whose signature is taken as verified');

const Case = z.strictObject({
  name: z.string().min(1).max(200),
  request: z.strictObject({
    node: z.strictObject({
      nodeCA: PolicyName.optional().describe('the node CA the chain ends at'),
      subject: z.string().default('').describe('the node certificate subject DN, one RDN a line'),
      san: z.array(z.string().min(1)).default([]).describe('SAN URIs of the node certificate'),
    }),
    binary: z.strictObject({ sha256: Sha256Hex, signedBy: SignedBy }),
    image: z.strictObject({ digest: ImageDigest, signedBy: SignedBy }).optional(),
    keys: z.array(KeyGrantRef).min(1),
  }),
  expect: z.discriminatedUnion('allow', [
    z.strictObject({
      allow: z.literal(true),
      keys: z.array(KeyGrantRef).optional().describe('exactly the keys released, with @VERSION where one is pinned'),
      software: z.array(PolicyName).optional(),
      zones: z.array(PolicyName).optional(),
    }),
    z.strictObject({
      allow: z.literal(false),
      code: z.enum(['software_not_approved', 'key_not_granted']),
      software: z.array(PolicyName).optional(),
      zones: z.array(PolicyName).optional(),
    }),
  ]),
});
export const PolicyTestFileSchema = z.strictObject({ cases: z.array(Case).min(1) }).meta({ title: 'keyanchor policy tests', description: 'Cases for `keyanchor policy test`; see docs/policy.md.' });
type TestCase = z.infer<typeof Case>;

export const TESTS_DIR = 'tests';
export interface CaseResult {
  file: string;
  name: string;
  pass: boolean;
  detail?: string;
}

export function runPolicyTests(policy: Policy, policyDir: string, files: readonly string[]): { results: CaseResult[]; problems: PolicyProblem[] } {
  const results: CaseResult[] = [];
  const problems: PolicyProblem[] = [];
  for (const rel of files) {
    const file = path.join(policyDir, rel);
    const display = displayPath(file);
    let bytes: Buffer;
    try {
      bytes = readRegularFile(file, POLICY_LIMITS.maxFileBytes);
    } catch (e) {
      if (!(e instanceof ReadRefusal)) throw e;
      problems.push(fileProblem(display, '(file)', e.message));
      continue;
    }
    const parsed = parseSchemaFile(bytes, display, PolicyTestFileSchema);
    if ('problems' in parsed) {
      problems.push(...parsed.problems);
      continue;
    }
    parsed.data.cases.forEach((c, i) => {
      const unknown = unknownNames(policy, c);
      for (const [sub, message] of unknown) {
        const p = ['cases', i, 'request', ...sub];
        problems.push({ file: display, ...parsed.locate(p), path: formatPath(p), message });
      }
      if (unknown.length === 0) results.push(judge(display, c, evaluate(policy, claimsOf(c))));
    });
  }
  return { results, problems };
}

function unknownNames(policy: Policy, c: TestCase): Array<[PropertyKey[], string]> {
  const out: Array<[PropertyKey[], string]> = [];
  const { nodeCA } = c.request.node;
  if (nodeCA !== undefined && !policy.nodeCAs.has(nodeCA)) out.push([['node', 'nodeCA'], `unknown node CA "${nodeCA}"`]);
  for (const which of ['binary', 'image'] as const) {
    (c.request[which]?.signedBy ?? []).forEach((p, j) => policy.publishers.has(p) || out.push([[which, 'signedBy', j], `unknown publisher "${p}"`]));
  }
  return out;
}

const ref = (k: string) => {
  const [name, version] = k.split('@') as [string, string | undefined];
  return version === undefined ? { name } : { name, version: Number(version) };
};

function claimsOf(c: TestCase): Claims {
  const r = c.request;
  return {
    node: { nodeCA: r.node.nodeCA ?? '', subject: r.node.subject, sanUris: r.node.san, fingerprint: '' },
    binary: { sha256: r.binary.sha256, publishers: new Set(r.binary.signedBy) },
    ...(r.image ? { image: { digest: r.image.digest, publishers: new Set(r.image.signedBy) } } : {}),
    keys: r.keys.map(ref),
  };
}

const same = (a: readonly string[], b: readonly string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
const show = (d: Decision) =>
  d.allow ? `allow (keys ${d.keys.map((k) => (k.version !== undefined ? `${k.name}@${k.version}` : k.name)).join(', ')}; software ${d.software.join(', ')}; zones ${d.zones.join(', ') || '-'})` : `deny ${d.code} (${d.reason})`;

function judge(file: string, c: TestCase, d: Decision): CaseResult {
  const e = c.expect;
  const fail = (what: string): CaseResult => ({ file, name: c.name, pass: false, detail: `expected ${what}, got ${show(d)}` });
  if (e.allow !== d.allow) return fail(e.allow ? 'allow' : `deny ${e.code}`);
  if (!e.allow && !d.allow && e.code !== d.code) return fail(`deny ${e.code}`);
  if (e.allow && d.allow && e.keys && !same(e.keys, d.keys.map((k) => (k.version !== undefined ? `${k.name}@${k.version}` : k.name)))) return fail(`keys ${e.keys.join(', ')}`);
  if (e.software && !same(e.software, d.software)) return fail(`software ${e.software.join(', ')}`);
  if (e.zones && !same(e.zones, d.zones)) return fail(`zones ${e.zones.join(', ')}`);
  return { file, name: c.name, pass: true };
}
