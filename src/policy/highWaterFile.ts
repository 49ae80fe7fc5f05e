/**
 * The policy high-water mark in a small JSON file in the state directory, written atomically
 * (temp file, fsync, rename, fsync of the directory, off the event loop). Compare-and-set runs under the kernel file lock the keystore uses
 * (an abstract Unix socket named after the file), so brokers and CLIs sharing the state directory
 * on one host serialise; within one process a promise chain serialises first. A mark file that
 * cannot be read or parsed fails closed: nothing is accepted until an operator looks at it (a
 * silently reset mark would reopen the rollback window).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { withFileLock } from '../keys/lockFile.js';
import { checkMark, decideAdvance, type AdvanceResult, type PolicyHighWater, type PolicyMark } from './highWater.js';

export const HIGH_WATER_FILE = 'policy-highwater.json';

const MarkFile = z.strictObject({
  version: z.number().int().min(1),
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  root: z.string().max(65_536).optional(),
});

export class HighWaterFileError extends Error {}

export class FileHighWater implements PolicyHighWater {
  readonly file: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(stateDir: string) {
    this.file = path.join(stateDir, HIGH_WATER_FILE);
  }

  async get(): Promise<PolicyMark | undefined> {
    return this.read();
  }

  async advance(mark: PolicyMark): Promise<AdvanceResult> {
    checkMark(mark);
    const run = this.chain.then(() =>
      withFileLock(this.file, async () => {
        const decision = decideAdvance(this.read(), mark);
        if (decision !== 'write') return decision;
        const stored: PolicyMark = { version: mark.version, manifestSha256: mark.manifestSha256, ...(mark.root !== undefined ? { root: mark.root } : {}) };
        await writeAtomic(this.file, JSON.stringify(stored) + '\n');
        return 'ok' as const;
      }),
    );
    this.chain = run.catch(() => undefined);
    return run;
  }

  private read(): PolicyMark | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new HighWaterFileError(`cannot read the policy high-water mark ${this.file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    let parsed;
    try {
      parsed = MarkFile.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) throw new HighWaterFileError(`the policy high-water mark ${this.file} is corrupt; restore it from a backup (or, knowing the risk of a rollback, remove it)`);
    return parsed.data;
  }
}

/**
 * fsAtomic's temp-fsync-rename-fsync, with the fsyncs on libuv's thread pool: a reload records
 * the mark on the broker's event loop, which must not wait for the disk.
 */
async function writeAtomic(file: string, data: string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
