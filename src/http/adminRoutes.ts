/**
 * The admin API, mounted at /v1/admin: key lifecycle for the teams the policy names. Every
 * handler reads the same way: who is calling (authenticated for the whole router, before any
 * route) → is the input well-formed → may this caller act on this key (decided from the name
 * alone, before the keystore is read, so a 403 says nothing about whether a key exists) → call
 * KeyService with the caller as actor → log → answer with metadata only.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { requireAuthorized, teamsOf, visible, WHOLE_KEYSTORE } from '../admin/authorize.js';
import { adminForbiddenEvent } from '../audit/events.js';
import { adminKeyView } from '../admin/keyView.js';
import type { Authenticator } from '../admin/principal.js';
import { asBrokerError, BrokerError, toProblem } from '../errors.js';
import type { KeyService } from '../keys/keyService.js';
import type { KeyState } from '../keys/keystoreFile.js';
import type { Logger } from '../log.js';
import { formatProblem } from '../policy/problems.js';
import type { PolicyRuntime } from '../policy/runtime.js';
import type { SuspensionService } from '../limits/suspensionService.js';
import type { Policy, Team } from '../policy/types.js';
import { KeyName } from '../protocol.js';
import { adminAuditRoutes, type AdminAudit } from './adminAudit.js';
import { emptyBody, jsonBody, securityTeamsOf, type AdminLocals } from './adminRequest.js';
import { sourceOf } from './hotRoutes.js';
import { suspensionRoutes, SUSPENSION_PATHS } from './suspensionRoutes.js';

export interface AdminRouteDeps {
  keys: KeyService;
  /** The policy in force now (it changes on reload). */
  policy: () => Policy;
  /** Reload and status of the policy, for security teams. */
  policyRuntime?: Pick<PolicyRuntime, 'reload' | 'status'>;
  auth: Authenticator;
  log: Logger;
  /** Suspensions, for security teams (absent: those routes are 404). */
  suspensions?: SuspensionService;
  /** The audit trail: standalone records, 401 counts, search and checkpoints. */
  audit?: AdminAudit;
}

const MAX_BODY_BYTES = 4096;
const json = express.json({ limit: MAX_BODY_BYTES, strict: true, type: 'application/json' });
const CreateKeyBody = z.strictObject({ name: KeyName });
const VERSION = /^[1-9]\d{0,6}$/;
const TRANSITIONS: ReadonlyMap<string, KeyState> = new Map([
  ['disable', 'disabled'],
  ['enable', 'enabled'],
  ['destroy', 'destroyed'],
]);

export function adminRoutes(deps: AdminRouteDeps): Router {
  const r = express.Router({ caseSensitive: true });

  // Authentication first, for every path under /v1/admin (unknown ones included).
  r.use(async (req: Request, res: Response, next: NextFunction) => {
    try {
      (res.locals as AdminLocals).caller = await deps.auth.authenticate(req);
    } catch (e) {
      deps.audit?.unauthenticated.note({ source: sourceOf(req), code: asBrokerError(e).code, bytes: Number(req.headers['content-length'] ?? 0) || 0 });
      if (deps.auth.bearer) {
        const invalid = req.headers.authorization !== undefined ? ', error="invalid_token"' : '';
        res.setHeader('WWW-Authenticate', `Bearer realm="keyanchor-admin"${invalid}`);
      }
      throw e;
    }
    next();
  });

  const done = (res: Response, event: string, fields: Record<string, unknown>, teams: readonly Team[]) => {
    const { requestId, caller } = res.locals as AdminLocals;
    deps.log.info({ event, requestId, actor: caller.actor, teams: teams.map((t) => t.name), ...fields }, 'admin operation');
  };
  /** A read (or a policy reload) is recorded in the audit trail before it is answered; a change records itself in its transaction. */
  const recorded = async (res: Response, event: string, fields: Record<string, unknown>, teams: readonly Team[]) => {
    const { requestId, caller } = res.locals as AdminLocals;
    await deps.audit?.recorder.record({ event, requestId, actor: caller.actor, teams: teams.map((t) => t.name), ...fields });
    done(res, event, fields, teams);
  };

  r.get('/keys', async (_req, res) => {
    const { caller } = res.locals as AdminLocals;
    const policy = deps.policy();
    const teams = teamsOf(policy, caller);
    if (teams.length === 0) throw new BrokerError('forbidden', `${caller.actor} is in no team`);
    const keys = visible(policy, caller, await deps.keys.list()).map(adminKeyView);
    await recorded(res, 'admin.key.list', { count: keys.length }, teams);
    res.json({ keys });
  });

  r.post('/keys', json, async (req, res) => {
    const { caller } = res.locals as AdminLocals;
    const body = CreateKeyBody.safeParse(jsonBody(req));
    if (!body.success) throw new BrokerError('request_malformed', 'body must be {"name": "<owner>/<purpose>"}');
    const { name } = body.data;
    const teams = requireAuthorized(deps.policy(), caller, name);
    const key = adminKeyView(await deps.keys.create(name, caller.actor));
    done(res, 'admin.key.create', { key: name }, teams);
    res.status(201).location(`/v1/admin/keys/${name}`).json(key);
  });

  r.get('/keys/:owner/:purpose', async (req, res) => {
    const { name, teams } = authorizedKey(deps, req, res);
    const key = adminKeyView(await deps.keys.show(name));
    await recorded(res, 'admin.key.show', { key: name }, teams);
    res.json(key);
  });

  r.post('/keys/:owner/:purpose/rotate', json, async (req, res) => {
    const { name, teams } = authorizedKey(deps, req, res);
    emptyBody(req);
    const key = adminKeyView(await deps.keys.rotate(name, (res.locals as AdminLocals).caller.actor));
    done(res, 'admin.key.rotate', { key: name, version: Math.max(...key.versions.map((v) => v.version)) }, teams);
    res.json(key);
  });

  r.post('/keys/:owner/:purpose/versions/:version/:action', json, async (req, res) => {
    const to = TRANSITIONS.get(String(req.params.action));
    if (!to) throw new BrokerError('not_found', 'no such admin action');
    const v = String(req.params.version);
    if (!VERSION.test(v)) throw new BrokerError('request_malformed', 'version must be a positive integer');
    const { name, teams } = authorizedKey(deps, req, res);
    emptyBody(req);
    const key = adminKeyView(await deps.keys.setState(name, Number(v), to, (res.locals as AdminLocals).caller.actor));
    done(res, 'admin.key.state', { key: name, version: Number(v), state: to }, teams);
    res.json(key);
  });

  r.get('/keystore', async (req, res) => {
    // Express answers HEAD with the GET route: an export (and its audit record) only for GET.
    if (req.method !== 'GET') throw new BrokerError('method_not_allowed', `${req.method} on the keystore export`);
    const { caller } = res.locals as AdminLocals;
    const teams = requireAuthorized(deps.policy(), caller, WHOLE_KEYSTORE);
    const data = await deps.keys.exportWrapped(caller.actor);
    done(res, 'admin.keystore.export', { keys: Object.keys(data.keys).length }, teams);
    res.setHeader('Content-Disposition', 'attachment; filename="keystore.json"');
    res.json(data);
  });

  r.get('/policy', async (_req, res) => {
    const teams = securityTeams(deps, res);
    await recorded(res, 'admin.policy.status', {}, teams);
    res.json(deps.policyRuntime!.status());
  });

  // A refused policy is the caller's (the security team's) to fix: the answer lists every problem.
  r.post('/policy/reload', json, async (req, res) => {
    const teams = securityTeams(deps, res);
    emptyBody(req);
    const out = await deps.policyRuntime!.reload('api');
    if (out.outcome === 'refused') {
      await recorded(res, 'admin.policy.reload', { outcome: out.outcome, refusal: out.code }, teams);
      const err = new BrokerError('policy_rejected', `${out.code}: ${out.problems.length} problem(s)`);
      res.status(err.status).type('application/problem+json').send(JSON.stringify({ ...toProblem(err, (res.locals as AdminLocals).requestId), refusal: out.code, problems: out.problems.map(formatProblem) }));
      return;
    }
    await recorded(res, 'admin.policy.reload', { outcome: out.outcome, version: out.version, manifestSha256: out.manifestSha256 }, teams);
    res.json(out);
  });

  if (deps.suspensions) suspensionRoutes(r, { suspensions: deps.suspensions, policy: deps.policy, done, recorded });
  if (deps.audit) r.use('/audit', adminAuditRoutes(deps.audit, { policy: deps.policy, securityTeams: (res) => securityTeams(deps, res), emptyBody }));

  for (const path of ['/keys', '/keys/:owner/:purpose', '/keys/:owner/:purpose/rotate', '/keys/:owner/:purpose/versions/:version/:action', '/keystore', '/policy', '/policy/reload', ...(deps.suspensions ? SUSPENSION_PATHS : [])]) {
    r.all(path, () => {
      throw new BrokerError('method_not_allowed', 'wrong method');
    });
  }

  // An authenticated caller refused (403) is recorded; the error goes on to the one error mapping.
  r.use(async (e: unknown, req: Request, res: Response, next: NextFunction) => {
    const err = asBrokerError(e);
    const { requestId, caller } = res.locals as Partial<AdminLocals>;
    if (err.code === 'forbidden' && caller && deps.audit) {
      await deps.audit.recorder.record(adminForbiddenEvent(requestId ?? '', caller.actor, req.method, req.originalUrl, err.reason)).catch(() => undefined);
    }
    next(e);
  });
  return r;
}

/** The caller's security teams; only they see and reload the policy. */
function securityTeams(deps: AdminRouteDeps, res: Response): Team[] {
  if (!deps.policyRuntime) throw new BrokerError('not_found', 'no policy runtime');
  return securityTeamsOf(deps.policy(), res);
}

/** The key named by the path, once its form is valid and the caller may act on it. */
function authorizedKey(deps: AdminRouteDeps, req: Request, res: Response): { name: string; teams: Team[] } {
  const name = `${String(req.params.owner)}/${String(req.params.purpose)}`;
  if (!KeyName.safeParse(name).success) throw new BrokerError('request_malformed', 'the key name in the path is not "<owner>/<purpose>"');
  return { name, teams: requireAuthorized(deps.policy(), (res.locals as AdminLocals).caller, name) };
}
