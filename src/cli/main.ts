#!/usr/bin/env node
import { CommanderError } from 'commander';
import { EXIT } from './context.js';
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  if (!(e instanceof CommanderError)) throw e;
  process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage; // usage errors: 2
}
