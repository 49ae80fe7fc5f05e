/**
 * Streamed SHA-256. Files are read through one reusable 1 MiB buffer, never whole into memory;
 * on a CPU with SHA extensions this runs well above 1 GB/s from the page cache.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { AgentError } from './errors.js';

const CHUNK = 1 << 20;

export interface Measurement {
  /** Lowercase hex SHA-256 of the bytes read. */
  sha256: string;
  /** Number of bytes read. */
  size: number;
}

/**
 * Reads `src` from offset 0 to EOF, feeding every chunk to `hash` and, when given, writing the
 * same chunk to `sink` at the same offset. The bytes hashed are exactly the bytes written. With a
 * sink, two buffers alternate so that writing one chunk overlaps reading and hashing the next;
 * a buffer is only refilled after its previous write has completed.
 */
export async function pump(src: FileHandle, hash: Hash, sink?: FileHandle): Promise<number> {
  const buffers = sink ? [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] : [Buffer.allocUnsafe(CHUNK)];
  let total = 0;
  let pendingWrite: Promise<void> | undefined;
  try {
    for (let i = 0; ; i++) {
      const buf = buffers[i % buffers.length]!;
      const { bytesRead } = await src.read(buf, 0, CHUNK, total);
      if (bytesRead === 0) return total;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      if (sink) {
        await pendingWrite; // frees the other buffer for the next read
        pendingWrite = writeAll(sink, chunk, total);
        pendingWrite.catch(() => undefined); // a failure surfaces at the next await, not as unhandled
      }
      total += bytesRead;
    }
  } finally {
    await pendingWrite;
  }
}

async function writeAll(sink: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    const { bytesWritten } = await sink.write(chunk, done, chunk.length - done, position + done);
    done += bytesWritten;
  }
}

/** Opens `path` once, checks it is a regular file, and hashes it. */
export async function measureFile(path: string): Promise<Measurement> {
  const fh = await openRegularFile(path);
  try {
    const hash = createHash('sha256');
    const size = await pump(fh, hash);
    return { sha256: hash.digest('hex'), size };
  } catch (err) {
    throw measurementError(path, err);
  } finally {
    await fh.close();
  }
}

/** Opens a file read-only and refuses anything that is not a regular file. */
export async function openRegularFile(path: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw measurementError(path, err);
  }
  const st = await fh.stat().catch(async (err: unknown) => {
    await fh.close();
    throw measurementError(path, err);
  });
  if (!st.isFile()) {
    await fh.close();
    throw new AgentError('measurement_failed', `${path} is not a regular file`);
  }
  return fh;
}

export function measurementError(path: string, err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const reason = (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err));
  return new AgentError('measurement_failed', `cannot read ${path}: ${reason}`, { cause: err });
}
