/**
 * The policy in force, and how it changes. The broker holds one PolicyRuntime: requests take an
 * immutable snapshot of the current policy (one version from start to end of a release); a
 * reload — at start, on SIGHUP, on a change in the policy directory, or from the admin API —
 * loads the directory off the request path, verifies it, and swaps the snapshot only when every
 * check passed. A refused load leaves the policy in force and is visible in logs, status and
 * counters. Reloads run one at a time; calls made while one waits to start share it.
 *
 *   mark = high-water mark → root in force → load in a worker (read, verify bundle, compile)
 *   → version above the mark → build the Policy a chunk at a time → record the mark → swap
 *
 * An expired bundle stops releases (policy_expired) until a fresh one is loaded; without a pinned
 * root the policy is unsigned, which the runtime says at start, in status and in its metrics.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { BrokerError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { checkVersion, recordAccepted, trustInForce } from './bundle/acceptance.js';
import { PolicyRefusal, type RefusalCode } from './bundle/refusals.js';
import { rootFromPems, trustRoot, type TrustRoot } from './bundle/trustRoot.js';
import type { BundleFacts } from './bundle/verifyBundle.js';
import type { PolicyHighWater } from './highWater.js';
import { hydrateAsync } from './hydrate.js';
import type { LoadRequest, LoadResult } from './loadPolicy.js';
import { loadOffThread } from './offThread.js';
import { formatProblem, type PolicyProblem } from './problems.js';
import { PolicyCounters, type MetricSample } from './counters.js';
import { watchPolicyDir, type Watch } from './watch.js';
import type { Policy } from './types.js';

export interface PolicySnapshot {
  policy: Policy;
  /** The bundle's version; null for an unsigned policy. */
  version: number | null;
  /** The bundle's manifest digest; for an unsigned policy, the digest of its list of file digests. */
  manifestSha256: string;
  signed: boolean;
  /** Epoch milliseconds; null for an unsigned policy. */
  expires: number | null;
  loadedAt: number;
}

/** Throws policy_expired when the snapshot's bundle has expired at `now`. */
export function assertInForce(s: PolicySnapshot, now: number): void {
  if (s.expires !== null && now >= s.expires) {
    throw new BrokerError('policy_expired', `policy bundle version ${s.version} expired at ${new Date(s.expires).toISOString()}`);
  }
}

export type ReloadTrigger = 'start' | 'sighup' | 'watch' | 'api';
export type ReloadOutcome =
  | { outcome: 'loaded' | 'unchanged'; version: number | null; manifestSha256: string }
  | { outcome: 'refused'; code: RefusalCode; problems: PolicyProblem[] };

export interface RuntimeOptions {
  dir: string;
  vars: Record<string, string>;
  /** Root key PEM files and threshold, from the config; absent means unsigned policy. */
  root?: { keys: readonly string[]; threshold: number } | undefined;
  requireSigned: boolean;
  highWater: PolicyHighWater;
  clock: Clock;
  log: Logger;
  /** How a directory is loaded; the default is a worker thread. */
  load?: (req: LoadRequest) => Promise<LoadResult>;
  /** Called with each snapshot that comes into force (for warnings that need the keystore). */
  onLoaded?: (s: PolicySnapshot) => void;
  /**
   * Called with the outcome of every load (the audit trail records loads and refusals); `tried` is
   * what is known of the policy that was tried: its version and manifest digest, once read.
   */
  onOutcome?: (trigger: ReloadTrigger, outcome: ReloadOutcome, tried: { version: number | null; manifestSha256: string } | undefined) => void;
}

export class PolicyStartError extends Error {}

export class PolicyRuntime {
  #current!: PolicySnapshot;
  #queued: Promise<ReloadOutcome> | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #expiredLogged = false;
  #watch: Watch | undefined;
  #last: { at: number; trigger: ReloadTrigger; outcome: ReloadOutcome['outcome']; code?: RefusalCode; problems?: string[] } | undefined;
  #tried: { version: number | null; manifestSha256: string } | undefined;
  readonly counters = new PolicyCounters();

  private constructor(
    private readonly o: RuntimeOptions,
    private readonly pinned: TrustRoot | undefined,
  ) {}

  /** Loads the policy once; a broker that cannot load one does not start. */
  static async start(o: RuntimeOptions): Promise<PolicyRuntime> {
    if (o.requireSigned && !o.root) throw new PolicyStartError('requireSignedPolicy is set but no trust root is pinned (policy.root)');
    const rt = new PolicyRuntime(o, o.root ? pinnedRoot(o.root) : undefined);
    const first = await rt.attempt('start');
    if (first.outcome === 'refused') throw new PolicyRefusal(first.code, first.problems);
    if (!rt.pinned) {
      o.log.warn({ policyDir: o.dir }, 'the policy is NOT signed: no trust root is pinned (policy.root), so whoever can write the policy directory decides what is released');
    }
    return rt;
  }

  /** The policy a request is decided under; throws policy_expired once the bundle has expired. */
  current(): PolicySnapshot {
    const s = this.#current;
    try {
      assertInForce(s, this.o.clock.now());
    } catch (e) {
      if (!this.#expiredLogged) {
        this.#expiredLogged = true;
        this.o.log.error({ version: s.version, expires: new Date(s.expires!).toISOString() }, 'the policy bundle has expired: no key is released until a fresh bundle is loaded');
      }
      throw e;
    }
    return s;
  }

  /** The latest policy loaded, expired or not (the admin API's teams; reloading must stay possible). */
  latest(): PolicySnapshot {
    return this.#current;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (this.#queued) return this.#queued;
    const run = this.#chain.then(() => {
      this.#queued = undefined;
      return this.attempt(trigger);
    });
    this.#queued = run;
    this.#chain = run.catch(() => undefined);
    return run;
  }

  status() {
    const s = this.#current;
    const expired = s.expires !== null && this.o.clock.now() >= s.expires;
    return {
      signed: s.signed,
      version: s.version,
      manifestSha256: s.manifestSha256,
      expires: s.expires === null ? null : new Date(s.expires).toISOString(),
      expired,
      loadedAt: new Date(s.loadedAt).toISOString(),
      root: this.pinned ? { id: this.pinned.id, threshold: this.pinned.threshold, keys: this.pinned.keys.size } : null,
      ...(s.signed ? {} : { warning: 'unsigned policy: no trust root is pinned (policy.root)' }),
      ...(this.#last ? { lastReload: { ...this.#last, at: new Date(this.#last.at).toISOString() } } : {}),
    };
  }

  metrics(): MetricSample[] {
    return this.counters.samples(this.#current, this.o.clock.now());
  }

  watch(debounceMs: number): void {
    this.#watch ??= watchPolicyDir(this.o.dir, debounceMs, () => void this.reload('watch'), this.o.log);
  }

  close(): void {
    this.#watch?.close();
  }

  private async attempt(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    let outcome: ReloadOutcome;
    this.#tried = undefined;
    try {
      outcome = await this.loadAndSwap();
    } catch (e) {
      if (e instanceof PolicyRefusal) outcome = { outcome: 'refused', code: e.code, problems: e.problems };
      else outcome = { outcome: 'refused', code: 'policy_state_unavailable', problems: [{ file: this.o.dir, line: 0, col: 0, path: '(state)', message: `policy_state_unavailable: ${(e as Error).message}` }] };
    }
    this.counters.reloaded(outcome);
    this.o.onOutcome?.(trigger, outcome, this.#tried);
    this.#last = { at: this.o.clock.now(), trigger, outcome: outcome.outcome, ...(outcome.outcome === 'refused' ? { code: outcome.code, problems: outcome.problems.map(formatProblem) } : {}) };
    if (outcome.outcome === 'refused') {
      this.o.log.error({ trigger, code: outcome.code, problems: outcome.problems.map(formatProblem) }, trigger === 'start' ? 'policy refused' : 'policy reload refused; the policy in force stays');
    } else if (outcome.outcome === 'unchanged') {
      this.o.log.info({ trigger, version: outcome.version, manifestSha256: outcome.manifestSha256 }, 'policy reloaded: unchanged');
    }
    return outcome;
  }

  private async loadAndSwap(): Promise<ReloadOutcome> {
    const { dir, vars, highWater, clock } = this.o;
    const mark = this.pinned ? await highWater.get() : undefined;
    const trust = this.pinned ? trustInForce(this.pinned, mark) : undefined;
    const result = await (this.o.load ?? loadOffThread)({ dir, vars, ...(trust ? { root: trust.data } : {}), now: clock.now() });
    if (!result.ok) throw new PolicyRefusal(result.code, result.problems);
    const b = result.bundle;
    this.#tried = { version: b?.version ?? null, manifestSha256: result.manifestSha256 };
    const facts: BundleFacts | undefined = b && { ...b, root: trustRoot(b.root) };
    if (facts) checkVersion(dir, mark, facts);
    const current = this.#current as PolicySnapshot | undefined;
    if (current && current.manifestSha256 === result.manifestSha256) return { outcome: 'unchanged', version: current.version, manifestSha256: current.manifestSha256 };
    const built = performance.now();
    const { policy, longestSliceMs } = await hydrateAsync(result.compiled);
    const buildMs = performance.now() - built;
    if (facts && this.pinned) await recordAccepted(dir, highWater, facts, this.pinned);
    this.#current = { policy, version: b?.version ?? null, manifestSha256: result.manifestSha256, signed: b !== undefined, expires: b?.expires ?? null, loadedAt: clock.now() };
    this.#expiredLogged = false;
    this.o.log.info(
      { policyDir: dir, signed: b !== undefined, version: b?.version, manifestSha256: result.manifestSha256, expires: b ? new Date(b.expires).toISOString() : undefined, signers: b?.signers, rotated: b?.rotated || undefined, files: policy.sources.map((f) => f.file), software: policy.software.length, buildMs: Math.round(buildMs), longestSliceMs: Math.round(longestSliceMs * 10) / 10 },
      'policy loaded',
    );
    this.o.onLoaded?.(this.#current);
    return { outcome: 'loaded', version: this.#current.version, manifestSha256: result.manifestSha256 };
  }
}

function pinnedRoot(r: { keys: readonly string[]; threshold: number }): TrustRoot {
  const pems = r.keys.map((f) => {
    try {
      return readFileSync(f);
    } catch (e) {
      throw new PolicyStartError(`policy.root: cannot read ${f} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  });
  try {
    return trustRoot(rootFromPems(pems, r.threshold));
  } catch (e) {
    throw new PolicyStartError(`policy.root: ${(e as Error).message}`);
  }
}
