/**
 * A cross-process lock on a file (the keystore, the audit trail) that the kernel releases when its
 * holder dies: a Linux abstract-namespace Unix socket named after the file's real path. Binding
 * the name is atomic and exclusive, and a killed holder's socket vanishes with it, so there is no
 * lock file to leave behind and no stale lock to break (breaking stale pid-file locks cannot be
 * made race-free). The lock is per network namespace: the broker and the `keyanchor keys` CLI
 * must run in the same one (the same host or pod) to exclude each other.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export class LockTimeoutError extends Error {
  readonly code = 'lock_timeout';
}

/** The abstract socket name for a file: the same whichever path (or symlink) names it. */
function lockName(file: string): string {
  const dir = realpathSync(path.dirname(path.resolve(file)));
  return '\0keyanchor-lock:' + createHash('sha256').update(path.join(dir, path.basename(file))).digest('hex');
}

function tryBind(name: string): Promise<net.Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(undefined) : reject(e)));
    server.listen({ path: name, exclusive: true }, () => resolve(server));
  });
}

/** Runs `fn` while holding the lock for `file`; waits up to `timeoutMs` for another holder. */
export async function withFileLock<T>(file: string, fn: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const name = lockName(file);
  const deadline = Date.now() + timeoutMs;
  let held: net.Server | undefined;
  while (!(held = await tryBind(name))) {
    if (Date.now() > deadline) throw new LockTimeoutError(`lock on ${file} is held by another process`);
    await sleep(2 + Math.random() * 8);
  }
  try {
    return await fn();
  } finally {
    await new Promise<void>((r) => held!.close(() => r()));
  }
}
