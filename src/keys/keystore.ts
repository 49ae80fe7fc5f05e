/**
 * The keystore: key metadata and wrapped blobs in one JSON file in the state directory. Reads
 * pick up changes made by other processes (the CLI) by watching the file's identity; every write
 * happens under a cross-process lock, re-reads the file, and replaces it atomically, so a crash
 * at any point leaves the previous or the next complete keystore (and temp files that the next
 * writer removes: they may hold blobs of versions destroyed since).
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { removeStaleTemps, writeFileAtomic } from '../fsAtomic.js';
import { emptyKeystore, KEYSTORE_FILE, KeystoreSchema, type KeystoreData } from './keystoreFile.js';
import { withFileLock } from './lockFile.js';

export class KeystoreCorruptError extends Error {
  readonly code = 'keystore_corrupt';
}

export class Keystore {
  readonly file: string;
  #data: KeystoreData;
  #stamp = '';
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    stateDir: string,
    private readonly custody: 'software' | 'pkcs11',
  ) {
    this.file = path.join(stateDir, KEYSTORE_FILE);
    this.#data = emptyKeystore(custody);
    this.#refresh();
  }

  /** The current content; reloads first if another process changed the file. */
  read(): Readonly<KeystoreData> {
    this.#refresh();
    return this.#data;
  }

  /**
   * Applies `mutate` to the freshest content and writes the result atomically. Calls are
   * serialised in-process and across processes.
   */
  update<T>(mutate: (data: KeystoreData) => T | Promise<T>): Promise<T> {
    const run = () =>
      withFileLock(this.file, async () => {
        // Under the lock no other writer is mid-write: any temp file is a killed writer's.
        removeStaleTemps(this.file);
        this.#refresh();
        const draft = structuredClone(this.#data);
        const out = await mutate(draft);
        writeFileAtomic(this.file, JSON.stringify(draft, null, 2) + '\n', 0o600);
        this.#data = draft;
        this.#stamp = this.#statStamp() ?? '';
        return out;
      });
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  #statStamp(): string | undefined {
    try {
      const st = statSync(this.file);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  #refresh(): void {
    const stamp = this.#statStamp();
    if (stamp === undefined) {
      this.#data = emptyKeystore(this.custody);
      this.#stamp = '';
      return;
    }
    if (stamp === this.#stamp) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (e) {
      throw new KeystoreCorruptError(`${this.file}: not valid JSON`, { cause: e });
    }
    const r = KeystoreSchema.safeParse(parsed);
    if (!r.success) throw new KeystoreCorruptError(`${this.file}: ${r.error.issues[0]?.message ?? 'invalid'}`);
    if (r.data.custody !== this.custody) {
      throw new KeystoreCorruptError(`${this.file} holds ${r.data.custody} custody keys but the broker is configured for ${this.custody}`);
    }
    for (const [name, rec] of Object.entries(r.data.keys)) {
      if (rec.name !== name) throw new KeystoreCorruptError(`${this.file}: key ${name} names itself ${rec.name}`);
    }
    this.#data = r.data;
    this.#stamp = stamp;
  }
}
