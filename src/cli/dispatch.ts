/**
 * Runs a command that works both ways: through a running broker's admin API when `--broker` (or
 * KEYANCHOR_ADDR) is set, else on the local store. Either way it prints the same data (`-o json`
 * or text), and a refusal is one line on stderr with its code and reason, no stack: exit 1, or 2
 * for a usage problem (a bad remote option, a command that runs on the broker host only).
 */
import type { Command } from 'commander';
import { BrokerError } from '../errors.js';
import { EXIT, fail } from './context.js';
import { emit } from './output.js';
import { remoteFrom, RemoteError, RemoteUsageError, type RemoteOptions } from './remote.js';

export interface Either<T> {
  /** Through the admin API; undefined: this command runs on the broker host only. */
  remote: ((r: RemoteOptions) => Promise<T>) | undefined;
  /** On the local store (opening and closing it); undefined data prints nothing. */
  local: () => Promise<T | undefined>;
}

export async function runEither<T>(cmd: Command, how: Either<T>, text: (data: T) => string): Promise<void> {
  let r: RemoteOptions | undefined;
  try {
    r = remoteFrom(cmd);
    if (r && !how.remote) throw new RemoteUsageError(`${cmd.parent?.name()} ${cmd.name()} works on the broker host only (it reads the store directly): run it there without --broker`);
    if (r) process.stderr.write(`keyanchor: using the broker at ${r.url.origin}\n`);
    const data = r ? await how.remote!(r) : await how.local();
    if (data !== undefined) emit(cmd, data, text);
  } catch (e) {
    if (e instanceof RemoteUsageError) fail(e.message, EXIT.usage);
    if (e instanceof RemoteError) fail(`${e.code}: ${e.message}`, EXIT.failure);
    if (e instanceof BrokerError) fail(`${e.code}: ${e.reason}`, EXIT.failure);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && e instanceof Error) fail(`${code}: ${e.message}`, EXIT.failure);
    throw e;
  }
}
