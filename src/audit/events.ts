/**
 * The records of decisions made outside a release or a key change: policy loads and refused
 * reloads, and what the admin API did for (or refused to) an authenticated caller. Fields a
 * caller or a policy file chose are capped.
 */
import type { AuditEvent } from '../store/audit.js';
import { formatProblem } from '../policy/problems.js';
import type { ReloadOutcome, ReloadTrigger } from '../policy/runtime.js';
import { capList, capText } from './recorder.js';

/** `policy.load` for a policy that came into force, `policy.refused` for one that did not; nothing for an unchanged one. */
export function policyEvent(trigger: ReloadTrigger, o: ReloadOutcome, tried: { version: number | null; manifestSha256: string } | undefined, inForce: { version: number | null; manifestSha256: string } | undefined): AuditEvent | undefined {
  if (o.outcome !== 'refused') return o.outcome === 'loaded' ? { event: 'policy.load', trigger, version: o.version, manifestSha256: o.manifestSha256 } : undefined;
  return {
    event: 'policy.refused',
    trigger,
    code: o.code,
    ...(tried ? { version: tried.version, manifestSha256: tried.manifestSha256 } : {}),
    problems: o.problems.length,
    firstProblems: capList(o.problems.slice(0, 3).map(formatProblem), 3),
    ...(inForce ? { inForce } : {}),
  };
}

/** An authenticated admin caller refused (403): who, what they asked for, why. */
export const adminForbiddenEvent = (requestId: string, actor: string, method: string, path: string, reason: string): AuditEvent => ({
  event: 'admin.forbidden', requestId, actor, code: 'forbidden', method, path: capText(path), reason: capText(reason),
});
