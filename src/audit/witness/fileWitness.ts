/**
 * A file witness: each entry appended as one JSON line to a file that should live on another mount
 * (a different disk, an NFS export the broker host can only append to, a WORM volume), then
 * flushed to disk (fdatasync) before it counts as witnessed. One append at a time, in order. The
 * file is opened for each entry, so a rotated or remounted file is picked up. A line torn by a
 * crash is closed with a newline before the next one, and readers skip it (witnessFile.ts).
 */
import { open } from 'node:fs/promises';
import type { Witness, WitnessLine, WitnessStats } from './witness.js';

/** How much of a witness file's end is read for its newest entry (entries are a few hundred bytes). */
const TAIL_BYTES = 64 * 1024;

/** The newest entry (highest log position) among the last complete lines of a witness file; undefined when there is none or no file. */
export async function newestWitnessed(path: string): Promise<WitnessLine | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    let best: WitnessLine | undefined;
    for (const line of buf.toString('utf8').split('\n').slice(start > 0 ? 1 : 0)) {
      try {
        const w = JSON.parse(line) as WitnessLine;
        if (typeof w.log === 'number' && typeof w.text === 'string' && (!best || w.log > best.log)) best = w;
      } catch {
        /* a torn or foreign line */
      }
    }
    return best;
  } finally {
    await fh.close();
  }
}

export class FileWitness implements Witness {
  readonly confirms = true;
  readonly name: string;
  readonly #stats: WitnessStats = { sent: 0, witnessed: 0, failed: 0 };
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly onError: (e: unknown) => void,
  ) {
    this.name = `file:${path}`;
  }

  send(line: WitnessLine, onWitnessed: () => void): void {
    this.#stats.sent++;
    this.#chain = this.#chain.then(async () => {
      try {
        await this.#append(`${JSON.stringify(line)}\n`);
        this.#stats.witnessed++;
        onWitnessed();
      } catch (e) {
        this.#stats.failed++;
        this.onError(e);
      }
    });
  }

  async #append(text: string): Promise<void> {
    const fh = await open(this.path, 'a+', 0o640);
    try {
      const { size } = await fh.stat();
      let lead = '';
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) lead = '\n';
      }
      await fh.appendFile(lead + text);
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  stats(): WitnessStats {
    return { ...this.#stats };
  }

  async close(graceMs: number): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.#chain, new Promise<void>((r) => (t = setTimeout(r, graceMs)))]);
    clearTimeout(t);
  }
}
