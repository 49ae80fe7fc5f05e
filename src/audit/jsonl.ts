/**
 * The JSON-lines audit file of earlier versions (`audit.jsonl`: each line with `seq` and `prev`,
 * the SHA-256 of the previous line). `keyanchor audit import` verifies its chain and copies it
 * into the store as one chain of its own, each record's body the original line, so the original
 * hashes can still be recomputed from the store.
 */
import { createHash } from 'node:crypto';
import { GENESIS } from '../store/audit.js';

export interface JsonlCheck {
  lines: number;
  lastHash: string;
  brokenAt?: number;
}

export const lineHash = (line: string): string => createHash('sha256').update(line).digest('hex');

/** Verifies the chain of an audit file's text; reports the first broken line (1-based). */
export function verifyJsonl(text: string, onRecord?: (r: Record<string, unknown>, line: string) => void): JsonlCheck {
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
    onRecord?.(rec, line);
    prev = lineHash(line);
  }
  return { lines: n, lastHash: prev };
}
