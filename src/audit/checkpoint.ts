/**
 * Signed checkpoints: the text a checkpoint-log entry signs, and how it is read back.
 *
 * The checkpoint log (table `audit_checkpoints`) is one hash chain over every writer: entry `log`
 * names the SHA-256 of the previous entry's text (`prev`), so it fixes everything before it. An
 * entry is either
 * - a **checkpoint** of one writer chain: its id, the number and hash of its last record (the hash
 *   fixes every record before it), the time, the policy in force, and how the head was known:
 *   `writer` (the broker's own record of what it committed) or `sweep` (read from the store and
 *   verified back to the chain's previous checkpoint, for chains whose writer stopped); or
 * - an **anchor**, written when old records are pruned: the log entries up to `retired` are gone,
 *   the first remaining entry names that entry's digest, and `cut` lines give, for each chain
 *   that still has records, the number and hash of the last pruned record.
 *
 * The text is ASCII lines `name value`, in a fixed order, ending with a newline, signed as is with
 * ECDSA P-256 over SHA-256 (DER), so that `openssl dgst -sha256 -verify audit.pub -signature
 * cp.sig cp.txt` checks it with nothing of keyanchor's.
 */
import { createHash, verify as verifySignature, type KeyObject } from 'node:crypto';

export const CHECKPOINT_MAGIC = 'keyanchor-audit-checkpoint/1';
export const ANCHOR_MAGIC = 'keyanchor-audit-anchor/1';

export type Basis = 'writer' | 'sweep';

interface EntryHead {
  /** The store's id (meta `audit_store_id`): an entry of another store never matches. */
  store: string;
  log: number;
  prev: string;
  time: number;
  /** The signing key's id (SHA-256 of its SPKI DER). */
  key: string;
}

export interface CheckpointBody extends EntryHead {
  kind: 'checkpoint';
  chain: string;
  seq: number;
  hash: string;
  /** The policy in force when it was signed; null when none was loaded (a CLI process). */
  policy: { version: number | null; manifestSha256: string } | null;
  basis: Basis;
}

export interface ChainCut {
  chain: string;
  seq: number;
  hash: string;
}

export interface AnchorBody extends EntryHead {
  kind: 'anchor';
  retired: { log: number; digest: string };
  cuts: ChainCut[];
}

export type EntryBody = CheckpointBody | AnchorBody;

const HEX64 = /^[0-9a-f]{64}$/;
const ID = /^[A-Za-z0-9_-]{1,128}$/;
const NUM = /^(0|[1-9]\d{0,15})$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

export const entryDigest = (text: string): string => createHash('sha256').update(text).digest('hex');

function policyLine(p: CheckpointBody['policy']): string {
  if (!p) return 'none';
  return `${p.version === null ? 'unsigned' : p.version} ${p.manifestSha256}`;
}

export function formatEntry(b: EntryBody): string {
  const head = [`store ${b.store}`, `log ${b.log}`, `prev ${b.prev}`];
  const lines =
    b.kind === 'checkpoint'
      ? [CHECKPOINT_MAGIC, ...head, `chain ${b.chain}`, `seq ${b.seq}`, `hash ${b.hash}`, `time ${new Date(b.time).toISOString()}`, `policy ${policyLine(b.policy)}`, `basis ${b.basis}`, `key ${b.key}`]
      : [ANCHOR_MAGIC, ...head, `time ${new Date(b.time).toISOString()}`, `retired ${b.retired.log} ${b.retired.digest}`, ...[...b.cuts].sort((x, y) => (x.chain < y.chain ? -1 : 1)).map((c) => `cut ${c.chain} ${c.seq} ${c.hash}`), `key ${b.key}`];
  return `${lines.join('\n')}\n`;
}

export class EntryFormatError extends Error {}

/** Reads an entry's text strictly: the exact lines and order formatEntry writes, nothing else. */
export function parseEntry(text: string): EntryBody {
  if (!text.endsWith('\n') || text.length > 1_000_000) throw new EntryFormatError('not a checkpoint text');
  const lines = text.slice(0, -1).split('\n');
  let i = 0;
  const take = (name: string, re: RegExp): string => {
    const line = lines[i++];
    const prefix = `${name} `;
    if (line === undefined || !line.startsWith(prefix) || !re.test(line.slice(prefix.length))) throw new EntryFormatError(`line ${i}: expected "${name}"`);
    return line.slice(prefix.length);
  };
  const magic = lines[i++];
  if (magic !== CHECKPOINT_MAGIC && magic !== ANCHOR_MAGIC) throw new EntryFormatError('line 1: not a keyanchor audit checkpoint or anchor');
  const head = { store: take('store', ID), log: Number(take('log', NUM)), prev: take('prev', HEX64) };
  let body: EntryBody;
  if (magic === CHECKPOINT_MAGIC) {
    const chain = take('chain', ID);
    const seq = Number(take('seq', NUM));
    const hash = take('hash', HEX64);
    const time = Date.parse(take('time', TIME));
    const p = take('policy', /^(none|(unsigned|0|[1-9]\d{0,15}) [0-9a-f]{64})$/);
    const [v, manifest] = p.split(' ');
    const policy = p === 'none' ? null : { version: v === 'unsigned' ? null : Number(v), manifestSha256: manifest! };
    const basis = take('basis', /^(writer|sweep)$/) as Basis;
    body = { kind: 'checkpoint', ...head, chain, seq, hash, time, policy, basis, key: take('key', HEX64) };
  } else {
    const time = Date.parse(take('time', TIME));
    const [log, digest] = take('retired', /^(0|[1-9]\d{0,15}) [0-9a-f]{64}$/).split(' ');
    const cuts: ChainCut[] = [];
    while (lines[i]?.startsWith('cut ')) {
      const [chain, seq, hash] = take('cut', /^[A-Za-z0-9_-]{1,128} (0|[1-9]\d{0,15}) [0-9a-f]{64}$/).split(' ');
      cuts.push({ chain: chain!, seq: Number(seq), hash: hash! });
    }
    body = { kind: 'anchor', ...head, time, retired: { log: Number(log), digest: digest! }, cuts, key: take('key', HEX64) };
  }
  if (i !== lines.length) throw new EntryFormatError(`line ${i + 1}: unexpected`);
  if (formatEntry(body) !== text) throw new EntryFormatError('not in canonical form');
  return body;
}

/** True when `sig` (DER) is the key's ECDSA P-256 signature over SHA-256 of `text`. */
export const signatureValid = (text: string, sig: Buffer, key: KeyObject): boolean => {
  try {
    return verifySignature('sha256', Buffer.from(text), key, sig);
  } catch {
    return false;
  }
};
