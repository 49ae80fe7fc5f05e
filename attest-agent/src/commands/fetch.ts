/**
 * `attest-agent fetch`: attest on behalf of a program (measured, not run) and hand the keys over
 * as one JSON object `{"<key name>": "<base64 key>", …}`, either on stdout or in a new file
 * (mode 0400, never overwritten, tmpfs only, like every key file the agent writes).
 */
import { attest } from '../attest.js';
import { writeKeyFile, assertOnTmpfs } from '../deliver.js';
import { AgentError } from '../errors.js';
import { parseKeySpecs } from '../keySpecs.js';
import { measureFile } from '../measure.js';
import { zeroKeys } from '../release.js';
import { resolveProgram } from '../workload.js';
import { keyRequests, startAttestation, workloadFromFlags, type AttestationFlags } from './options.js';

export interface FetchFlags extends AttestationFlags {
  program: string;
  out?: string;
  stdout?: boolean;
}

export async function runFetch(flags: FetchFlags, write: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  if ((flags.out === undefined) === !flags.stdout) throw new AgentError('usage', 'give exactly one of --out FILE or --stdout');
  const specs = parseKeySpecs(flags.key, false);
  const withDestination = specs.find((s) => s.destination.kind !== 'none');
  if (withDestination) throw new AgentError('usage', `fetch takes --key NAME[@VERSION]; ${withDestination.name} names a destination`);
  if (flags.out !== undefined) assertOnTmpfs(flags.out);

  const path = resolveProgram(flags.program);
  const { inputs, opening, measured: { sha256 } } = await startAttestation(flags, () => measureFile(path));
  let keys: Map<string, Buffer>;
  try {
    const workload = await workloadFromFlags({ path, sha256 }, flags);
    ({ keys } = await attest({ ...inputs, workload, keys: keyRequests(specs) }, opening));
  } finally {
    opening.close();
  }

  const body: Record<string, string> = Object.create(null);
  for (const [name, key] of keys) body[name] = key.toString('base64');
  zeroKeys(keys);
  const bytes = Buffer.from(`${JSON.stringify(body)}\n`, 'utf8');
  try {
    if (flags.out !== undefined) writeKeyFile(flags.out, bytes);
    else write(bytes.toString('utf8'));
  } finally {
    bytes.fill(0);
  }
  return 0;
}
