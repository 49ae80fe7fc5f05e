/**
 * Measure-and-copy: the bytes the agent attests are the bytes it executes.
 *
 * Why not "hash the path, then exec the path"? Between the hash and the exec there is a window
 * (TOCTOU) in which anyone able to write the file, or to swap a directory or symlink on its path,
 * can replace the program; the broker would release keys for the measured binary while a
 * different one runs with them. Instead the agent opens the program exactly once and streams the
 * bytes from that one descriptor through SHA-256 *and* into a private copy, inside a fresh
 * directory created with mode 0700 (mkdtemp) under the work dir. The copy is made
 * read+execute only (0500) and its write descriptor closed (an open writer would make exec fail
 * with ETXTBSY). The agent then executes the copy; the original path is never reopened, and
 * nobody but the agent's own user can reach or change the copy. The copy and its directory are
 * deleted when the program exits.
 *
 * When the program runs under another user (`exec --user`), the directory and the copy are handed
 * to that user's group only: directory 0710 and copy 0550, both still owned by the agent, so the
 * program's user can execute the copy but neither it nor anyone else can change it.
 *
 * Limitation: programs that locate resources via /proc/self/exe see the copy's path (argv[0] is
 * still the original path). The copy uses space in the work dir (RAM when it is a tmpfs).
 */
import { createHash } from 'node:crypto';
import { constants, existsSync, rmSync } from 'node:fs';
import { chmod, chown, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { AgentError } from './errors.js';
import { measurementError, openRegularFile, pump } from './measure.js';

export interface PreparedProgram {
  /** The program path as measured (absolute); reported in evidence. */
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  /** The private, read+execute-only copy to execute. */
  readonly copyPath: string;
  /** Removes the copy and its directory. Safe to call more than once. */
  cleanup(): Promise<void>;
  cleanupSync(): void;
}

/** `--work-dir`, else $XDG_RUNTIME_DIR when it exists, else the OS temp dir. */
export function defaultWorkDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  return xdg && existsSync(xdg) ? xdg : tmpdir();
}

/** `runAsGid`: the group of the user the copy will run as, when that is not the agent's own. */
export async function prepareProgram(path: string, workDir = defaultWorkDir(), runAsGid?: number): Promise<PreparedProgram> {
  const src = await openRegularFile(path);
  let dir: string | undefined;
  let dst: FileHandle | undefined;
  try {
    dir = await mkdtemp(join(workDir, 'attest-agent-')).catch((err: NodeJS.ErrnoException) => {
      throw new AgentError('config', `cannot create a private directory in work dir ${workDir}: ${err.code ?? err.message}`, { cause: err });
    }); // created with mode 0700
    const copyPath = join(dir, basename(path) || 'program');
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    dst = await open(copyPath, flags, 0o700);
    const hash = createHash('sha256');
    const size = await pump(src, hash, dst);
    // No fsync: the copy is executed from the page cache right away and deleted afterwards;
    // durability buys nothing and a disk flush costs tens of milliseconds.
    if (runAsGid === undefined) await dst.chmod(0o500);
    else {
      await dst.chown(process.getuid!(), runAsGid);
      await dst.chmod(0o550);
      await chown(dir, process.getuid!(), runAsGid);
      await chmod(dir, 0o710);
    }
    await dst.close();
    dst = undefined;
    const owned = dir;
    return {
      path,
      sha256: hash.digest('hex'),
      size,
      copyPath,
      cleanup: () => rm(owned, { recursive: true, force: true }),
      cleanupSync: () => removeSync(owned),
    };
  } catch (err) {
    await dst?.close().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof AgentError) throw err;
    throw measurementError(path, err);
  } finally {
    await src.close();
  }
}

/** Synchronous variant for process 'exit' handlers, where nothing async runs any more. */
function removeSync(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort at exit */
  }
}
