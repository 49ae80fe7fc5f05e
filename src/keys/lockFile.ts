import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync, constants } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A cross-process lock: a file created with O_EXCL holding the owner's pid. A lock whose owner
 * is dead is taken over. Held only for the few milliseconds of a keystore write.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (ownerIsDead(lockPath)) {
        try {
          unlinkSync(lockPath);
        } catch {
          /* another process took it over first */
        }
        continue;
      }
      if (Date.now() > deadline) throw new Error(`keystore lock ${lockPath} is held by another process`);
      await sleep(5 + Math.random() * 20);
    }
  }
  try {
    return await fn();
  } finally {
    unlinkSync(lockPath);
  }
}

function ownerIsDead(lockPath: string): boolean {
  let pid: number;
  try {
    const text = readFileSync(lockPath, 'utf8');
    // An empty file is a lock being taken right now, unless it has been empty for a while.
    if (text === '') return Date.now() - statSync(lockPath).mtimeMs > 5_000;
    pid = Number(text);
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
