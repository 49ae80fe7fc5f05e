/** Reads the audit trail out of a store, for assertions: record bodies in time order (chain order within a chain). */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { auditChains, readChain } from '../../src/store/audit.js';
import type { Sql } from '../../src/store/sql.js';

export async function auditRecords(sql: Sql): Promise<Array<Record<string, unknown>>> {
  const out: Array<{ at: number; chain: number; seq: number; body: Record<string, unknown> }> = [];
  const chains = await auditChains(sql);
  for (const [i, id] of chains.entries()) {
    for await (const r of readChain(sql, id)) out.push({ at: r.at, chain: i, seq: r.seq, body: JSON.parse(r.body) as Record<string, unknown> });
  }
  return out.sort((a, b) => a.at - b.at || a.chain - b.chain || a.seq - b.seq).map((r) => r.body);
}

/** Every record body as one text (to look for a string anywhere in the trail). */
export async function auditText(sql: Sql): Promise<string> {
  return (await auditRecords(sql)).map((r) => JSON.stringify(r)).join('\n');
}

/** Every byte of a SQLite store on disk (database, WAL, shared memory), as text to search. */
export function sqliteStoreText(stateDir: string, base = 'keyanchor.db'): string {
  return readdirSync(stateDir)
    .filter((f) => f.startsWith(base))
    .map((f) => readFileSync(path.join(stateDir, f)).toString('latin1'))
    .join('\n');
}
