/** The policy high-water mark (policy/highWater.ts) on the store: a compare-and-set in one transaction. */
import { checkMark, decideAdvance, type AdvanceResult, type PolicyHighWater, type PolicyMark } from '../policy/highWater.js';
import type { Sql, TxSql } from './sql.js';
import { num } from './sql.js';
import { bumpChange } from './changes.js';
import type { StoreConfig } from '../config.js';
import { systemClock } from '../clock.js';
import type { StateStore } from './stateStore.js';

const toMark = (r: Record<string, unknown>): PolicyMark => ({
  version: num(r.version),
  manifestSha256: String(r.manifest_sha256),
  ...(r.root !== null && r.root !== undefined ? { root: String(r.root) } : {}),
});

export async function readHighWater(sql: Sql): Promise<PolicyMark | undefined> {
  const [r] = await sql.all('SELECT version, manifest_sha256, root FROM policy_high_water WHERE id = 1');
  return r ? toMark(r) : undefined;
}

export async function advanceHighWater(tx: TxSql, mark: PolicyMark): Promise<AdvanceResult> {
  checkMark(mark);
  const root = mark.root ?? null;
  const inserted = await tx.run('INSERT INTO policy_high_water (id, version, manifest_sha256, root) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING', [mark.version, mark.manifestSha256, root]);
  if (inserted === 1) {
    await bumpChange(tx, 'policy');
    return 'ok';
  }
  const [r] = await tx.all(`SELECT version, manifest_sha256, root FROM policy_high_water WHERE id = 1${tx.dialect.forUpdate}`);
  const decision = decideAdvance(toMark(r!), mark);
  if (decision !== 'write') return decision;
  await tx.run('UPDATE policy_high_water SET version = $1, manifest_sha256 = $2, root = $3 WHERE id = 1', [mark.version, mark.manifestSha256, root]);
  await bumpChange(tx, 'policy');
  return 'ok';
}

/** The PolicyHighWater seam on the state store: shared by every broker on it. */
export class StoreHighWater implements PolicyHighWater {
  constructor(private readonly store: StateStore) {}

  get(): Promise<PolicyMark | undefined> {
    return readHighWater(this.store.read);
  }

  async advance(mark: PolicyMark): Promise<AdvanceResult> {
    checkMark(mark); // a programming error, not a store failure
    return this.store.transaction((tx) => advanceHighWater(tx, mark));
  }
}

/** The mark in the store `c` names, read without creating anything (for `policy check`). */
export async function storedMark(c: StoreConfig): Promise<PolicyMark | undefined> {
  const { openStore } = await import('./index.js');
  const store = await openStore(c, { clock: systemClock });
  try {
    return await readHighWater(store.read);
  } finally {
    await store.close();
  }
}
