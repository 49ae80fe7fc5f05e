#!/usr/bin/env node
import { Command } from 'commander';
import { auditCommand } from './auditCmd.js';
import { configFrom } from './context.js';
import { demoCommand } from './demo.js';
import { hsmCommand } from './hsm.js';
import { keysCommand } from './keysCmd.js';
import { policyCommand } from './policyCmd.js';
import { serveCommand } from './serve.js';
import { storeCommand } from './storeCmd.js';

const program = new Command('keyanchor')
  .description('workload-attestation key broker')
  .option('-c, --config <file>', 'config file (YAML or JSON); env KEYANCHOR_CONFIG')
  .showHelpAfterError();
program.addCommand(serveCommand());
program.addCommand(policyCommand());
program.addCommand(keysCommand());
program.addCommand(hsmCommand(() => configFrom(program)));
program.addCommand(auditCommand());
program.addCommand(storeCommand());
program.addCommand(demoCommand());
await program.parseAsync(process.argv);
