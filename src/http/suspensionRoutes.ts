/**
 * Suspensions in the admin API, for security teams only: list the active ones, show a subject's
 * history, suspend a subject, clear a suspension. A subject in a path is URL-encoded
 * (`/v1/admin/suspensions/key%3Apayments%2Fdb`). Same shape as every admin handler: the caller was
 * authenticated by the router → security team? → input well-formed → SuspensionService with the
 * caller as actor → log → answer.
 */
import express, { type Response, type Router } from 'express';
import { z } from 'zod';
import type { SuspensionService } from '../limits/suspensionService.js';
import { MAX_REASON } from '../limits/suspensionService.js';
import type { Policy, Team } from '../policy/types.js';
import { BrokerError } from '../errors.js';
import { callerOf, emptyBody, jsonBody, securityTeamsOf } from './adminRequest.js';

export interface SuspensionRouteDeps {
  suspensions: SuspensionService;
  policy: () => Policy;
  done: (res: Response, event: string, fields: Record<string, unknown>, teams: readonly Team[]) => void;
  /** A read is recorded in the audit trail before it is answered (a change records itself in its transaction). */
  recorded: (res: Response, event: string, fields: Record<string, unknown>, teams: readonly Team[]) => Promise<void>;
}

export const SUSPENSION_PATHS = ['/suspensions', '/suspensions/:subject', '/suspensions/:subject/clear'];

const json = express.json({ limit: 4096, strict: true, type: 'application/json' });
const SuspendBody = z.strictObject({ subject: z.string().min(1).max(2100), reason: z.string().min(1).max(MAX_REASON) });

export function suspensionRoutes(r: Router, deps: SuspensionRouteDeps): void {
  r.get('/suspensions', async (_req, res) => {
    const teams = securityTeamsOf(deps.policy(), res);
    const suspensions = await deps.suspensions.list();
    await deps.recorded(res, 'admin.suspension.list', { count: suspensions.length }, teams);
    res.json({ suspensions });
  });

  r.post('/suspensions', json, async (req, res) => {
    const teams = securityTeamsOf(deps.policy(), res);
    const body = SuspendBody.safeParse(jsonBody(req));
    if (!body.success) throw new BrokerError('request_malformed', 'body must be {"subject": "<kind>:<name>", "reason": "<text>"}');
    const out = await deps.suspensions.suspend(body.data.subject, body.data.reason, callerOf(res).actor);
    deps.done(res, 'admin.suspension.set', { subject: out.suspension.subject, created: out.created }, teams);
    res.status(out.created ? 201 : 200).json(out);
  });

  r.get('/suspensions/:subject', async (req, res) => {
    const teams = securityTeamsOf(deps.policy(), res);
    const history = await deps.suspensions.show(String(req.params.subject));
    await deps.recorded(res, 'admin.suspension.show', { subject: history[0]!.subject }, teams);
    res.json({ subject: history[0]!.subject, active: history.find((s) => s.active) ?? null, history });
  });

  r.post('/suspensions/:subject/clear', json, async (req, res) => {
    const teams = securityTeamsOf(deps.policy(), res);
    emptyBody(req);
    const cleared = await deps.suspensions.clear(String(req.params.subject), callerOf(res).actor);
    deps.done(res, 'admin.suspension.clear', { subject: cleared.subject }, teams);
    res.json(cleared);
  });
}
