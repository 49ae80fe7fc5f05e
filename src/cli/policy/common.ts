/** What the `keyanchor policy …` subcommands share: the directory, the config's variables and root, printing problems. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { policyVars } from '../../broker.js';
import type { Config } from '../../config.js';
import { rootFromPems, trustRoot, type TrustRoot } from '../../policy/bundle/trustRoot.js';
import { formatProblem, type PolicyProblem } from '../../policy/problems.js';
import { configFrom, EXIT, fail, reportConfigError } from '../context.js';

export interface PolicyTarget {
  config: Config;
  dir: string;
  vars: Record<string, string>;
}

/** The policy directory: the argument (relative to the working directory) or the config's policyDir. */
export function policyTarget(cmd: Command, dir: string | undefined): PolicyTarget {
  let config: Config;
  try {
    config = configFrom(cmd, dir ? { policyDir: path.resolve(dir) } : {}, { announce: false });
  } catch (e) {
    reportConfigError(e);
  }
  return { config, dir: config.policyDir, vars: policyVars(config) };
}

export const collect = (v: string, acc: string[] = []) => [...acc, v];

/** The trust root: --root-key/--threshold when given, else the config's policy.root, else none. */
export function rootFrom(o: { rootKey?: string[]; threshold?: number }, config: Config): TrustRoot | undefined {
  const files = o.rootKey?.length ? o.rootKey.map((f) => path.resolve(f)) : config.policy.root?.keys;
  if (!files) return undefined;
  const threshold = o.rootKey?.length ? (o.threshold ?? 1) : config.policy.root!.threshold;
  try {
    return trustRoot(rootFromPems(files.map((f) => readFileSync(f)), threshold));
  } catch (e) {
    fail(`trust root: ${(e as Error).message}`, EXIT.invalid);
  }
}

export function printProblems(problems: readonly PolicyProblem[]): void {
  for (const p of problems) process.stderr.write(formatProblem(p) + '\n');
  process.stderr.write(`${problems.length} problem(s)\n`);
  process.exitCode = EXIT.invalid;
}
