/**
 * Suspensions: a subject (a software entry, node, zone or key, named by the caller) cut off from
 * releases until an operator clears it. At most one active suspension per subject: creating one
 * is idempotent, so one breach seen by several replicas at once makes one suspension.
 */
import { randomBytes } from 'node:crypto';
import type { Sql, TxSql } from './sql.js';
import { num, optStr } from './sql.js';
import { bumpChange } from './changes.js';

export interface Suspension {
  id: string;
  subject: string;
  reason: string;
  /** The figures that crossed the threshold (or the operator's note), as recorded. */
  figures: Record<string, unknown>;
  createdBy: string;
  createdAt: number;
  clearedBy?: string;
  clearedAt?: number;
}

export type NewSuspension = Pick<Suspension, 'subject' | 'reason' | 'figures' | 'createdBy' | 'createdAt'>;

const COLUMNS = 'id, subject, reason, figures, created_by, created_at, cleared_by, cleared_at';

function suspension(r: Record<string, unknown>): Suspension {
  const s: Suspension = {
    id: String(r.id), subject: String(r.subject), reason: String(r.reason), figures: JSON.parse(String(r.figures)) as Record<string, unknown>,
    createdBy: String(r.created_by), createdAt: num(r.created_at),
  };
  const by = optStr(r.cleared_by);
  if (by !== undefined) s.clearedBy = by;
  if (r.cleared_at !== null && r.cleared_at !== undefined) s.clearedAt = num(r.cleared_at);
  return s;
}

/** Suspends `s.subject` unless it is already; returns the active suspension and whether it is new. */
export async function suspend(tx: TxSql, s: NewSuspension): Promise<{ created: boolean; suspension: Suspension }> {
  const id = randomBytes(12).toString('base64url');
  const n = await tx.run(
    `INSERT INTO suspensions (id, subject, reason, figures, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (subject) WHERE cleared_at IS NULL DO NOTHING`,
    [id, s.subject, s.reason, JSON.stringify(s.figures), s.createdBy, s.createdAt],
  );
  if (n === 1) await bumpChange(tx, 'suspensions');
  const [r] = await tx.all(`SELECT ${COLUMNS} FROM suspensions WHERE subject = $1 AND cleared_at IS NULL`, [s.subject]);
  return { created: n === 1, suspension: suspension(r!) };
}

export async function activeSuspensions(sql: Sql): Promise<Suspension[]> {
  return (await sql.all(`SELECT ${COLUMNS} FROM suspensions WHERE cleared_at IS NULL ORDER BY created_at, id`)).map(suspension);
}

/** The suspensions of `subject`, active or not, newest first (at most `limit`). */
export async function suspensionsOf(sql: Sql, subject: string, limit = 50): Promise<Suspension[]> {
  return (await sql.all(`SELECT ${COLUMNS} FROM suspensions WHERE subject = $1 ORDER BY created_at DESC, id LIMIT $2`, [subject, limit])).map(suspension);
}

/** Lifts the active suspension of `subject`; undefined when there is none. */
export async function clearSuspension(tx: TxSql, subject: string, by: string, at: number): Promise<Suspension | undefined> {
  const [r] = await tx.all(`SELECT ${COLUMNS} FROM suspensions WHERE subject = $1 AND cleared_at IS NULL${tx.dialect.forUpdate}`, [subject]);
  if (!r) return undefined;
  await tx.run('UPDATE suspensions SET cleared_by = $2, cleared_at = $3 WHERE id = $1', [r.id, by, at]);
  await bumpChange(tx, 'suspensions');
  return { ...suspension(r), clearedBy: by, clearedAt: at };
}
