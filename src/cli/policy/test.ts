/**
 * `keyanchor policy test [DIR]`: runs the cases in DIR/tests/*.yaml against the policy of DIR.
 * Exit 0 when every case passes, 1 when one fails, 3 when the policy or a test file is invalid.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { hydrate } from '../../policy/hydrate.js';
import { loadPolicy } from '../../policy/loadPolicy.js';
import { runPolicyTests, TESTS_DIR } from '../../policy/policyTests.js';
import { EXIT } from '../context.js';
import { policyTarget, printProblems } from './common.js';

export function testCommand(): Command {
  return new Command('test')
    .description(`run the policy tests in DIR/${TESTS_DIR}/*.yaml: exit 0 if all pass, 1 if any fails, 3 if the policy or a test file is invalid`)
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .action((dir: string | undefined, _o: unknown, cmd: Command) => {
      const t = policyTarget(cmd, dir);
      const r = loadPolicy({ dir: t.dir, vars: t.vars, now: Date.now() });
      if (!r.ok) return printProblems(r.problems);
      let files: string[] = [];
      try {
        files = readdirSync(path.join(t.dir, TESTS_DIR)).filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.')).sort().map((n) => `${TESTS_DIR}/${n}`);
      } catch {
        // no tests directory: no cases
      }
      if (files.length === 0) {
        process.stderr.write(`no policy tests: ${path.join(t.dir, TESTS_DIR)}/*.yaml is empty\n`);
        process.exitCode = EXIT.failure;
        return;
      }
      const { results, problems } = runPolicyTests(hydrate(r.compiled), t.dir, files);
      if (problems.length) return printProblems(problems);
      for (const c of results) process.stdout.write(c.pass ? `ok    ${c.file}: ${c.name}\n` : `FAIL  ${c.file}: ${c.name}: ${c.detail}\n`);
      const failed = results.filter((c) => !c.pass).length;
      process.stdout.write(`${results.length - failed} passed, ${failed} failed\n`);
      if (failed) process.exitCode = EXIT.failure;
    });
}
