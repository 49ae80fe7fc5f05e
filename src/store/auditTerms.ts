/**
 * The searchable facts of an audit record, as `audit_terms` rows: `e:<event>` (except `release`,
 * the bulk of the trail: a search for releases reads the time index and the event column, which
 * every other record passes by, and the hottest path writes one row fewer), `c:<code>` (a
 * refusal's code, or each code a `refusal.unauthenticated` record counts), `k:<key name>` (the
 * key a lifecycle record names, each key a release asked for), `n:<node>` (its first SAN URI, else
 * its subject), `s:<software entry>`, `a:<actor>`. A pure function of the record, so a record's
 * terms can be found again to delete them with it (prune), and migration 3 fills them for older
 * records by the same rules in SQL (auditSchema.ts).
 */
import { TERM_MAX } from './auditSchema.js';

export type TermKind = 'e' | 'c' | 'k' | 'n' | 's' | 'a';

/** Events with no `e:` term: searched by the `event` column along the time index. */
export const UNINDEXED_EVENTS: ReadonlySet<string> = new Set(['release']);

export const term = (kind: TermKind, value: string): string => `${kind}:${value.slice(0, TERM_MAX)}`;

const str = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function auditTerms(event: string, body: Record<string, unknown>): string[] {
  const out = new Set<string>(UNINDEXED_EVENTS.has(event) ? [] : [term('e', event)]);
  if (str(body.code)) out.add(term('c', body.code));
  if (isObject(body.codes)) for (const c of Object.keys(body.codes)) out.add(term('c', c));
  if (str(body.key)) out.add(term('k', body.key));
  if (Array.isArray(body.requested)) for (const r of body.requested) if (isObject(r) && str(r.name)) out.add(term('k', r.name));
  if (isObject(body.node)) {
    const uris = body.node.sanUris;
    const first = Array.isArray(uris) ? uris[0] : undefined;
    const node = str(first) ? first : body.node.subject;
    if (str(node)) out.add(term('n', node));
  }
  if (Array.isArray(body.software)) for (const s of body.software) if (str(s)) out.add(term('s', s));
  if (str(body.actor)) out.add(term('a', body.actor));
  return [...out];
}
