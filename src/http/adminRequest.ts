/** What every admin handler needs from a request: the caller, a JSON body or none, the caller's security teams. */
import type { Request, Response } from 'express';
import { teamsOf } from '../admin/authorize.js';
import type { Caller } from '../admin/principal.js';
import { BrokerError } from '../errors.js';
import type { Policy, Team } from '../policy/types.js';
import type { RequestLocals } from './problem.js';

export interface AdminLocals extends RequestLocals {
  caller: Caller;
}

export const callerOf = (res: Response): Caller => (res.locals as AdminLocals).caller;

/** The caller's security teams; only they see and change the policy's state and suspensions. */
export function securityTeamsOf(policy: Policy, res: Response): Team[] {
  const caller = callerOf(res);
  const teams = teamsOf(policy, caller).filter((t) => t.role === 'security');
  if (teams.length === 0) throw new BrokerError('forbidden', `${caller.actor} is in no security team`);
  return teams;
}

/** The parsed JSON body; 415 for a body of another type, 400 for none. */
export function jsonBody(req: Request): unknown {
  if (req.body !== undefined) return req.body;
  if (hasBody(req) && req.headers['content-type']) throw new BrokerError('unsupported_media_type', `content-type ${req.headers['content-type']}`);
  throw new BrokerError('request_malformed', 'a JSON body is required');
}

/** Operations that take no input accept no body, or `{}`. */
export function emptyBody(req: Request): void {
  if (req.body === undefined && !hasBody(req)) return;
  const body = jsonBody(req);
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0) {
    throw new BrokerError('request_malformed', 'this operation takes no body (or {})');
  }
}

const hasBody = (req: Request) =>
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
