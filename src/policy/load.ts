/**
 * Loads a policy directory in one go, for the CLI and tests: read the files (files.ts), compile
 * and check them (compile.ts), build the Policy (hydrate.ts). A policy with any problem is not
 * loaded at all; every problem comes back in one PolicyError. The running broker uses the same
 * steps through its policy runtime, off the request path.
 */
import path from 'node:path';
import { compilePolicy, type CompileOptions } from './compile.js';
import { readPolicyTree } from './files.js';
import { hydrate } from './hydrate.js';
import { PolicyError } from './problems.js';
import type { Policy } from './types.js';

export { formatProblem, PolicyError, type PolicyProblem } from './problems.js';

export type LoadOptions = CompileOptions;

export function loadPolicyDir(dir: string, opts: LoadOptions = {}): Policy {
  const tree = readPolicyTree(dir);
  const { policy, problems } = compilePolicy(tree, opts);
  const all = [...tree.problems, ...problems];
  if (all.length || !policy) throw new PolicyError(all);
  return hydrate(policy);
}

/** A policy from texts given in memory, as if they were files of one directory. */
export function buildPolicy(files: Array<{ file: string; text: string }>, opts: LoadOptions = {}): Policy {
  const dir = path.dirname(path.resolve(files[0]?.file ?? '.'));
  const tree = { dir, files: new Map(files.map((f) => [path.relative(dir, path.resolve(f.file)).split(path.sep).join('/'), Buffer.from(f.text)])) };
  const { policy, problems } = compilePolicy(tree, opts);
  if (problems.length || !policy) throw new PolicyError(problems);
  return hydrate(policy);
}
