import { Command, Option } from 'commander';
import { jsonSchema } from '../policy/jsonSchema.js';
import { checkCommand } from './policy/check.js';
import { explainCommand } from './policy/explain.js';
import { paeCommand, signCommand } from './policy/sign.js';
import { testCommand } from './policy/test.js';

export function policyCommand(): Command {
  const policy = new Command('policy').description('work with policy files: check, sign, explain, test');
  policy.addCommand(checkCommand());
  policy.addCommand(signCommand());
  policy.addCommand(paeCommand());
  policy.addCommand(explainCommand());
  policy.addCommand(testCommand());
  policy
    .command('schema')
    .description('print the JSON Schema of policy files (or of policy test files), generated from the broker\'s own schema')
    .addOption(new Option('--tests', 'the schema of policy test files'))
    .action((o: { tests?: boolean }) => void process.stdout.write(jsonSchema(o.tests ? 'tests' : 'policy')));
  return policy;
}
