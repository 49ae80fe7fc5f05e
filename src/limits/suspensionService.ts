/**
 * What an operator does with suspensions, over the store: list the active ones, show one subject's
 * history, suspend a subject, clear a suspension. Each change and its audit record are one
 * transaction, and bump the change feed, so every replica enforces it within one poll interval.
 * Used by the admin API (security role) and by `keyanchor suspend` on the broker host.
 */
import type { Clock } from '../clock.js';
import { BrokerError } from '../errors.js';
import { appendAudit } from '../store/audit.js';
import type { StateStore } from '../store/stateStore.js';
import { activeSuspensions, clearSuspension, suspend, suspensionsOf, type Suspension } from '../store/suspensions.js';
import { parseSubject } from './subjects.js';

/** A suspension as the CLI and the admin API show it: times in ISO 8601. */
export interface SuspensionView {
  id: string;
  subject: string;
  reason: string;
  figures: Record<string, unknown>;
  createdBy: string;
  createdAt: string;
  active: boolean;
  clearedBy?: string;
  clearedAt?: string;
}

export const view = (s: Suspension): SuspensionView => ({
  id: s.id,
  subject: s.subject,
  reason: s.reason,
  figures: s.figures,
  createdBy: s.createdBy,
  createdAt: new Date(s.createdAt).toISOString(),
  active: s.clearedAt === undefined,
  ...(s.clearedBy !== undefined ? { clearedBy: s.clearedBy } : {}),
  ...(s.clearedAt !== undefined ? { clearedAt: new Date(s.clearedAt).toISOString() } : {}),
});

/** A subject from the outside world, canonical, or 400 request_malformed. */
export function canonicalSubject(text: string): string {
  const p = parseSubject(text);
  if ('problem' in p) throw new BrokerError('request_malformed', p.problem);
  return p.subject;
}

export const MAX_REASON = 1000;

export class SuspensionService {
  constructor(
    private readonly store: StateStore,
    private readonly clock: Clock,
    /** Told of each change this process commits (the broker's in-memory set). */
    private readonly changed: (subject: string, active: boolean) => void = () => undefined,
  ) {}

  async list(): Promise<SuspensionView[]> {
    return (await activeSuspensions(this.store.read)).map(view);
  }

  /** The subject's suspensions, newest first; 404 suspension_unknown when it never had one. */
  async show(subject: string): Promise<SuspensionView[]> {
    const all = await suspensionsOf(this.store.read, canonicalSubject(subject));
    if (all.length === 0) throw new BrokerError('suspension_unknown', `${subject} has never been suspended`);
    return all.map(view);
  }

  /** Suspends the subject (idempotent: an active suspension is returned as it is, `created: false`). */
  async suspend(subject: string, reason: string, actor: string): Promise<{ created: boolean; suspension: SuspensionView }> {
    const s = canonicalSubject(subject);
    if (reason.length === 0 || reason.length > MAX_REASON) throw new BrokerError('request_malformed', `a reason of 1 to ${MAX_REASON} characters`);
    const now = this.clock.now();
    const out = await this.store.transaction(async (tx) => {
      const r = await suspend(tx, { subject: s, reason, figures: {}, createdBy: actor, createdAt: now });
      if (r.created) await appendAudit(tx, { event: 'suspension.set', subject: s, id: r.suspension.id, by: actor, reason }, now);
      return r;
    });
    this.changed(s, true);
    return { created: out.created, suspension: view(out.suspension) };
  }

  /** Lifts the active suspension; 404 suspension_unknown when there is none. */
  async clear(subject: string, actor: string): Promise<SuspensionView> {
    const s = canonicalSubject(subject);
    const now = this.clock.now();
    const cleared = await this.store.transaction(async (tx) => {
      const c = await clearSuspension(tx, s, actor, now);
      if (c) await appendAudit(tx, { event: 'suspension.cleared', subject: s, id: c.id, by: actor, suspendedBy: c.createdBy, reason: c.reason }, now);
      return c;
    });
    if (!cleared) throw new BrokerError('suspension_unknown', `${s} is not suspended`);
    this.changed(s, false);
    return view(cleared);
  }
}
