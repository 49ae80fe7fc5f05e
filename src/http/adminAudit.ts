/**
 * The audit part of the admin API, under /v1/admin/audit (the caller is authenticated before):
 *
 * - `GET /v1/admin/audit?key=&node=&software=&decision=&code=&actor=&since=&until=&limit=&after=`
 *   searches the trail. A security team searches anything; an owner team must name a key under
 *   its prefixes and sees only records of it, with other teams' key names taken out of them.
 * - `POST /v1/admin/audit/checkpoint` (security teams) signs checkpoints now and sends them to the
 *   witnesses.
 *
 * Each is recorded (`admin.audit.search`, `admin.audit.checkpoint`) before it is answered.
 */
import express, { type Request, type Response, type Router } from 'express';
import { authorize, requireAuthorized } from '../admin/authorize.js';
import type { Caller } from '../admin/principal.js';
import type { Checkpointer } from '../audit/checkpointer.js';
import type { AuditIndexer } from '../audit/indexer.js';
import type { AuditRecorder } from '../audit/recorder.js';
import { showRecord, toQuery, whenFrom, type SearchFilter } from '../audit/search.js';
import type { RefusalTally } from '../audit/unauthenticated.js';
import { witnessLine } from '../audit/witness/index.js';
import { BrokerError } from '../errors.js';
import type { Policy, Team } from '../policy/types.js';
import { formatCursor, parseCursor, searchAudit } from '../store/auditSearch.js';
import type { Sql } from '../store/sql.js';
import type { RequestLocals } from './problem.js';

export interface AdminAudit {
  recorder: AuditRecorder;
  read: Sql;
  /** 401s, counted per source and window (`admin.unauthenticated`). */
  unauthenticated: RefusalTally;
  checkpointer: Pick<Checkpointer, 'checkpointNow'>;
  indexer: Pick<AuditIndexer, 'catchUp'>;
}

/** Batches of 5000 records a search indexes before it reads (the rest is the background indexer's). */
const CATCH_UP_BATCHES = 4;

interface Helpers {
  policy: () => Policy;
  securityTeams: (res: Response) => Team[];
  emptyBody: (req: Request) => void;
}

const FILTERS = ['key', 'node', 'software', 'decision', 'code', 'actor'] as const;
const PARAMS = new Set<string>([...FILTERS, 'since', 'until', 'limit', 'after']);
const MAX_LIMIT = 1000;

/** The query string, strictly: known names, each once, each at most 512 characters. */
function queryOf(req: Request): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of new URL(req.originalUrl, 'http://x').searchParams) {
    if (!PARAMS.has(k) || out.has(k) || v.length === 0 || v.length > 512) throw new BrokerError('request_malformed', `query parameter "${k.slice(0, 32)}" is unknown, repeated, empty or too long`);
    out.set(k, v);
  }
  return out;
}

function filterOf(q: Map<string, string>, now: number): SearchFilter {
  const f: SearchFilter = {};
  for (const name of FILTERS) if (q.has(name)) f[name] = q.get(name)!;
  for (const name of ['since', 'until'] as const) {
    const v = q.get(name);
    if (v === undefined) continue;
    const t = whenFrom(v, now);
    if (t === undefined) throw new BrokerError('request_malformed', `${name} is neither an ISO 8601 time nor an age like 24h`);
    f[name] = t;
  }
  return f;
}

export function adminAuditRoutes(audit: AdminAudit, h: Helpers): Router {
  const r = express.Router({ caseSensitive: true });
  const json = express.json({ limit: 4096, strict: true, type: 'application/json' });
  const record = (res: Response, event: string, teams: readonly Team[], fields: Record<string, unknown>) => {
    const { requestId, caller } = res.locals as RequestLocals & { caller: Caller };
    return audit.recorder.record({ event, requestId, actor: caller.actor, teams: teams.map((t) => t.name), ...fields });
  };

  r.get('/', async (req, res) => {
    const { caller } = res.locals as { caller: Caller };
    const q = queryOf(req);
    const filter = filterOf(q, Date.now());
    const limit = q.has('limit') ? Number(q.get('limit')) : 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new BrokerError('request_malformed', `limit must be 1 to ${MAX_LIMIT}`);
    const after = q.has('after') ? parseCursor(q.get('after')!) : undefined;
    if (q.has('after') && !after) throw new BrokerError('request_malformed', 'after is not a search cursor');
    const policy = h.policy();
    const security = authorize(policy, caller, '*');
    let teams: Team[] = security;
    let maySee: ((key: string) => boolean) | undefined;
    if (security.length === 0) {
      // Owners: only records of a key they hold, and only the names of keys they may see.
      if (filter.key === undefined) throw new BrokerError('forbidden', `${caller.actor} may search the audit trail only by a key of its team`);
      teams = requireAuthorized(policy, caller, filter.key);
      maySee = (k) => authorize(policy, caller, k).length > 0;
    }
    await record(res, 'admin.audit.search', teams, { filter: Object.fromEntries(q) });
    await audit.indexer.catchUp(CATCH_UP_BATCHES);
    const page = await searchAudit(audit.read, toQuery(filter, limit, after));
    res.json({ records: page.rows.map((row) => showRecord(row, maySee)), next: page.next ? formatCursor(page.next) : null });
  });

  r.post('/checkpoint', json, async (req, res) => {
    const teams = h.securityTeams(res);
    h.emptyBody(req);
    const run = await audit.checkpointer.checkpointNow();
    await record(res, 'admin.audit.checkpoint', teams, { entries: run.entries.map((e) => e.n), refused: run.refused.length });
    res.json({ entries: run.entries.map(witnessLine), refused: run.refused });
  });

  for (const path of ['/', '/checkpoint']) {
    r.all(path, () => {
      throw new BrokerError('method_not_allowed', 'wrong method');
    });
  }
  return r;
}
