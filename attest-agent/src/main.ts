/** Entry point of the `attest-agent` executable (bin/attest-agent.js imports the compiled file). */
import { runCli } from './cli.js';

process.exitCode = await runCli(process.argv);
