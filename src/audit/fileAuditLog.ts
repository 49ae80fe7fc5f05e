/**
 * A tamper-evident audit file: JSON lines, each carrying `seq` and `prev`, the SHA-256 of the
 * previous line, so that removing, reordering or editing a line breaks the chain. The chain is
 * verified when the file is opened; a broken chain stops the broker from starting. Several
 * processes (the broker and the `keyanchor keys` CLI) may append: each append takes a lock file
 * and first reads what others appended since, so the chain stays one chain.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Clock } from '../clock.js';
import { withFileLock } from '../keys/lockFile.js';
import type { AuditEvent, AuditLog, ReleaseRecord } from './auditLog.js';

const GENESIS = '0'.repeat(64);

export class AuditChainError extends Error {
  readonly code = 'audit_chain_broken';
}

export interface ChainCheck {
  lines: number;
  lastHash: string;
  brokenAt?: number;
}

export const lineHash = (line: string): string => createHash('sha256').update(line).digest('hex');

/** Verifies the hash chain of an audit file's text; reports the first broken line (1-based). */
export function verifyChain(text: string, onRecord?: (r: Record<string, unknown>) => void): ChainCheck {
  let prev = GENESIS;
  let n = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    n++;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { lines: n, lastHash: prev, brokenAt: n };
    }
    if (rec.prev !== prev || rec.seq !== n) return { lines: n, lastHash: prev, brokenAt: n };
    onRecord?.(rec);
    prev = lineHash(line);
  }
  return { lines: n, lastHash: prev };
}

export class FileAuditLog implements AuditLog {
  #fh: FileHandle;
  #prev: string;
  #seq: number;
  #size: number;
  #queue: Promise<void> = Promise.resolve();
  readonly #releases = new Map<string, Map<number, ReleaseRecord>>();

  private constructor(
    fh: FileHandle,
    check: ChainCheck,
    size: number,
    private readonly file: string,
    private readonly clock: Clock,
    private readonly fsync: boolean,
  ) {
    this.#fh = fh;
    this.#prev = check.lastHash;
    this.#seq = check.lines;
    this.#size = size;
  }

  static async open(file: string, clock: Clock, opts: { fsync?: boolean } = {}): Promise<FileAuditLog> {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const pending: Array<Record<string, unknown>> = [];
    const check = verifyChain(text, (r) => r.event === 'release' && pending.push(r));
    if (check.brokenAt !== undefined) {
      throw new AuditChainError(`audit file ${file} is broken at line ${check.brokenAt}: it was edited or truncated; move it aside to start a new one`);
    }
    const fh = await open(file, 'a', 0o600);
    const log = new FileAuditLog(fh, check, Buffer.byteLength(text), file, clock, opts.fsync ?? false);
    for (const r of pending) log.#index(r);
    return log;
  }

  record(e: AuditEvent): Promise<void> {
    const run = () =>
      withFileLock(this.file, async () => {
        await this.#catchUp();
        const rec = { seq: this.#seq + 1, prev: this.#prev, time: new Date(this.clock.now()).toISOString(), ...e };
        const line = JSON.stringify(rec) + '\n';
        const bytes = Buffer.from(line);
        const { bytesWritten } = await this.#fh.write(bytes, 0, bytes.length);
        if (bytesWritten !== bytes.length) {
          // A short write (disk full) would tear the chain: take the partial line back out.
          await this.#fh.truncate(this.#size);
          throw new Error(`audit write was short (${bytesWritten} of ${bytes.length} bytes)`);
        }
        if (this.fsync) await this.#fh.datasync();
        this.#seq += 1;
        this.#prev = lineHash(line.slice(0, -1));
        this.#size += bytes.length;
        this.#index(rec);
      });
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  /** Reads and checks the lines other processes appended since this one last wrote. */
  async #catchUp(): Promise<void> {
    const { size } = await this.#fh.stat();
    if (size === this.#size) return;
    const r = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(size - this.#size);
      await r.read(buf, 0, buf.length, this.#size);
      for (const line of buf.toString('utf8').split('\n')) {
        if (line === '') continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec.prev !== this.#prev || rec.seq !== this.#seq + 1) throw new AuditChainError(`audit file ${this.file} was altered by another writer`);
        this.#seq += 1;
        this.#prev = lineHash(line);
        this.#index(rec);
      }
      this.#size = size;
    } finally {
      await r.close();
    }
  }

  releases(name: string): ReadonlyMap<number, ReleaseRecord> {
    return this.#releases.get(name) ?? new Map();
  }

  #index(r: Record<string, unknown>): void {
    if (r.event !== 'release' || !Array.isArray(r.released)) return;
    const node = (r.node as { subject?: string; sanUris?: string[] } | undefined) ?? {};
    for (const kv of r.released as string[]) {
      const at = kv.lastIndexOf('@');
      const name = kv.slice(0, at);
      const version = Number(kv.slice(at + 1));
      let m = this.#releases.get(name);
      if (!m) this.#releases.set(name, (m = new Map()));
      const prev = m.get(version);
      m.set(version, {
        count: (prev?.count ?? 0) + 1,
        lastAt: String(r.time),
        lastNode: node.sanUris?.[0] ?? node.subject ?? 'unknown',
        lastSoftware: (r.software as string[] | undefined) ?? [],
      });
    }
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.#fh.close();
  }
}
