/**
 * The keystore never loses a key: the real `keyanchor keys create|rotate` processes are SIGKILLed
 * at many moments of their lives — spread from start-up to the median duration of an
 * uninterrupted run, and triggered by the files they touch (the store's WAL appended, its shared
 * memory touched) — and after every kill the state store is checked:
 *
 * - the store still opens, and every version a completed command reported is still there with
 *   the same number, state and createdAt;
 * - each of those versions still releases (to a jose EC recipient, through KeyService.releaseTo)
 *   and decrypts to 32 bytes with the same fingerprint as when it was first released;
 * - the audit trail's hash chains still verify, every completed command has its record, and no
 *   version exists without its record (a change and its record are one transaction);
 * - the killed process blocks nobody: SQLite's locks are the kernel's and die with it.
 *
 * Around that: a clean run leaves only the store and the KEK; a process killed while it holds the
 * store's write lock blocks nothing; processes racing to rotate all land; the first command killed
 * while it creates the software KEK leaves a state directory the next command can use; and an
 * edited audit record is found by `audit verify`.
 *
 * Only fingerprints of keys are printed (sha256, truncated), never keys. Several independent state
 * directories ("lanes") run at once to keep the total time bounded.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compactDecrypt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyTrail } from '../../src/audit/verify.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { KEK_FILE } from '../../src/custody/softwareKek.js';
import { AUDIT_KEY_FILE } from '../../src/custody/softwareAuditKey.js';
import type { KeyInfo, KeyService } from '../../src/keys/keyService.js';
import { openKeys, type OpenedKeys } from '../../src/keys/openKeys.js';
import type { RecipientJwk } from '../../src/protocol.js';
import { fingerprint, leftovers, median, raceRotations, runKeyanchorKilledAt, type KillAt, type KillRun } from '../helpers/crash.js';
import { auditRecords } from '../helpers/audit.js';
import { run, BROKER_CLI, ROOT } from '../helpers/processes.js';
import { makeRecipient, type Recipient } from '../helpers/world.js';

const LANES = 4;
/** Processes really killed (a run that finishes before its kill is replaced by another kill). */
const MIN_KILLS = 40;
/** Kills per verb with a delay spread over [0, median run time]. */
const SPREAD_KILLS_PER_VERB = 12;
/**
 * Kills at the n-th file change in the state directory: the store's WAL and shared-memory files
 * change as a command reads and commits (its one transaction appends the version, its audit
 * record and the change counter to the WAL).
 */
const EVENT_KILLS: Record<Verb, number[]> = { rotate: [0, 1, 2, 3, 4], create: [0, 1, 2, 3, 4] };
/** Kills at the n-th write to the WAL: inside the command's one transaction, or just after its commit. */
const WAL_KILLS: Record<Verb, number[]> = { rotate: [0, 0, 1, 2], create: [0, 0, 1, 2] };
/** Processes racing to rotate one key, and how many times the race is run. */
const RACERS = 6;
const RACE_TRIALS = 6;
/** A completed command runs at the latest after this many kills, so the set of versions to protect keeps growing. */
const KILLS_BETWEEN_COMPLETED = 5;

type Verb = 'create' | 'rotate';

interface Expected {
  state: string;
  createdAt: string;
  fingerprint: string;
}

interface KillOutcome {
  lane: number;
  verb: Verb;
  trigger: string;
  killed: boolean;
  /** The store gained a version the command never reported: the kill came after its commit. */
  wroteUnreported: boolean;
  /** Killed after it began writing its transaction to the store (a write to the WAL was seen). */
  killedWhileWriting: boolean;
  /** Temp or journal files this kill left. */
  temps: number;
}

const root = mkdtempSync(path.join(tmpdir(), 'keyanchor-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** One state directory, its config, and what completed commands told us about it. */
class Lane {
  readonly dir: string;
  readonly stateDir: string;
  readonly config: string;
  /** `name@version` → what a completed command reported, and the released key's fingerprint. */
  readonly expected = new Map<string, Expected>();
  readonly mainKey: string;
  #created = 0;
  #opened: OpenedKeys | undefined;

  constructor(readonly id: string, readonly recipient: Recipient) {
    this.dir = path.join(root, id);
    this.stateDir = path.join(this.dir, 'state');
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(path.join(this.dir, 'policies'));
    this.config = path.join(this.dir, 'config.json');
    writeFileSync(this.config, JSON.stringify({ stateDir: this.stateDir, policyDir: path.join(this.dir, 'policies'), dev: { enabled: false }, log: { level: 'silent' } }));
    this.mainKey = `${id}/main`;
  }

  args(verb: Verb | 'list', name?: string, init = false): string[] {
    return ['--config', this.config, 'keys', verb, ...(init ? ['--init'] : []), ...(name ? [name] : [])];
  }

  /** A fresh key name for a create (never reused: a killed create may have written its key). */
  nextName(): string {
    return `${this.id}/k-${++this.#created}`;
  }

  /** The lane's keys through a store of its own, as another process would open them. */
  async service(): Promise<KeyService> {
    this.#opened ??= await openKeys(loadConfig(this.config, {}), systemClock, 'use');
    return this.#opened.keys;
  }

  async audit(): Promise<ReturnType<typeof verifyTrail>> {
    await this.service();
    return verifyTrail(this.#opened!.store.read);
  }

  async records(): Promise<Array<Record<string, unknown>>> {
    await this.service();
    return auditRecords(this.#opened!.store.read);
  }

  async close(): Promise<void> {
    await this.#opened?.close();
    this.#opened = undefined;
  }
}

/** Releases one version in-process and returns the fingerprint of the decrypted key. */
async function releasedFingerprint(keys: KeyService, name: string, version: number, r: Recipient): Promise<string> {
  const released = await keys.releaseTo(name, version, r.jwk as RecipientJwk);
  expect(released).toMatchObject({ name, version, form: 'plaintext' });
  const { plaintext, protectedHeader } = await compactDecrypt(released.jwe, r.privateKey);
  expect(protectedHeader.kid).toBe(`${name}@${version}`);
  expect(plaintext).toHaveLength(32);
  const fp = fingerprint(plaintext);
  plaintext.fill(0);
  return fp;
}

/** Records the version a completed create/rotate reported (and checks the ones it repeats). */
async function adopt(lane: Lane, verb: Verb, info: KeyInfo): Promise<void> {
  const newest = info.versions.reduce((a, b) => (b.version > a.version ? b : a));
  if (verb === 'create') expect(newest.version).toBe(1);
  for (const v of info.versions) {
    const id = `${info.name}@${v.version}`;
    const known = lane.expected.get(id);
    if (known) expect({ state: v.state, createdAt: v.createdAt }, id).toEqual({ state: known.state, createdAt: known.createdAt });
  }
  const id = `${info.name}@${newest.version}`;
  expect(lane.expected.has(id), `${id} reported twice as new`).toBe(false);
  lane.expected.set(id, { state: newest.state, createdAt: newest.createdAt, fingerprint: await releasedFingerprint(await lane.service(), info.name, newest.version, lane.recipient) });
}

const parseInfo = (stdout: string): KeyInfo | undefined => {
  try {
    return JSON.parse(stdout) as KeyInfo;
  } catch {
    return undefined;
  }
};

/**
 * Runs a command to completion: it must succeed, whatever earlier kills left behind. `create`
 * makes a new key, `rotate` adds a version to the lane's main key. Returns its duration.
 */
async function complete(lane: Lane, verb: Verb, name = verb === 'create' ? lane.nextName() : lane.mainKey, init = false): Promise<number> {
  const started = performance.now();
  const r = await run(process.execPath, [BROKER_CLI, ...lane.args(verb, name, init)]);
  const ms = performance.now() - started;
  expect(r.code, `keys ${verb} ${name} after earlier kills: ${r.stderr}`).toBe(0);
  await adopt(lane, verb, JSON.parse(r.stdout) as KeyInfo);
  return ms;
}

const createMain = (lane: Lane): Promise<number> => complete(lane, 'create', lane.mainKey, true);

/** Audit records of key versions (`name@version`), after checking every chain. */
async function auditedVersions(lane: Lane): Promise<Set<string>> {
  const report = await lane.audit();
  expect(report.chains.filter((c) => c.brokenAt !== undefined), `${lane.id}: broken audit chains`).toEqual([]);
  const audited = new Set<string>();
  for (const r of await lane.records()) {
    if (r.event === 'key.create' || r.event === 'key.rotate') audited.add(`${String(r.key)}@${String(r.version)}`);
  }
  return audited;
}

/**
 * The invariants, checked after every kill. Returns the versions in the store that the audit
 * trail does not mention (there must be none: a change and its record are one transaction).
 */
async function checkLane(lane: Lane): Promise<string[]> {
  const keys = await lane.service();
  const listed = await keys.list();
  const present = new Map<string, { state: string; createdAt: string }>();
  for (const k of listed) {
    expect(k.versions.map((v) => v.version), `${k.name} versions`).toEqual(k.versions.map((_, i) => i + 1));
    for (const v of k.versions) present.set(`${k.name}@${v.version}`, { state: v.state, createdAt: v.createdAt });
  }
  for (const [id, want] of lane.expected) {
    expect(present.get(id), `${id} (completed earlier) in the store`).toEqual({ state: want.state, createdAt: want.createdAt });
    const at = id.lastIndexOf('@');
    expect(await releasedFingerprint(keys, id.slice(0, at), Number(id.slice(at + 1)), lane.recipient), `${id} releases the same key`).toBe(want.fingerprint);
  }
  const audited = await auditedVersions(lane);
  for (const id of lane.expected.keys()) expect(audited.has(id), `audit record of completed ${id}`).toBe(true);
  return [...present.keys()].filter((id) => !audited.has(id));
}

const versionIds = async (lane: Lane) => (await (await lane.service()).list()).flatMap((k) => k.versions.map((v) => `${k.name}@${v.version}`));

function stateFiles(lane: Lane): string[] {
  return readdirSync(lane.stateDir).sort();
}

/** A process that opens the lane's store, takes its write lock (BEGIN IMMEDIATE) and holds it. */
function holdWriteLock(lane: Lane): Promise<ReturnType<typeof spawn>> {
  const script = `
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO meta (name, value) VALUES ('held', 'by a process about to be killed')").run();
    process.stdout.write('held');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, path.join(lane.stateDir, 'keyanchor.db')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
}

describe('keyanchor keys create/rotate under SIGKILL', () => {
  it('a clean create and rotate leave only the store, the KEK and the audit signing key (no temp, journal or lock files)', async () => {
    const lane = new Lane('clean', await makeRecipient('EC'));
    await createMain(lane);
    await complete(lane, 'rotate');
    expect(await checkLane(lane)).toEqual([]);
    await lane.close();
    // Every connection closed: the WAL was checkpointed into the database and removed.
    expect(stateFiles(lane)).toEqual([KEK_FILE, AUDIT_KEY_FILE, 'keyanchor.db'].sort());
  });

  it('a process SIGKILLed while it holds the store\'s write lock blocks nothing: the lock dies with it', async () => {
    const lane = new Lane('held', await makeRecipient('EC'));
    await createMain(lane);
    const holder = await holdWriteLock(lane);
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    // Were the dead holder's lock still held, the rotation would fail with SQLITE_BUSY after the
    // busy timeout (complete() requires exit 0).
    await complete(lane, 'rotate');
    expect(await checkLane(lane)).toEqual([]);
    expect([...lane.expected.keys()]).toEqual([`${lane.mainKey}@1`, `${lane.mainKey}@2`]);
    const db = (await lane.records()).map((r) => r.event);
    expect(db).toEqual(['store.migrate', 'key.create', 'key.rotate']);
    await lane.close();
  });

  it('processes racing to rotate one key all land, each with a version of its own', { timeout: 90_000 }, async () => {
    const lane = new Lane('race', await makeRecipient('EC'));
    await createMain(lane);
    const trials: string[] = [];
    try {
      for (let trial = 1; trial <= RACE_TRIALS; trial++) {
        const before = (await (await lane.service()).show(lane.mainKey)).versions.length;
        const racers = await raceRotations(lane.config, lane.mainKey, RACERS);
        const reported = racers.map((r) => r.version);
        const after = (await (await lane.service()).show(lane.mainKey)).versions.map((v) => v.version);
        const failed = racers.filter((r) => r.code !== 0).map((r) => firstLine(r.stderr));
        trials.push(`trial ${trial}: ${RACERS} rotations reported versions [${reported.join(', ')}], ${failed.length} failed${failed.length ? ` (${failed.join('; ')})` : ''}; ${after.length - before} versions added`);
        // Each rotation succeeds, reports a version of its own, and that version stays.
        expect({ failed, distinctReported: new Set(reported).size, added: after.length - before }, trials.at(-1)).toEqual({ failed: [], distinctReported: RACERS, added: RACERS });
      }
      expect(await checkLane(lane)).toEqual([]);
    } finally {
      console.log(`racing rotations:\n  ${trials.join('\n  ')}`);
      await lane.close();
    }
  });

  it('keeps every completed version, loadable and releasing the same key, through 40+ kills of create and rotate', { timeout: 180_000 }, async () => {
    const started = performance.now();
    const lanes = await Promise.all(Array.from({ length: LANES }, async (_, i) => new Lane(`lane${i}`, await makeRecipient('EC'))));

    // Uninterrupted runs first, under the same concurrency: they set the kill-delay range.
    const durations: Record<Verb, number[]> = { create: [], rotate: [] };
    await Promise.all(
      lanes.map(async (lane) => {
        durations.create.push(await createMain(lane));
        durations.rotate.push(await complete(lane, 'rotate'));
      }),
    );
    const medianMs: Record<Verb, number> = { create: median(durations.create), rotate: median(durations.rotate) };

    // The kill plan: per verb, delays stratified over [0, median], and one kill per file-change index.
    type Plan = { verb: Verb; at: (lane: Lane) => KillAt; trigger: string };
    const spread = (verb: Verb, fraction: number): Plan => {
      const ms = Math.round(medianMs[verb] * fraction);
      return { verb, at: () => ({ afterMs: ms }), trigger: `after ${ms} ms` };
    };
    const plans: Plan[] = [];
    for (const verb of ['create', 'rotate'] as const) {
      for (let i = 0; i < SPREAD_KILLS_PER_VERB; i++) plans.push(spread(verb, (i + Math.random()) / SPREAD_KILLS_PER_VERB));
      for (const n of EVENT_KILLS[verb]) plans.push({ verb, at: (lane) => ({ onEvent: n, dir: lane.stateDir }), trigger: `at file change #${n}` });
      for (const n of WAL_KILLS[verb]) plans.push({ verb, at: (lane) => ({ onEvent: n, dir: lane.stateDir, file: 'keyanchor.db-wal', type: 'change' }), trigger: `at WAL write #${n}` });
    }
    shuffle(plans);
    // Lanes take plans from one queue; runs that beat their kill are made up for with more spread kills.
    const outcomes: KillOutcome[] = [];
    let running = 0;
    const nextPlan = (): Plan | undefined => {
      const plan = plans.shift();
      if (plan || outcomes.filter((o) => o.killed).length + running >= MIN_KILLS) return plan;
      return spread(Math.random() < 0.5 ? 'create' : 'rotate', Math.random());
    };

    const takeovers: Array<{ lane: string; ms: number }> = [];
    const unaudited = new Set<string>();
    await Promise.all(
      lanes.map(async (lane, li) => {
        let sinceCompleted = 0;
        let nextVerb: Verb = 'create';
        for (let plan = nextPlan(); plan; plan = nextPlan()) {
          await lane.close(); // the command runs alone against the store, as a new process would
          const before = new Set(await versionIds(lane));
          await lane.close();
          const tempsBefore = leftovers(lane.stateDir).temps;
          const name = plan.verb === 'create' ? lane.nextName() : lane.mainKey;
          running++;
          const r: KillRun = await runKeyanchorKilledAt(lane.args(plan.verb, name), plan.at(lane));
          // A command that printed its result before the kill did complete: its version is protected too.
          const info = parseInfo(r.stdout);
          if (info) await adopt(lane, plan.verb, info);
          else expect(r.killed, `keys ${plan.verb} ${name} ended on its own without output: ${r.stderr}`).toBe(true);

          for (const id of await checkLane(lane)) unaudited.add(id);
          const after = await versionIds(lane);
          await lane.close();
          const left = leftovers(lane.stateDir);
          outcomes.push({
            lane: li,
            verb: plan.verb,
            trigger: plan.trigger,
            killed: r.killed,
            wroteUnreported: after.some((id) => !before.has(id) && !lane.expected.has(id)),
            killedWhileWriting: r.killed && r.events.includes('change keyanchor.db-wal'),
            temps: [...left.temps.filter((t) => !tempsBefore.includes(t)), ...left.journals].length,
          });
          running--;

          // After a kill the very next command must get through now and then: nothing a kill leaves blocks it.
          if (++sinceCompleted >= KILLS_BETWEEN_COMPLETED) {
            const ms = await complete(lane, nextVerb);
            takeovers.push({ lane: lane.id, ms: Math.round(ms) });
            nextVerb = nextVerb === 'create' ? 'rotate' : 'create';
            sinceCompleted = 0;
            for (const id of await checkLane(lane)) unaudited.add(id);
            await lane.close();
          }
        }

        // And the CLI agrees: `keys list` exits 0 with JSON holding every completed version as reported.
        const list = await run(process.execPath, [BROKER_CLI, ...lane.args('list')]);
        expect(list.code, list.stderr).toBe(0);
        const listed = JSON.parse(list.stdout) as KeyInfo[];
        for (const [id, want] of lane.expected) {
          const at = id.lastIndexOf('@');
          const v = listed.find((k) => k.name === id.slice(0, at))?.versions.find((x) => x.version === Number(id.slice(at + 1)));
          expect(v && { state: v.state, createdAt: v.createdAt }, `${id} in keys list`).toEqual({ state: want.state, createdAt: want.createdAt });
        }
      }),
    );

    const killed = outcomes.filter((o) => o.killed);
    const tempLeft = outcomes.reduce((n, o) => n + o.temps, 0);
    const fingerprints = lanes.flatMap((l) => [...l.expected].map(([id, e]) => `  ${id.padEnd(16)} ${e.state.padEnd(8)} ${e.createdAt}  ${e.fingerprint}`));
    console.log(
      [
        `keystore crash test: ${outcomes.length} kill attempts (${killed.length} killed, ${outcomes.length - killed.length} finished first) in ${LANES} lanes, ` +
          `${Math.round((performance.now() - started) / 1000)} s; uninterrupted median: create ${Math.round(medianMs.create)} ms, rotate ${Math.round(medianMs.rotate)} ms`,
        `  finished before the kill: ${outcomes.filter((o) => !o.killed).map((o) => `${o.verb} ${o.trigger}`).join(', ') || '-'}`,
        `  kills after the command began writing its transaction: ${outcomes.filter((o) => o.killedWhileWriting).length}; of those after the commit but before the command reported: ${outcomes.filter((o) => o.wroteUnreported).length}`,
        `  completed commands after kills (ms): ${takeovers.map((t) => t.ms).join(', ') || '-'}`,
        `  temp or journal files left by kills: ${tempLeft}`,
        `  versions in the store with no audit record: ${[...unaudited].join(', ') || 'none'}`,
        `  completed versions and key fingerprints, all verified after every kill:`,
        ...fingerprints,
      ].join('\n'),
    );
    expect(killed.length).toBeGreaterThanOrEqual(MIN_KILLS);
    // And the kills must have reached the few milliseconds that matter, not only start-up.
    expect(outcomes.some((o) => o.killedWhileWriting)).toBe(true);
    // A change and its audit record are one transaction: no kill separates them.
    expect([...unaudited]).toEqual([]);
    expect(tempLeft).toBe(0);
    await Promise.all(lanes.map((l) => l.close()));
  });

  it('a first command killed while it creates the software KEK leaves a state directory the next command can use', { timeout: 60_000 }, async () => {
    // In a fresh state directory the first command creates kek.bin; kill it right there.
    const results: Array<{ landed: boolean; kekBytes: number | 'absent'; code: number | null; said: string }> = [];
    for (let i = 0; i < 2; i++) {
      const lane = new Lane(`first${i}`, await makeRecipient('EC'));
      const killed = await runKeyanchorKilledAt(lane.args('create', lane.nextName(), true), { onEvent: 0, dir: lane.stateDir, file: KEK_FILE });
      const kek = path.join(lane.stateDir, KEK_FILE);
      const kekBytes = existsSync(kek) ? statSync(kek).size : 'absent';
      const next = await run(process.execPath, [BROKER_CLI, ...lane.args('create', lane.nextName(), true)]);
      results.push({ landed: killed.killed, kekBytes, code: next.code, said: firstLine(next.stderr) });
      await lane.close();
    }
    console.log(`first command killed at KEK creation:\n${results.map((r) => `  kill ${r.landed ? 'landed' : 'missed'}, kek.bin ${r.kekBytes} bytes, next create exit ${r.code} ${r.said}`).join('\n')}`);
    for (const r of results) expect(r.code, `after a kill at KEK creation kek.bin holds ${r.kekBytes} bytes; the next command says: ${r.said}`).toBe(0);
  });

  it('an edited audit record is found by `audit verify` (exit 3, naming chain and record); keys and serve carry on, new records chain on', async () => {
    // A transaction cannot tear a record; someone with write access to the store can edit one.
    const lane = new Lane('edited', await makeRecipient('EC'));
    await createMain(lane);
    await complete(lane, 'rotate');
    // Each process writes its own chain: the create (after the store's creation) and the rotate, in two chains.
    expect((await lane.audit()).chains.map((c) => c.records).sort()).toEqual([1, 2]);
    await lane.close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(path.join(lane.stateDir, 'keyanchor.db'));
    const { chain_id: chain } = db.prepare("SELECT chain_id FROM audit WHERE event = 'key.rotate'").get() as { chain_id: string };
    db.prepare("UPDATE audit SET body = REPLACE(body, 'cli:', 'someone-else:') WHERE chain_id = ?").run(chain);
    db.close();

    const verify = await run(process.execPath, [BROKER_CLI, '--config', lane.config, 'audit', 'verify']);
    expect(verify.code).toBe(3);
    expect(verify.stderr).toBe(`keyanchor: ${path.join(lane.stateDir, 'keyanchor.db')}: chain ${chain} breaks at record 1: its content does not match its hash\n`);
    // The trail is verified by `audit verify`, not at start (a start must not read millions of records):
    // the keys are intact, and the next change is recorded on a new chain.
    await complete(lane, 'rotate');
    const report = await lane.audit();
    expect(report.chains.filter((c) => c.brokenAt !== undefined).map((c) => [c.chainId, c.brokenAt])).toEqual([[chain, 1]]);
    expect(report.chains).toHaveLength(3);
    for (const [id, want] of lane.expected) {
      const at = id.lastIndexOf('@');
      expect(await releasedFingerprint(await lane.service(), id.slice(0, at), Number(id.slice(at + 1)), lane.recipient)).toBe(want.fingerprint);
    }
    await lane.close();
  });
});

function shuffle<T>(xs: T[]): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}

/** The gist of a CLI failure: `keyanchor: …`, or the reason of an uncaught BrokerError. */
const firstLine = (text: string): string =>
  /^keyanchor: .*$/m.exec(text)?.[0] ?? /reason: '([^']*)'/.exec(text)?.[1] ?? /^\w*Error: .*$/m.exec(text)?.[0] ?? text.trim().split('\n')[0] ?? '';
