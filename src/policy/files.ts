/**
 * Reads a policy directory as hostile input. Policies live in git, which stores symlinks, and the
 * broker reads them again on every reload, so nothing here may crash, hang or exhaust memory:
 *
 * - only regular files are read, through an fd opened non-blocking and checked with fstat before
 *   a single byte is read (a FIFO, a socket, /dev/zero or a directory is a problem, not a read);
 * - every read is bounded: a cap per file and one for the whole directory;
 * - a symbolic link is followed only when its target stays inside the policy directory; one that
 *   leaves it, dangles or loops is a problem; links to directories are not followed;
 * - names starting with "." are skipped (a `.git` beside the policies is not part of them);
 * - text must be UTF-8 (a UTF-8 byte-order mark is allowed): other encodings are refused at the
 *   first byte that is not, with its line and column.
 *
 * The result is every file of the directory tree in memory, by POSIX path relative to it. What is
 * loaded, hashed into a bundle manifest and signed is exactly these bytes, read once.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, realpathSync, statSync, type Dirent, type Stats } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import path from 'node:path';
import { fileProblem, type PolicyProblem } from './problems.js';

export const POLICY_LIMITS = {
  /** One file (a generated 10,000-entry policy is ≈ 3.5 MB). */
  maxFileBytes: 16 * 1024 * 1024,
  /** Every file of the directory tree together. */
  maxTotalBytes: 64 * 1024 * 1024,
  maxFiles: 4096,
  /** Nesting of subdirectories (certs/, tests/ …). */
  maxDepth: 8,
  /** A PEM file named by `file:` outside the policy directory (unsigned policies only). */
  maxMaterialBytes: 1024 * 1024,
} as const;
export type PolicyLimits = { -readonly [K in keyof typeof POLICY_LIMITS]: number };

/** Top-level files with these extensions are policy files; everything else is material or tests. */
export const POLICY_FILE = /\.(ya?ml|json)$/;

export interface PolicyTree {
  /** The directory, absolute. */
  dir: string;
  /** Every regular, non-hidden file of the tree, by POSIX path relative to `dir`, sorted. */
  files: Map<string, Buffer>;
  problems: PolicyProblem[];
}

/** Why a file could not be read; the message completes "<file>: …". */
export class ReadRefusal extends Error {
  constructor(message: string, readonly tooLarge = false) {
    super(message);
  }
}

export function readPolicyTree(dir: string, limits: PolicyLimits = POLICY_LIMITS): PolicyTree {
  const abs = path.resolve(dir);
  const tree: PolicyTree = { dir: abs, files: new Map(), problems: [] };
  let root: string;
  try {
    root = realpathSync(abs);
    if (!statSync(root).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    tree.problems.push({ file: displayPath(abs), line: 0, col: 0, path: '(dir)', message: `cannot read the policy directory (${errno(e)})` });
    return tree;
  }
  let total = 0;
  let full = false;
  const problem = (rel: string, message: string) => tree.problems.push(fileProblem(displayPath(path.join(abs, rel)), '(file)', message));

  const walk = (rel: string, depth: number): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(path.join(abs, rel), { withFileTypes: true });
    } catch (e) {
      problem(rel, `cannot list the directory (${errno(e)})`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.') || full) continue;
      const relPath = rel ? `${rel}/${e.name}` : e.name;
      const file = path.join(abs, relPath);
      if (e.isDirectory()) {
        if (!rel && POLICY_FILE.test(e.name)) problem(relPath, 'a directory named like a policy file; policy files must be regular files');
        else if (depth >= limits.maxDepth) problem(relPath, `nested more than ${limits.maxDepth} directories deep`);
        else walk(relPath, depth + 1);
        continue;
      }
      if (e.isSymbolicLink()) {
        const why = symlinkProblem(file, root);
        if (why) {
          problem(relPath, why);
          continue;
        }
      } else if (!e.isFile()) {
        problem(relPath, `not a regular file (${direntKind(e)})`);
        continue;
      }
      if (tree.files.size >= limits.maxFiles) {
        problem(relPath, `the policy directory holds more than ${limits.maxFiles} files`);
        full = true;
        continue;
      }
      const room = limits.maxTotalBytes - total;
      try {
        const bytes = readRegularFile(file, Math.min(limits.maxFileBytes, room));
        total += bytes.length;
        tree.files.set(relPath, bytes);
      } catch (err) {
        if (!(err instanceof ReadRefusal)) throw err;
        if (err.tooLarge && room < limits.maxFileBytes) {
          problem(relPath, `the policy directory is larger than ${mib(limits.maxTotalBytes)} in total`);
          full = true;
        } else problem(relPath, err.message);
      }
    }
  };
  walk('', 0);
  return tree;
}

/** Why a symlink in the tree is not followed, or undefined when its target is a file inside `root`. */
function symlinkProblem(file: string, root: string): string | undefined {
  let target: string;
  try {
    target = realpathSync(file);
  } catch (e) {
    const code = errno(e);
    if (code === 'ENOENT') return 'a dangling symbolic link';
    if (code === 'ELOOP') return 'a symbolic link loop';
    return `cannot resolve the symbolic link (${code})`;
  }
  const rel = path.relative(root, target);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return `a symbolic link that leaves the policy directory (to ${target})`;
  if (statSync(target).isDirectory()) return 'a symbolic link to a directory (not followed)';
  return undefined;
}

/**
 * Reads a regular file of at most `max` bytes. Opened non-blocking (a FIFO cannot stall the
 * open) and checked with fstat on the open fd (no race between the check and the read).
 */
export function readRegularFile(file: string, max: number): Buffer {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = errno(e);
    throw new ReadRefusal(code === 'ELOOP' ? 'a symbolic link loop' : `cannot read ${file} (${code})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ReadRefusal(`not a regular file (${statKind(st)})`);
    if (st.size > max) throw new ReadRefusal(`${st.size} bytes, larger than the ${mib(max)} limit`, true);
    const buf = Buffer.allocUnsafe(st.size + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > max) throw new ReadRefusal(`grew while read, larger than the ${mib(max)} limit`, true);
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * The text of a policy file, or a problem at the first byte that is not UTF-8 (UTF-16 and
 * Latin-1 files fail here instead of becoming U+FFFD in a subject that then never matches).
 */
export function utf8Text(bytes: Buffer, file: string): { text: string } | { problem: PolicyProblem } {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { problem: fileProblem(file, '(encoding)', `UTF-16 text (byte-order mark ${bytes[0]!.toString(16).toUpperCase()} ${bytes[1]!.toString(16).toUpperCase()}); save the file as UTF-8`) };
  }
  const body = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes;
  const nul = body.indexOf(0);
  if (nul >= 0) return { problem: fileProblem(file, '(encoding)', 'a NUL byte: the file is binary or UTF-16; save it as UTF-8', position(body, nul)) };
  if (!isUtf8(body)) {
    const at = firstInvalidUtf8(body);
    return { problem: fileProblem(file, '(encoding)', `byte 0x${body[at]!.toString(16).padStart(2, '0')} is not UTF-8 (Latin-1?); save the file as UTF-8`, position(body, at)) };
  }
  return { text: body.toString('utf8') };
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len === 0 || !isUtf8(b.subarray(i, i + len))) return i;
    i += len;
  }
  return b.length;
}

/** 1-based line and column (in characters) of a byte offset in UTF-8-valid-so-far text. */
function position(b: Buffer, offset: number): { line: number; col: number } {
  const before = b.subarray(0, offset);
  let line = 1;
  let start = 0;
  for (let i = before.indexOf(10); i >= 0; i = before.indexOf(10, i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: before.subarray(start).toString('utf8').length + 1 };
}

const statKind = (st: Stats): string =>
  st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'not a file';
const direntKind = (e: Dirent): string => (e.isFIFO() ? 'a FIFO' : e.isSocket() ? 'a socket' : e.isCharacterDevice() ? 'a character device' : e.isBlockDevice() ? 'a block device' : 'unknown type');
const mib = (n: number): string => (n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n}-byte`);
const errno = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? 'error';

/** A path as problems print it: relative to the working directory when below it. */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}
