/**
 * The one place PKCS#11 sessions open and close: a bounded pool of logged-in R/W sessions on one
 * token, with the KEK found and checked, and recovery when the token or library goes away.
 *
 * `run(what, op)` leases a session to `op`. If `op` fails with a CK_RV that means the session,
 * the login or the library was lost (errors.ts lists them), the pool recovers and `op` runs once
 * more; a second failure, or a failed recovery, is BrokerError('custody_unavailable').
 *
 * Recovery is single-flight and generation-numbered. It waits until no lease is out (C_Finalize
 * under a call still running on a worker thread is undefined behaviour), closes the pool's
 * sessions, and reconnects: open sessions, log in, re-find the KEK. If that fails, or the error
 * was a module-level one (device removed, library not initialized…), it first finalizes and
 * re-initializes the library. While the token stays away the pool is `down`: each call makes one
 * (shared) reconnection attempt and fails with custody_unavailable, so service resumes by itself
 * when the token is back. A refused PIN is the exception: it is never retried (lockout).
 */
import type { Pkcs11CustodyConfig } from '../../config.js';
import { BrokerError } from '../../errors.js';
import { CKS_RW_USER_FUNCTIONS } from './constants.js';
import { custodyError, recoveryFor, SessionLostError, type Recovery } from './errors.js';
import { assessKek, findKek, readKekAttributes, type Kek } from './kek.js';
import { PinRefusedError, Pkcs11Library, type Handle, type Pkcs11Internals, type Pkcs11Module } from './library.js';

export interface Lease {
  readonly mod: Pkcs11Module;
  readonly session: Handle;
  readonly kek: Handle;
  readonly kekId: string;
  /** The pool generation the session belongs to; a recovery starts a new one. */
  readonly gen: number;
}

type State = 'up' | 'down' | 'closed';

export class SessionPool {
  readonly #lib: Pkcs11Library;
  readonly #config: Pkcs11CustodyConfig;
  #state: State = 'down';
  #gen = 0;
  #kek: Kek | undefined;
  #sessions: Handle[] = [];
  #idle: Handle[] = [];
  #inflight = 0;
  #waiters: Array<() => void> = [];
  #drainWaiters: Array<() => void> = [];
  #recovering: Promise<void> | undefined;
  #fatal: BrokerError | undefined;

  private constructor(lib: Pkcs11Library, config: Pkcs11CustodyConfig) {
    this.#lib = lib;
    this.#config = config;
  }

  /** Loads the module, finds the token, opens `config.sessions` sessions and checks the KEK. */
  static async open(config: Pkcs11CustodyConfig, internals?: Pkcs11Internals): Promise<SessionPool> {
    const lib = await Pkcs11Library.open(config.module, internals);
    const pool = new SessionPool(lib, config);
    try {
      pool.#connect();
    } catch (e) {
      lib.release();
      throw custodyError('opening the token', e);
    }
    return pool;
  }

  /** The id of the KEK the pool currently uses. */
  get kekId(): string {
    if (!this.#kek) throw new BrokerError('custody_unavailable', 'pkcs11: not connected to the token');
    return this.#kek.id;
  }

  async run<T>(what: string, op: (lease: Lease) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const lease = await this.#acquire();
      let recovery: Recovery | undefined;
      try {
        return await op(lease);
      } catch (e) {
        recovery = recoveryFor(e);
        if (recovery === undefined) throw custodyError(what, e);
        if (attempt > 1) {
          this.#markDown(lease.gen);
          throw custodyError(`${what} (after recovering once)`, e);
        }
      } finally {
        this.#release(lease, recovery !== undefined);
      }
      await this.#recover(lease.gen, recovery);
    }
  }

  /** A cheap check that a session is logged in and the KEK is still there and acceptable. */
  async health(): Promise<void> {
    await this.run('health check', async ({ mod, session, kek }) => {
      if (mod.C_GetSessionInfo(session).state !== CKS_RW_USER_FUNCTIONS) throw new SessionLostError('the session is not logged in');
      const { problems } = assessKek(readKekAttributes(mod, session, kek));
      if (problems.length) throw new BrokerError('custody_unavailable', `pkcs11: the KEK is no longer acceptable: ${problems.join('; ')}`);
    });
  }

  /** Waits for leases to come back, closes every session, and finalizes if this pool initialized. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#wakeAll();
    await this.#recovering?.catch(() => undefined);
    await this.#drain();
    this.#closeSessions();
    this.#lib.release();
  }

  // ---- leases ---------------------------------------------------------------------------------

  async #acquire(): Promise<Lease> {
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      if (this.#state === 'closed') throw new BrokerError('custody_unavailable', 'pkcs11: the custodian is closed');
      if (this.#recovering) {
        await this.#recovering;
        continue;
      }
      if (this.#state === 'down') {
        await this.#recover(this.#gen, 'module');
        continue;
      }
      const session = this.#idle.pop();
      if (session) {
        const kek = this.#kek!; // set whenever the pool is up
        this.#inflight++;
        return { mod: this.#lib.mod, session, kek: kek.handle, kekId: kek.id, gen: this.#gen };
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #release(lease: Lease, broken: boolean): void {
    this.#inflight--;
    if (!broken && lease.gen === this.#gen && this.#state === 'up') this.#idle.push(lease.session);
    this.#waiters.shift()?.();
    if (this.#inflight === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  #drain(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  // ---- recovery -------------------------------------------------------------------------------

  /** Joins or starts the recovery of generation `gen`; a no-op once a newer generation exists. */
  #recover(gen: number, level: Recovery): Promise<void> {
    if (gen !== this.#gen) return Promise.resolve();
    this.#recovering ??= this.#reconnect(level).finally(() => {
      this.#recovering = undefined;
      this.#wakeAll();
    });
    return this.#recovering;
  }

  async #reconnect(level: Recovery): Promise<void> {
    if (this.#state === 'up') this.#state = 'down';
    await this.#drain();
    this.#gen++;
    this.#closeSessions();
    if (this.#state === 'closed') throw new BrokerError('custody_unavailable', 'pkcs11: the custodian is closed');
    if (level === 'session') {
      try {
        this.#connect();
        return;
      } catch (e) {
        if (e instanceof PinRefusedError) throw (this.#fatal = e);
        // fall through: the token may need the library re-initialized before it is seen again
      }
    }
    try {
      this.#lib.reinitialize();
      this.#connect();
    } catch (e) {
      if (e instanceof PinRefusedError) throw (this.#fatal = e);
      throw custodyError('reconnecting to the token', e);
    }
  }

  /** Finds the token, opens the sessions, logs in once and finds the KEK; all or nothing. */
  #connect(): void {
    const lib = this.#lib;
    const c = this.#config;
    const slot = lib.findSlot(c.token);
    const opened: Handle[] = [];
    try {
      const serial = lib.mod.C_GetTokenInfo(slot).serialNumber.trimEnd();
      for (let i = 0; i < c.sessions; i++) opened.push(lib.openSession(slot));
      lib.login(opened[0]!, c.pin);
      this.#kek = findKek(lib.mod, opened[0]!, c.kekLabel, serial, c.module);
    } catch (e) {
      for (const s of opened) lib.closeSession(s);
      throw e;
    }
    this.#sessions = opened;
    this.#idle = [...opened];
    this.#state = 'up';
  }

  #closeSessions(): void {
    for (const s of this.#sessions) this.#lib.closeSession(s);
    this.#sessions = [];
    this.#idle = [];
  }

  #markDown(gen: number): void {
    if (gen === this.#gen && this.#state === 'up') {
      this.#state = 'down';
      this.#wakeAll();
    }
  }
}
