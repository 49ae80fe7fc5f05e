/**
 * Hands released keys to the program: base64 in environment variables of the child, or raw
 * bytes in files on a tmpfs (created 0400 with O_EXCL, removed when the program exits). Keys are
 * never written anywhere else; a key file outside a tmpfs is refused, because a disk-backed file
 * can outlive the process in the filesystem, its journal, or a backup.
 */
import { closeSync, constants, fchownSync, openSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { AgentError } from './errors.js';
import type { KeySpec } from './keySpecs.js';

/** f_type of tmpfs in statfs(2) (TMPFS_MAGIC, linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;

export function isTmpfs(dir: string): boolean {
  return statfsSync(dir).type === TMPFS_MAGIC;
}

/** Refuses any path whose directory is not on a tmpfs. Run before attesting, to fail early. */
export function assertOnTmpfs(path: string): void {
  const dir = dirname(resolve(path));
  let ok: boolean;
  try {
    ok = isTmpfs(dir);
  } catch (err) {
    throw new AgentError('tmpfs_refused', `cannot check the filesystem of ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
  if (!ok) {
    throw new AgentError('tmpfs_refused', `${dir} is not on a tmpfs; key files may only be written to a tmpfs (e.g. /dev/shm or $XDG_RUNTIME_DIR)`);
  }
}

export function checkDestinations(specs: readonly KeySpec[]): void {
  for (const s of specs) if (s.destination.kind === 'file') assertOnTmpfs(s.destination.path);
}

/** Who a delivered key file belongs to: the program's user when it runs under `--user`. */
export interface FileOwner { uid: number; gid: number }

/** Writes `bytes` to a new file (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0400, owned by `owner` if given) on a tmpfs. */
export function writeKeyFile(path: string, bytes: Uint8Array, owner?: FileOwner): void {
  assertOnTmpfs(path);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o400);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new AgentError('delivery_failed', `cannot create ${path}: ${code}${code === 'EEXIST' ? ' (refusing to overwrite)' : ''}`, { cause: err });
  }
  try {
    if (owner) fchownSync(fd, owner.uid, owner.gid); // before any byte is written
    for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
  } catch (err) {
    closeSync(fd);
    removeFile(path);
    throw new AgentError('delivery_failed', `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
  closeSync(fd);
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

export interface Delivery {
  /** The child's environment: the agent's own plus key variables. */
  env: NodeJS.ProcessEnv;
  /** Key files written, to remove when the program exits. */
  files: string[];
  /** Removes the key files. Idempotent and synchronous (usable from signal and exit handlers). */
  cleanup(): void;
}

/**
 * Delivers every key to its destination. The key buffers are zeroed afterwards: the env copies
 * are JS strings (immutable, not erasable) and the files live on tmpfs until the program exits.
 */
export function deliverKeys(specs: readonly KeySpec[], keys: Map<string, Buffer>, baseEnv: NodeJS.ProcessEnv, owner?: FileOwner): Delivery {
  const env: NodeJS.ProcessEnv = { ...baseEnv };
  const files: string[] = [];
  const cleanup = () => { while (files.length > 0) removeFile(files.pop()!); };
  try {
    for (const spec of specs) {
      const key = keys.get(spec.name);
      if (!key) throw new AgentError('release_invalid', `key ${spec.name} was not released`);
      const d = spec.destination;
      if (d.kind === 'env') env[d.variable] = key.toString('base64');
      else if (d.kind === 'file') {
        writeKeyFile(d.path, key, owner);
        files.push(resolve(d.path));
      }
    }
  } catch (err) {
    cleanup();
    throw err;
  } finally {
    for (const k of keys.values()) k.fill(0);
  }
  return { env, files, cleanup };
}
