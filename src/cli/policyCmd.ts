import path from 'node:path';
import { Command } from 'commander';
import { policyVars } from '../broker.js';
import { formatProblem, loadPolicyDir, PolicyError } from '../policy/load.js';
import { configFrom, EXIT, reportConfigError } from './context.js';

export function policyCommand(): Command {
  const policy = new Command('policy').description('work with policy files');
  policy
    .command('check')
    .description('validate a policy directory; prints every problem as file:line:col path: message')
    .argument('[dir]', 'policy directory (default: policyDir from the config)')
    .action((dir: string | undefined, _o: unknown, cmd: Command) => {
      let config;
      try {
        // A directory given on the command line is relative to where the command runs.
        config = configFrom(cmd, dir ? { policyDir: path.resolve(dir) } : {});
      } catch (e) {
        reportConfigError(e);
      }
      try {
        const p = loadPolicyDir(config.policyDir, { vars: policyVars(config) });
        process.stdout.write(
          `policy OK: ${p.sources.length} file(s), ${p.nodeCAs.size} node CA(s), ${p.zones.length} zone(s), ` +
            `${p.publishers.size} publisher(s), ${p.software.length} software entr${p.software.length === 1 ? 'y' : 'ies'}\n`,
        );
      } catch (e) {
        if (!(e instanceof PolicyError)) throw e;
        for (const p of e.problems) process.stderr.write(formatProblem(p) + '\n');
        process.stderr.write(`${e.problems.length} problem(s)\n`);
        process.exitCode = EXIT.invalid;
      }
    });
  return policy;
}
