/**
 * The `keyanchor` command tree. Every command gets examples at the end of its help
 * (examples.ts), and after a usage error (an unknown flag, a missing argument) prints the error,
 * one usage line and where the full help is, instead of the whole help.
 */
import { Command } from 'commander';
import { brokerVersion } from '../version.js';
import { auditCommand } from './auditCmd.js';
import { configCommand } from './configCmd.js';
import { configFrom, SYSTEM_CONFIG } from './context.js';
import { demoCommand } from './demo.js';
import { EXAMPLES } from './examples.js';
import { hsmCommand } from './hsm.js';
import { keysCommand } from './keysCmd.js';
import { policyCommand } from './policyCmd.js';
import { serveCommand } from './serve.js';
import { storeCommand } from './storeCmd.js';
import { suspendCommand } from './suspendCmd.js';

export function buildProgram(): Command {
  const program = new Command('keyanchor')
    .description('workload-attestation key broker')
    .version(brokerVersion(), '-V, --version', 'print the version')
    .option('-c, --config <file>', `config file (YAML or JSON); else $KEYANCHOR_CONFIG, else ${SYSTEM_CONFIG} if it exists, else the embedded defaults`)
    .option('--broker <url>', 'run `keys` and `suspend` through this running broker\'s admin API (else $KEYANCHOR_ADDR; else on the local store)')
    .option('--token-file <file>', 'the bearer token for --broker (else $KEYANCHOR_TOKEN_FILE, or the token in $KEYANCHOR_TOKEN)')
    .option('--client-cert <file>', 'a client certificate (PEM) for --broker (else $KEYANCHOR_CLIENT_CERT); with --client-key')
    .option('--client-key <file>', 'its private key (PEM) (else $KEYANCHOR_CLIENT_KEY)')
    .option('--ca <file>', 'a CA (PEM) to trust for --broker besides the system ones (else $KEYANCHOR_CACERT)')
    // Global options go before the command (`keyanchor --config F keys list`), so that a command's
    // own options may reuse a global name: `policy sign --version 3` is the bundle's version.
    .enablePositionalOptions();
  program.addCommand(serveCommand());
  program.addCommand(configCommand());
  program.addCommand(policyCommand());
  program.addCommand(keysCommand());
  program.addCommand(hsmCommand(() => configFrom(program)));
  program.addCommand(auditCommand());
  program.addCommand(storeCommand());
  program.addCommand(suspendCommand());
  program.addCommand(demoCommand());
  finish(program, 'keyanchor');
  return program;
}

/** Every command path of `cmd`, e.g. `keyanchor keys create`. */
export function commandPaths(cmd: Command, path = cmd.name()): string[] {
  return [path, ...cmd.commands.flatMap((sub) => commandPaths(sub, `${path} ${sub.name()}`))];
}

function finish(cmd: Command, path: string): void {
  const examples = EXAMPLES[path];
  if (examples) cmd.addHelpText('after', `\nExamples:${examples}`);
  cmd.showHelpAfterError(`usage: ${path} ${cmd.usage()}\n(run \`${path} --help\` for the options and examples)`).exitOverride();
  for (const sub of cmd.commands) finish(sub, `${path} ${sub.name()}`);
}
