/**
 * Verifying the checkpoint log (audit/checkpoint.ts): every entry in order, a page at a time —
 * its text canonical and naming this store, its columns agreeing with its text, its position one
 * past the entry before and its `prev` that entry's digest, and, with pinned keys, its signature.
 * The first entry either starts the log (position 1, the genesis hash) or continues from the
 * entry the newest prune anchor retired. Returns what the chain pass needs: each chain's
 * checkpoints (number and hash) and the anchor's cuts.
 */
import type { KeyObject } from 'node:crypto';
import { GENESIS } from '../store/audit.js';
import { readLog, type LogEntry } from '../store/auditCheckpoints.js';
import type { Sql } from '../store/sql.js';
import { entryDigest, parseEntry, signatureValid, type AnchorBody, type EntryBody } from './checkpoint.js';

export interface LogReport {
  entries: number;
  first?: number;
  head?: number;
  /** The first entry that does not verify, and why. */
  brokenAt?: number;
  why?: string;
  signaturesChecked: boolean;
  /** Each chain's checkpoints in the (verified part of the) log, by record number. */
  checkpoints: Map<string, Array<{ seq: number; hash: string; n: number }>>;
  anchor?: { n: number; body: AnchorBody };
  /** Entry texts by position, for the positions `keep` asked for (the witnessed one). */
  kept: Map<number, string>;
}

export interface LogCheck {
  /** Pinned public keys by key id; none: signatures are not checked. */
  keys: ReadonlyMap<string, KeyObject>;
  storeId: string | undefined;
  keep?: readonly number[];
}

function check(e: LogEntry, body: EntryBody, o: LogCheck, expect: { n: number; prev: string } | undefined): string | undefined {
  if (o.storeId !== undefined && body.store !== o.storeId) return `it names store ${body.store}, not this store (${o.storeId})`;
  if (body.log !== e.n || body.kind !== e.kind || e.digest !== entryDigest(e.text) || e.keyId !== body.key) return 'its columns do not match its text';
  if (body.kind === 'checkpoint' && (body.chain !== e.chainId || body.seq !== e.seq || body.hash !== e.hash)) return 'its columns do not match its text';
  if (expect && e.n !== expect.n) return `expected entry ${expect.n}, found ${e.n}`;
  if (expect && body.prev !== expect.prev) return 'its prev is not the digest of the entry before it';
  if (o.keys.size > 0) {
    const key = o.keys.get(body.key);
    if (!key) return `it is signed by key ${body.key.slice(0, 16)}…, which is not one of the keys given`;
    if (!signatureValid(e.text, e.sig, key)) return 'its signature does not verify';
  }
  return undefined;
}

export async function verifyLog(sql: Sql, o: LogCheck): Promise<LogReport> {
  const r: LogReport = { entries: 0, signaturesChecked: o.keys.size > 0, checkpoints: new Map(), kept: new Map() };
  let expect: { n: number; prev: string } | undefined;
  let start: { n: number; prev: string } | undefined;
  for await (const e of readLog(sql)) {
    let body: EntryBody | undefined;
    let why: string | undefined;
    try {
      body = parseEntry(e.text);
    } catch (err) {
      why = `its text is not a checkpoint: ${(err as Error).message}`;
    }
    why ??= check(e, body!, o, expect);
    if (why) {
      Object.assign(r, { brokenAt: e.n, why });
      break;
    }
    start ??= { n: e.n, prev: body!.prev };
    r.entries++;
    r.first ??= e.n;
    r.head = e.n;
    if (o.keep?.includes(e.n)) r.kept.set(e.n, e.text);
    if (body!.kind === 'checkpoint') {
      const list = r.checkpoints.get(body!.chain) ?? [];
      list.push({ seq: body!.seq, hash: body!.hash, n: e.n });
      r.checkpoints.set(body!.chain, list);
    } else r.anchor = { n: e.n, body: body! };
    expect = { n: e.n + 1, prev: e.digest };
  }
  if (start && r.brokenAt === undefined) {
    const retired = r.anchor?.body.retired;
    const fromGenesis = start.n === 1 && start.prev === GENESIS;
    const fromAnchor = retired !== undefined && start.n === retired.log + 1 && start.prev === retired.digest;
    if (!fromGenesis && !fromAnchor) {
      Object.assign(r, { brokenAt: start.n, why: retired ? `entries before it are missing: the newest prune anchor (entry ${r.anchor!.n}) retired entries up to ${retired.log} only` : 'entries before it are missing and no prune anchor retired them' });
    }
  }
  for (const list of r.checkpoints.values()) list.sort((a, b) => a.seq - b.seq || a.n - b.n);
  return r;
}
