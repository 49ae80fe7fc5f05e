/**
 * The active suspensions, in memory, so the release path checks them with a few Set lookups and no
 * store query. The set is read from the store at start and again whenever the change feed says
 * suspensions changed (a poll every `store.changePollMs`, and PostgreSQL's NOTIFY at once), so a
 * suspension set or cleared through any replica or the CLI is enforced everywhere within about one
 * poll interval. This process's own changes apply at once, and a reload that was already reading
 * when one happened cannot undo it.
 */
import type { StateStore } from '../store/stateStore.js';
import { activeSuspensions } from '../store/suspensions.js';
import { nodeSubjects } from './nodes.js';
import type { RequestSubjects } from './subjectIndex.js';

export interface SuspensionCheck {
  /**
   * The suspended subject that covers this request, if any: its node (`node:<SAN URI>`,
   * `node:sha256:<fingerprint>`, `node:serial:<serial>`), a zone it is in (`zone:<name>`), a
   * software entry that approved it (`software:<name>`) or a key it asks for (`key:<name>`).
   */
  suspendedOf(s: RequestSubjects): string | undefined;
}

type Change = { gen: number; subject: string; active: boolean };

export class SuspensionSet implements SuspensionCheck {
  #active = new Set<string>();
  #gen = 0;
  /** This process's changes since the oldest reload still running began. */
  #recent: Change[] = [];
  #dirty = false;
  #running: Promise<void> | undefined;
  #unwatch: (() => void) | undefined;

  constructor(
    private readonly store: Pick<StateStore, 'read' | 'changes'>,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Reads the suspensions (a failure here stops the broker from starting), then follows the change feed. */
  async start(): Promise<void> {
    await this.#load();
    this.#unwatch = this.store.changes.watch((topic) => {
      if (topic === 'suspensions') void this.refresh();
    });
  }

  suspendedOf(s: RequestSubjects): string | undefined {
    const a = this.#active;
    if (a.size === 0) return undefined;
    for (const n of nodeSubjects(s.node)) if (a.has(n)) return n;
    for (const z of s.zones) if (a.has(`zone:${z}`)) return `zone:${z}`;
    for (const sw of s.software) if (a.has(`software:${sw}`)) return `software:${sw}`;
    for (const k of s.keys) if (a.has(`key:${k}`)) return `key:${k}`;
    return undefined;
  }

  has(subject: string): boolean {
    return this.#active.has(subject);
  }

  /** This process set (`active`) or cleared a suspension and committed it: apply it now. */
  changed(subject: string, active: boolean): void {
    this.#recent.push({ gen: ++this.#gen, subject, active });
    this.#apply(this.#active, subject, active);
  }

  /** Reads the store again (coalesced: a change during a read causes one more read). */
  refresh(): Promise<void> {
    this.#dirty = true;
    this.#running ??= (async () => {
      try {
        while (this.#dirty) {
          this.#dirty = false;
          await this.#load().catch(this.onError);
        }
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  /** Active suspensions by kind (`software`, `zone`, `key`, `node`), for the metrics. */
  countsByKind(): Map<string, number> {
    const m = new Map<string, number>();
    for (const s of this.#active) {
      const colon = s.indexOf(':');
      const kind = colon < 0 ? s : s.slice(0, colon);
      m.set(kind, (m.get(kind) ?? 0) + 1);
    }
    return m;
  }

  get size(): number {
    return this.#active.size;
  }

  close(): void {
    this.#unwatch?.();
  }

  async #load(): Promise<void> {
    const since = this.#gen;
    const rows = await activeSuspensions(this.store.read);
    const next = new Set(rows.map((r) => r.subject));
    // Changes this process made while the read ran may be missing from it: apply them on top.
    for (const c of this.#recent) if (c.gen > since) this.#apply(next, c.subject, c.active);
    this.#recent = this.#recent.filter((c) => c.gen > since);
    this.#active = next;
  }

  #apply(set: Set<string>, subject: string, active: boolean): void {
    if (active) set.add(subject);
    else set.delete(subject);
  }
}
