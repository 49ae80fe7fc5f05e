/** The policy high-water mark (policy/highWater.ts) on the store: a compare-and-set in one transaction. */
import type { AdvanceResult, PolicyHighWater, PolicyMark } from '../policy/highWater.js';
import type { Sql, TxSql } from './sql.js';
import { num } from './sql.js';
import { bumpChange } from './changes.js';
import type { StateStore } from './stateStore.js';

export async function readHighWater(sql: Sql): Promise<PolicyMark | undefined> {
  const [r] = await sql.all('SELECT version, manifest_sha256 FROM policy_high_water WHERE id = 1');
  return r ? { version: num(r.version), manifestSha256: String(r.manifest_sha256) } : undefined;
}

export async function advanceHighWater(tx: TxSql, mark: PolicyMark): Promise<AdvanceResult> {
  const inserted = await tx.run('INSERT INTO policy_high_water (id, version, manifest_sha256) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [mark.version, mark.manifestSha256]);
  if (inserted === 1) {
    await bumpChange(tx, 'policy');
    return 'ok';
  }
  const [r] = await tx.all(`SELECT version, manifest_sha256 FROM policy_high_water WHERE id = 1${tx.dialect.forUpdate}`);
  const stored = num(r!.version);
  if (mark.version < stored) return 'rollback';
  if (mark.version === stored) return String(r!.manifest_sha256) === mark.manifestSha256 ? 'ok' : 'conflict';
  await tx.run('UPDATE policy_high_water SET version = $1, manifest_sha256 = $2 WHERE id = 1', [mark.version, mark.manifestSha256]);
  await bumpChange(tx, 'policy');
  return 'ok';
}

/** The PolicyHighWater seam on the state store: shared by every broker on it. */
export class StoreHighWater implements PolicyHighWater {
  constructor(private readonly store: StateStore) {}

  get(): Promise<PolicyMark | undefined> {
    return readHighWater(this.store.read);
  }

  advance(mark: PolicyMark): Promise<AdvanceResult> {
    return this.store.transaction((tx) => advanceHighWater(tx, mark));
  }
}
