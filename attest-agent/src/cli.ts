/**
 * The `attest-agent` command line. runCli() never calls process.exit: it returns the status to
 * exit with, and prints one line on stderr for any failure (see exitCodes.ts).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { runExec, type ExecFlags } from './commands/exec.js';
import { runFetch, type FetchFlags } from './commands/fetch.js';
import { runMeasure, type MeasureFlags } from './commands/measure.js';
import { addAttestationOptions } from './commands/options.js';
import { formatAgentError, toAgentError } from './errors.js';
import { exitCodeFor, formatExitCodeTable } from './exitCodes.js';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const defaultIo: CliIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

const EXEC_KEYS = 'key to request and deliver: NAME[@VERSION]=ENVVAR (base64 in the env var) or NAME[@VERSION]:file=PATH (raw bytes, tmpfs only, 0400, removed at exit); repeatable';
const FETCH_KEYS = 'key to request: NAME[@VERSION]; repeatable';
const EXIT_HELP = 'Exit status: see `attest-agent exit-codes` (1 usage, 2 local config, 3-9 local checks, 10-34 and 50-60 broker problem codes (50 rate_limited, 51 suspended), 40-47 transport/runtime/isolation).';
const EXEC_HELP = `
The program runs under --user (and --group; supplementary groups are dropped), which must not be
able to read --node-key: the agent checks the key file and every directory above it, and refuses
(exit 47) otherwise, or when no --user is given, unless --allow-shared-uid. Key files are owned by
that user (mode 0400); env keys are only in the program's environment.
The program is read once, hashed and copied into a private directory under --work-dir; the copy
is what runs (argv[0] is the original path), so the executed bytes are the attested bytes. Signals
SIGINT/SIGTERM/SIGHUP are forwarded; key files and the copy are removed when the program exits.
The agent exits with the program's status (128+N if it was killed by signal N).
${EXIT_HELP}

Example (as root, the node key readable by root only):
  attest-agent exec --broker https://broker:8443 --ca ca.pem --node-cert node.pem --node-key /etc/keyanchor-agent/node.key \
    --user billing --key billing/db=DB_KEY --key billing/tls:file=/dev/shm/tls.key -- /usr/local/bin/billing --port 8080`;
const FETCH_HELP = `
Output: one JSON object mapping each key name to its raw key bytes in standard base64, e.g.
  {"billing/db":"q83vASNFZ4mrze8BI0VniQ=="}
--out creates the file with mode 0400 (O_EXCL: an existing file is never overwritten) and only
on a tmpfs such as /dev/shm; --stdout prints it for a pipe.
${EXIT_HELP}

Example:
  attest-agent fetch --broker https://broker:8443 --ca ca.pem --node-cert node.pem --node-key node.key \
    --program /usr/local/bin/billing --key billing/db --out /dev/shm/billing-keys.json`;

/** The version in attest-agent's package.json (beside src/ and dist/ alike, so one path serves both). */
export function agentVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function buildProgram(io: CliIo, setStatus: (n: number) => void): Command {
  const root = new Command('attest-agent')
    .description('Measure a workload, attest it to a keyanchor broker, and hand it the keys it is granted.')
    .version(agentVersion(), '-V, --version', 'print the version')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  addAttestationOptions(root.command('exec'), EXEC_KEYS)
    .description('measure PROGRAM into a private copy, attest, deliver keys, run it; exits with its status')
    .option('--work-dir <dir>', 'where the private copy of the program is made (default $XDG_RUNTIME_DIR or the temp dir)')
    .option('--user <user>', 'run the program as this user (name or uid); the agent must be root or hold CAP_SETUID/CAP_SETGID')
    .option('--group <group>', "with --user: run as this group (name or gid) instead of the user's primary group")
    .option('--allow-shared-uid', 'start the program even if its user could read the node key (development only)')
    .usage('[options] -- <program> [args...]')
    .addHelpText('after', EXEC_HELP)
    .argument('<program>', 'program to measure and run (after --)')
    .argument('[args...]', 'its arguments')
    .passThroughOptions()
    .exitOverride()
    .action(async (program: string, args: string[], flags: ExecFlags) => setStatus(await runExec(program, args, flags)));

  addAttestationOptions(root.command('fetch'), FETCH_KEYS)
    .description('attest for --program without running it and output the keys as JSON {"<name>": "<base64 key>"}')
    .requiredOption('--program <path>', 'the program binary to measure (the workload the keys are for)')
    .option('--out <file>', 'write the JSON to a new file (mode 0400, never overwritten, must be on a tmpfs)')
    .option('--stdout', 'write the JSON to stdout')
    .addHelpText('after', FETCH_HELP)
    .exitOverride()
    .action(async (flags: FetchFlags) => setStatus(await runFetch(flags, io.out)));

  root.command('measure')
    .description('print the sha256 of PATH (sha256sum format) and, with --oci-layout, the image digest')
    .argument('<path>', 'file to measure')
    .option('--oci-layout <dir[:tag]>', 'also print the verified manifest digest of this OCI layout')
    .option('--json', 'print one JSON object instead')
    .exitOverride()
    .action(async (path: string, flags: MeasureFlags) => setStatus(await runMeasure(path, flags, io.out)));

  root.command('exit-codes')
    .description('print the exit status of every error code')
    .exitOverride()
    .action(() => { io.out(formatExitCodeTable()); setStatus(0); });
  return root;
}

export async function runCli(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  let status = 0;
  const program = buildProgram(io, (n) => { status = n; });
  try {
    await program.parseAsync([...argv], { from: 'node' });
    return status;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : exitCodeFor('usage');
    const agentError = toAgentError(err);
    io.err(`${formatAgentError(agentError)}\n`);
    return exitCodeFor(agentError.code);
  }
}
