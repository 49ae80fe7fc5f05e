/**
 * Who may manage which keys: a pure function of the policy's teams and the caller's principals.
 * A `security` team may act on every key and on the keystore as a whole (export); an `owner` team
 * only on keys whose name starts with one of its prefixes. Nothing else is allowed.
 */
import { BrokerError } from '../errors.js';
import type { Policy, Team } from '../policy/types.js';
import type { Caller } from './principal.js';

/** What an operation touches: one key by name, or `'*'`, the whole keystore (export/backup). */
export type Target = string;
export const WHOLE_KEYSTORE: Target = '*';

/** The teams the caller belongs to: those listing any of its principals. */
export function teamsOf(policy: Pick<Policy, 'teams'>, caller: Caller): Team[] {
  const mine = new Set<string>(caller.principals);
  return policy.teams.filter((t) => t.members.some((m) => mine.has(m)));
}

/** The caller's teams that allow acting on `target`; empty means no. */
export function authorize(policy: Pick<Policy, 'teams'>, caller: Caller, target: Target): Team[] {
  return teamsOf(policy, caller).filter((t) => allows(t, target));
}

/** Like authorize, but throws BrokerError('forbidden') when no team allows it. */
export function requireAuthorized(policy: Pick<Policy, 'teams'>, caller: Caller, target: Target): Team[] {
  const teams = authorize(policy, caller, target);
  if (teams.length === 0) {
    throw new BrokerError('forbidden', `${caller.actor} may not act on ${target === WHOLE_KEYSTORE ? 'the whole keystore' : target}`);
  }
  return teams;
}

/** The items (keys) the caller may see, in their order. */
export function visible<T extends { name: string }>(policy: Pick<Policy, 'teams'>, caller: Caller, items: readonly T[]): T[] {
  const teams = teamsOf(policy, caller);
  return items.filter((k) => teams.some((t) => allows(t, k.name)));
}

function allows(team: Team, target: Target): boolean {
  if (team.role === 'security') return true;
  if (team.role !== 'owner' || target === WHOLE_KEYSTORE) return false;
  // The schema makes every prefix name an owner ("payments/…"); one without "/" matches nothing,
  // so "payments" can never reach "payments-legacy/…".
  return team.keyPrefixes.some((p) => p.includes('/') && target.startsWith(p));
}
