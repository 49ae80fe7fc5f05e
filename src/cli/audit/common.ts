/** What the `keyanchor audit …` commands share: opening the store (and the signer), times, witnessed checkpoints. */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { ANCHOR_MAGIC, CHECKPOINT_MAGIC, EntryFormatError, parseEntry } from '../../audit/checkpoint.js';
import type { Against } from '../../audit/verify.js';
import { whenFrom } from '../../audit/search.js';
import { auditStoreId, storeAuditSigner } from '../../audit/signingKey.js';
import type { LogWriter } from '../../audit/checkpointLog.js';
import { systemClock } from '../../clock.js';
import type { Config } from '../../config.js';
import { BrokerError } from '../../errors.js';
import { openKeys } from '../../keys/openKeys.js';
import { openStore, type StateStore } from '../../store/index.js';
import { configFrom, EXIT, fail, reportConfigError } from '../context.js';

export const cliActor = () => `cli:${userInfo().username}`;

function config(cmd: Command): Config {
  try {
    return configFrom(cmd);
  } catch (e) {
    reportConfigError(e);
  }
}

/** Store, custody and key problems: one line with their code and reason, no stack. */
function failWith(e: unknown): never {
  if (e instanceof BrokerError) fail(`${e.code}: ${e.reason}`, EXIT.failure);
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && e instanceof Error) fail(`${code}: ${e.message}`, EXIT.failure);
  throw e;
}

/** Opens the configured store (it must exist: these commands create nothing) and runs `fn`. */
export async function withStore(cmd: Command, fn: (store: StateStore, config: Config) => Promise<void>): Promise<void> {
  const c = config(cmd);
  let store: StateStore | undefined;
  try {
    store = await openStore(c.store, { clock: systemClock });
    await fn(store, c);
  } catch (e) {
    failWith(e);
  } finally {
    await store?.close();
  }
}

/** Opens store and custody (checking the KEK) and the store's audit signing key, and runs `fn`. */
export async function withSigner(cmd: Command, fn: (w: LogWriter, config: Config) => Promise<void>): Promise<void> {
  const c = config(cmd);
  let opened: Awaited<ReturnType<typeof openKeys>> | undefined;
  try {
    opened = await openKeys(c, systemClock, 'use');
    const signer = await storeAuditSigner(c, opened.store, opened.custodian!, true);
    await fn({ store: opened.store, signer, clock: systemClock, storeId: await auditStoreId(opened.store) }, c);
  } catch (e) {
    failWith(e);
  } finally {
    await opened?.close();
  }
}

/** An ISO 8601 time, or an age (`90s`, `30m`, `24h`, `30d`) before now; epoch ms. */
export function parseWhen(s: string, now: number, what: string): number {
  return whenFrom(s, now) ?? fail(`${what}: "${s}" is neither an ISO 8601 time (2030-01-01T00:00:00Z) nor an age like 24h`, EXIT.usage);
}

/**
 * A witnessed checkpoint: a text checkpoint (its signature in the file beside it, `.sig` for
 * `.txt`), or JSON lines as witnesses write them (the entry with the highest log position is
 * used; torn or unreadable lines are skipped).
 */
export function readWitnessed(file: string): Against {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (text.startsWith(CHECKPOINT_MAGIC) || text.startsWith(ANCHOR_MAGIC)) {
    const sigFile = `${file.replace(/\.txt$/, '')}.sig`;
    try {
      return { text, sig: readFileSync(sigFile) };
    } catch (e) {
      fail(`${file} is a checkpoint text; its signature ${sigFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  let best: (Against & { log: number }) | undefined;
  for (const line of text.split('\n')) {
    try {
      const o = JSON.parse(line) as { log?: unknown; text?: unknown; sig?: unknown };
      if (typeof o.text !== 'string' || typeof o.sig !== 'string') continue;
      const log = parseEntry(o.text).log;
      if (!best || log > best.log) best = { log, text: o.text, sig: Buffer.from(o.sig, 'base64') };
    } catch (e) {
      if (!(e instanceof SyntaxError || e instanceof EntryFormatError)) throw e;
    }
  }
  if (!best) fail(`${file}: no checkpoint in it (a checkpoint text with its .sig, or a witness file of JSON lines)`, EXIT.invalid);
  return { text: best.text, sig: best.sig };
}
