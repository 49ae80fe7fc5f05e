/**
 * The keystore never loses a key: the real `keyanchor keys create|rotate` processes are SIGKILLed
 * at many moments of their lives — spread from start-up to the median duration of an
 * uninterrupted run, and triggered by the files they touch (audit appended, temp file written,
 * renamed) — and after every kill the state directory is checked:
 *
 * - the keystore still loads, and every version a completed command reported is still there with
 *   the same number, state and createdAt;
 * - each of those versions still releases (to a jose EC recipient, through KeyService.releaseTo)
 *   and decrypts to 32 bytes with the same fingerprint as when it was first released;
 * - the audit file's hash chain still verifies, and every completed command has its record;
 * - the killed process leaves no lock behind: the lock is a kernel object that dies with it.
 *
 * Around that: a clean run leaves no temp or lock files; stray pid lock files (what a pid-file
 * lock would leave) block nothing; processes racing for the lock all land; the first command
 * killed while it creates the software KEK leaves a usable state directory; and a torn audit line
 * (simulated) fails closed.
 *
 * Only fingerprints of keys are printed (sha256, truncated), never keys. Several independent state
 * directories ("lanes") run at once to keep the total time bounded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compactDecrypt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/fileAuditLog.js';
import { systemClock } from '../../src/clock.js';
import { SoftwareCustodian } from '../../src/custody/software.js';
import { KEK_FILE, loadOrCreateSoftwareKek } from '../../src/custody/softwareKek.js';
import { Keystore } from '../../src/keys/keystore.js';
import { KeyService, type KeyInfo } from '../../src/keys/keyService.js';
import { KEYSTORE_FILE } from '../../src/keys/keystoreFile.js';
import type { RecipientJwk } from '../../src/protocol.js';
import { fingerprint, leftovers, median, raceRotations, runKeyanchorKilledAt, type KillAt, type KillRun } from '../helpers/crash.js';
import { run, BROKER_CLI } from '../helpers/processes.js';
import { makeRecipient, type Recipient } from '../helpers/world.js';

const LANES = 4;
/** Processes really killed (a run that finishes before its kill is replaced by another kill). */
const MIN_KILLS = 40;
/** Kills per verb with a delay spread over [0, median run time]. */
const SPREAD_KILLS_PER_VERB = 12;
/**
 * Kills at the n-th file change in the state directory. Both commands make the same changes, in
 * order: 0 audit line appended (the record precedes the change), 1 temp file created, 2 written,
 * 3 renamed away, 4 keystore.json renamed in. Locks are abstract sockets, not files.
 */
const EVENT_KILLS: Record<Verb, number[]> = { rotate: [0, 1, 2, 3, 4], create: [0, 1, 2, 3, 4] };
/** Processes racing for the lock, and how many times the race is run. */
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
  /** The keystore gained a version the command never reported: the kill came after its write. */
  wroteUnreported: boolean;
  locks: Array<{ file: string; holds: 'dead pid' | 'live pid' | 'empty' }>;
  /** Temp files this kill left (`.keystore.json.*.tmp`). */
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
  #custodian: SoftwareCustodian | undefined;

  constructor(readonly id: string, readonly recipient: Recipient) {
    this.dir = path.join(root, id);
    this.stateDir = path.join(this.dir, 'state');
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(path.join(this.dir, 'policies'));
    this.config = path.join(this.dir, 'config.json');
    writeFileSync(this.config, JSON.stringify({ stateDir: this.stateDir, policyDir: path.join(this.dir, 'policies'), dev: { enabled: false }, log: { level: 'silent' } }));
    this.mainKey = `${id}/main`;
  }

  args(verb: Verb | 'list', name?: string): string[] {
    return ['--config', this.config, 'keys', verb, ...(name ? [name] : [])];
  }

  /** A fresh key name for a create (never reused: a killed create may have written its key). */
  nextName(): string {
    return `${this.id}/k-${++this.#created}`;
  }

  /** A KeyService on a fresh Keystore instance: it reads the file as a new process would. */
  service(): KeyService {
    this.#custodian ??= new SoftwareCustodian(loadOrCreateSoftwareKek(this.stateDir, { create: false }));
    return new KeyService(new Keystore(this.stateDir, 'software'), this.#custodian, systemClock);
  }

  close(): Promise<void> {
    return this.#custodian?.close() ?? Promise.resolve();
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
  lane.expected.set(id, { state: newest.state, createdAt: newest.createdAt, fingerprint: await releasedFingerprint(lane.service(), info.name, newest.version, lane.recipient) });
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
async function complete(lane: Lane, verb: Verb, name = verb === 'create' ? lane.nextName() : lane.mainKey): Promise<number> {
  const started = performance.now();
  const r = await run(process.execPath, [BROKER_CLI, ...lane.args(verb, name)]);
  const ms = performance.now() - started;
  expect(r.code, `keys ${verb} ${name} after earlier kills: ${r.stderr}`).toBe(0);
  await adopt(lane, verb, JSON.parse(r.stdout) as KeyInfo);
  return ms;
}

const createMain = (lane: Lane): Promise<number> => complete(lane, 'create', lane.mainKey);

/** Audit records of key versions (`name@version`), after checking the whole chain. */
function auditedVersions(lane: Lane): Set<string> {
  const file = path.join(lane.stateDir, 'audit.jsonl');
  const audited = new Set<string>();
  const check = verifyChain(readFileSync(file, 'utf8'), (r) => {
    if (r.event === 'key.create' || r.event === 'key.rotate') audited.add(`${String(r.key)}@${String(r.version)}`);
  });
  expect(check.brokenAt, `${file} breaks at line ${check.brokenAt}`).toBeUndefined();
  return audited;
}

/**
 * The invariants, checked after every kill. Returns the versions in the keystore that the audit
 * trail does not mention (made by a command killed between its keystore write and its audit record).
 */
async function checkLane(lane: Lane): Promise<string[]> {
  const keys = lane.service();
  const listed = keys.list(); // throws KeystoreCorruptError if the file does not load
  const present = new Map<string, { state: string; createdAt: string }>();
  for (const k of listed) {
    expect(k.versions.map((v) => v.version), `${k.name} versions`).toEqual(k.versions.map((_, i) => i + 1));
    for (const v of k.versions) present.set(`${k.name}@${v.version}`, { state: v.state, createdAt: v.createdAt });
  }
  for (const [id, want] of lane.expected) {
    expect(present.get(id), `${id} (completed earlier) in the keystore`).toEqual({ state: want.state, createdAt: want.createdAt });
    const at = id.lastIndexOf('@');
    expect(await releasedFingerprint(keys, id.slice(0, at), Number(id.slice(at + 1)), lane.recipient), `${id} releases the same key`).toBe(want.fingerprint);
  }
  const audited = auditedVersions(lane);
  for (const id of lane.expected.keys()) expect(audited.has(id), `audit record of completed ${id}`).toBe(true);
  return [...present.keys()].filter((id) => !audited.has(id));
}

function lockHolder(file: string): 'dead pid' | 'live pid' | 'empty' {
  const text = readFileSync(file, 'utf8');
  if (text === '') return 'empty';
  try {
    process.kill(Number(text), 0);
    return 'live pid';
  } catch {
    return 'dead pid';
  }
}

/** A pid that certainly belongs to no running process: one of a child that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

function stateFiles(lane: Lane): string[] {
  return readdirSync(lane.stateDir).sort();
}

describe('keyanchor keys create/rotate under SIGKILL', () => {
  it('a clean create and rotate leave only the keystore, the KEK and the audit file (no temp or lock files)', async () => {
    const lane = new Lane('clean', await makeRecipient('EC'));
    await createMain(lane);
    await complete(lane, 'rotate');
    expect(stateFiles(lane)).toEqual(['audit.jsonl', KEK_FILE, KEYSTORE_FILE].sort());
    expect(await checkLane(lane)).toEqual([]);
    await lane.close();
  });

  it('stray pid lock files (what a pid-file lock leaves behind) block nothing: the lock is the kernel\'s', async () => {
    const lane = new Lane('stale', await makeRecipient('EC'));
    await createMain(lane);
    for (const lock of [`${KEYSTORE_FILE}.lock`, 'audit.jsonl.lock']) writeFileSync(path.join(lane.stateDir, lock), String(deadPid()));
    const ms = await complete(lane, 'rotate');
    // The lock timeout is 10 s; nothing waits for these files.
    expect(ms).toBeLessThan(8_000);
    expect(leftovers(lane.stateDir).temps).toEqual([]);
    expect(await checkLane(lane)).toEqual([]);
    expect([...lane.expected.keys()]).toEqual([`${lane.mainKey}@1`, `${lane.mainKey}@2`]);
    await lane.close();
  });

  it('processes racing for the lock (with a stray dead-pid lock file about) each get it in turn: every rotation lands', { timeout: 90_000 }, async () => {
    // With a pid-file lock, processes finding the same dead owner at the same moment could each
    // remove "the" lock and take their own; the kernel lock has no owner to find dead.
    const lane = new Lane('race', await makeRecipient('EC'));
    await createMain(lane);
    const trials: string[] = [];
    try {
      for (let trial = 1; trial <= RACE_TRIALS; trial++) {
        const before = lane.service().show(lane.mainKey).versions.length;
        writeFileSync(path.join(lane.stateDir, `${KEYSTORE_FILE}.lock`), String(deadPid()));
        const racers = await raceRotations(lane.stateDir, lane.mainKey, RACERS);
        const reported = racers.map((r) => r.version);
        const after = lane.service().show(lane.mainKey).versions.map((v) => v.version);
        const failed = racers.filter((r) => r.code !== 0).map((r) => firstLine(r.stderr));
        trials.push(`trial ${trial}: ${RACERS} rotations reported versions [${reported.join(', ')}], ${failed.length} failed${failed.length ? ` (${failed.join('; ')})` : ''}; ${after.length - before} versions added`);
        // Each rotation succeeds, reports a version of its own, and that version stays.
        expect({ failed, distinctReported: new Set(reported).size, added: after.length - before }, trials.at(-1)).toEqual({ failed: [], distinctReported: RACERS, added: RACERS });
      }
    } finally {
      console.log(`racing for a dead owner's lock:\n  ${trials.join('\n  ')}`);
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

    const takeovers: Array<{ lane: string; locks: string; ms: number }> = [];
    const unaudited = new Set<string>();
    await Promise.all(
      lanes.map(async (lane, li) => {
        let sinceCompleted = 0;
        let nextVerb: Verb = 'create';
        for (let plan = nextPlan(); plan; plan = nextPlan()) {
          const before = new Set(lane.service().list().flatMap((k) => k.versions.map((v) => `${k.name}@${v.version}`)));
          const tempsBefore = leftovers(lane.stateDir).temps;
          const name = plan.verb === 'create' ? lane.nextName() : lane.mainKey;
          running++;
          const r: KillRun = await runKeyanchorKilledAt(lane.args(plan.verb, name), plan.at(lane));
          // A command that printed its result before the kill did complete: its version is protected too.
          const info = parseInfo(r.stdout);
          if (info) await adopt(lane, plan.verb, info);
          else expect(r.killed, `keys ${plan.verb} ${name} ended on its own without output: ${r.stderr}`).toBe(true);

          for (const id of await checkLane(lane)) unaudited.add(id);
          const after = lane.service().list().flatMap((k) => k.versions.map((v) => `${k.name}@${v.version}`));
          const left = leftovers(lane.stateDir);
          outcomes.push({
            lane: li,
            verb: plan.verb,
            trigger: plan.trigger,
            killed: r.killed,
            wroteUnreported: after.some((id) => !before.has(id) && !lane.expected.has(id)),
            locks: left.locks.map((file) => ({ file, holds: lockHolder(path.join(lane.stateDir, file)) })),
            temps: left.temps.filter((t) => !tempsBefore.includes(t)).length,
          });
          running--;

          // After a kill that left a lock, the very next command must get through; and now and then anyway.
          if (left.locks.length > 0 || ++sinceCompleted >= KILLS_BETWEEN_COMPLETED) {
            const locks = outcomes.at(-1)!.locks.map((l) => `${l.file} (${l.holds})`).join(', ');
            const ms = await complete(lane, nextVerb);
            if (locks) takeovers.push({ lane: lane.id, locks, ms: Math.round(ms) });
            nextVerb = nextVerb === 'create' ? 'rotate' : 'create';
            sinceCompleted = 0;
            for (const id of await checkLane(lane)) unaudited.add(id);
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
    const lockLeft = outcomes.filter((o) => o.locks.length > 0);
    const tempLeft = outcomes.reduce((n, o) => n + o.temps, 0);
    const fingerprints = lanes.flatMap((l) => [...l.expected].map(([id, e]) => `  ${id.padEnd(16)} ${e.state.padEnd(8)} ${e.createdAt}  ${e.fingerprint}`));
    console.log(
      [
        `keystore crash test: ${outcomes.length} kill attempts (${killed.length} killed, ${outcomes.length - killed.length} finished first) in ${LANES} lanes, ` +
          `${Math.round((performance.now() - started) / 1000)} s; uninterrupted median: create ${Math.round(medianMs.create)} ms, rotate ${Math.round(medianMs.rotate)} ms`,
        `  finished before the kill: ${outcomes.filter((o) => !o.killed).map((o) => `${o.verb} ${o.trigger}`).join(', ') || '-'}`,
        `  kills after the keystore write but before the command reported: ${outcomes.filter((o) => o.wroteUnreported).length}`,
        `  kills that left a lock: ${lockLeft.length} (${lockLeft.flatMap((o) => o.locks.map((l) => `${l.file}: ${l.holds}`)).join('; ') || '-'})`,
        `  next command after a leftover lock (ms): ${takeovers.map((t) => `${t.ms} [${t.locks}]`).join(', ') || '-'}`,
        `  temp files left by kills: ${tempLeft}; still in the state directories at the end: ${lanes.reduce((n, l) => n + leftovers(l.stateDir).temps.length, 0)}`,
        `  versions in the keystore with no audit record (killed between keystore write and audit append): ${[...unaudited].join(', ') || 'none'}`,
        `  completed versions and key fingerprints, all verified after every kill:`,
        ...fingerprints,
      ].join('\n'),
    );
    expect(killed.length).toBeGreaterThanOrEqual(MIN_KILLS);
    // And the kills must have reached the few milliseconds that matter, not only start-up.
    expect(outcomes.some((o) => o.wroteUnreported || o.temps > 0)).toBe(true);
    // No kill ever leaves a lock: there is no lock file to leave.
    expect(lockLeft).toEqual([]);
    await Promise.all(lanes.map((l) => l.close()));
  });

  it('a first command killed while it creates the software KEK leaves a state directory the next command can use', { timeout: 60_000 }, async () => {
    // In a fresh state directory the first command creates kek.bin; kill it right there.
    const results: Array<{ landed: boolean; kekBytes: number | 'absent'; code: number | null; said: string }> = [];
    for (let i = 0; i < 2; i++) {
      const lane = new Lane(`first${i}`, await makeRecipient('EC'));
      const killed = await runKeyanchorKilledAt(lane.args('create', lane.nextName()), { onEvent: 0, dir: lane.stateDir, file: KEK_FILE });
      const kek = path.join(lane.stateDir, KEK_FILE);
      const kekBytes = existsSync(kek) ? statSync(kek).size : 'absent';
      const next = await run(process.execPath, [BROKER_CLI, ...lane.args('create', lane.nextName())]);
      results.push({ landed: killed.killed, kekBytes, code: next.code, said: firstLine(next.stderr) });
      await lane.close();
    }
    console.log(`first command killed at KEK creation:\n${results.map((r) => `  kill ${r.landed ? 'landed' : 'missed'}, kek.bin ${r.kekBytes} bytes, next create exit ${r.code} ${r.said}`).join('\n')}`);
    for (const r of results) expect(r.code, `after a kill at KEK creation kek.bin holds ${r.kekBytes} bytes; the next command says: ${r.said}`).toBe(0);
  });

  it('a torn last audit line (simulated) fails every keys command and serve closed, until the file is moved aside', async () => {
    // A SIGKILL cannot tear a record (each is one write(2) of a few hundred bytes, O_APPEND); a short
    // write can (disk full). This pins down what happens then.
    const lane = new Lane('torn', await makeRecipient('EC'));
    await createMain(lane);
    const audit = path.join(lane.stateDir, 'audit.jsonl');
    const lines = verifyChain(readFileSync(audit, 'utf8')).lines;
    writeFileSync(audit, '{"seq":' + (lines + 1) + ',"prev":"0123', { flag: 'a' });
    const keystoreBefore = readFileSync(path.join(lane.stateDir, KEYSTORE_FILE), 'utf8');

    for (const args of [lane.args('list'), lane.args('rotate', lane.mainKey)]) {
      const r = await run(process.execPath, [BROKER_CLI, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toContain(`audit file ${audit} is broken at line ${lines + 1}`);
      expect(r.stderr).toContain('audit_chain_broken');
    }
    expect(readFileSync(path.join(lane.stateDir, KEYSTORE_FILE), 'utf8')).toBe(keystoreBefore);
    const verify = await run(process.execPath, [BROKER_CLI, '--config', lane.config, 'audit', 'verify']);
    expect(verify.code).toBe(3);
    expect(verify.stderr).toContain(`${audit}: the chain breaks at line ${lines + 1}`);
    const serve = await run(process.execPath, [BROKER_CLI, '--config', lane.config, 'serve', '--insecure-http', '--port', '0'], { timeoutMs: 20_000 });
    expect(serve.code).toBe(1);
    expect(serve.stderr).toContain(`refusing to start: audit file ${audit} is broken at line ${lines + 1}`);

    // The documented way out: move it aside; a new chain starts and no key was lost.
    renameSync(audit, `${audit}.torn`);
    await complete(lane, 'rotate');
    const fresh = verifyChain(readFileSync(audit, 'utf8'));
    expect(fresh.brokenAt).toBeUndefined();
    expect(fresh.lines).toBe(1);
    const keys = lane.service();
    for (const [id, want] of lane.expected) {
      const at = id.lastIndexOf('@');
      expect(await releasedFingerprint(keys, id.slice(0, at), Number(id.slice(at + 1)), lane.recipient)).toBe(want.fingerprint);
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
