import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { BrokerError } from '../errors.js';
import { writeFileExclusive } from '../fsAtomic.js';

export const KEK_FILE = 'kek.bin';

/**
 * Loads the software KEK from the state directory, creating it from the CSPRNG on first start.
 * Refuses a KEK file that others can read or that has the wrong size.
 */
export function loadOrCreateSoftwareKek(stateDir: string, opts: { create: boolean }): Buffer {
  const file = path.join(stateDir, KEK_FILE);
  if (opts.create) {
    const fresh = randomBytes(32);
    writeFileExclusive(file, fresh, 0o600);
    fresh.fill(0);
  }
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new BrokerError('custody_unavailable', `software KEK ${file} is missing`, { cause: e });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new BrokerError('custody_unavailable', `software KEK ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  const kek = readFileSync(file);
  if (kek.length !== 32) throw new BrokerError('custody_unavailable', `software KEK ${file} is not 32 bytes`);
  return kek;
}
