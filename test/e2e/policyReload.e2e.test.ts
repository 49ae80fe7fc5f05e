/**
 * Policy reloads with real `keyanchor serve` processes: a signed policy good → bad → good over
 * SIGHUP, every hostile file of issue 6 on SIGHUP (the broker survives each and keeps releasing),
 * a reload triggered by the directory watch, a rollback after a restart, and a rollback on a
 * second replica that shares the state directory (the file-backed high-water mark; with the
 * PostgreSQL store the same mark is shared by replicas on other hosts). Expiry while running
 * uses an in-process broker (the clock is injected) and the agent CLI. Bundles are signed with
 * the `keyanchor policy sign` CLI.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../attest-agent/src/exitCodes.js';
import { startBroker } from '../../src/broker.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { openStore } from '../../src/store/index.js';
import { auditRecords } from '../helpers/audit.js';
import { runAgent, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { testKey, type TestKey } from '../helpers/policyBundles.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World;
let root: TestKey;
const running: BrokerProcess[] = [];

beforeAll(async () => {
  w = await makeWorld();
  root = testKey('p256');
  writeFileSync(path.join(w.dir, 'root.key'), root.privatePem, { mode: 0o600 });
  writeFileSync(path.join(w.dir, 'root.pub'), root.publicPem);
  writeFileSync(path.join(w.dir, 'node.pem'), w.node.certPem);
  writeFileSync(path.join(w.dir, 'node.key'), w.node.keyPem, { mode: 0o600 });
  writeFileSync(`${w.app.path}.sig`, w.app.sig);
  const r = await runKeyanchor(['--config', config('unsigned.json', {}), 'keys', 'create', '--init', APP_KEY]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await Promise.all(running.map((b) => b.stop()));
  w?.cleanup();
});

/** A config file in the world's directory; plain HTTP on loopback, no dev mode. */
function config(name: string, extra: Record<string, unknown>, policyDir = w.policyDir): string {
  const file = path.join(w.dir, name);
  writeFileSync(file, JSON.stringify({ stateDir: w.stateDir, policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'info' }, ...extra }));
  return file;
}
const signedConfig = (name: string, policyDir: string, watch = false) => config(name, { policy: { root: { keys: ['root.pub'], threshold: 1 }, requireSignedPolicy: true, watch } }, policyDir);

async function sign(dir: string, version: number, expires = '30d'): Promise<void> {
  const r = await runKeyanchor(['policy', 'sign', '--key', path.join(w.dir, 'root.key'), '--version', String(version), '--expires', expires, dir]);
  expect(r.code, r.stderr).toBe(0);
}

async function serve(cfg: string): Promise<BrokerProcess> {
  const b = await startBrokerProcess(['--config', cfg, 'serve']);
  running.push(b);
  return b;
}

/** JSON log lines the broker printed after `from` characters of output. */
const logs = (b: BrokerProcess, from = 0) =>
  b.output().slice(from).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });

async function reloadVia(b: BrokerProcess, trigger: () => void): Promise<Record<string, unknown> & { msg: string }> {
  const from = b.output().length;
  trigger();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const line = logs(b, from).find((l) => /^policy (loaded|reloaded: unchanged|reload refused)/.test(l.msg));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no reload outcome logged:\n${b.output().slice(from)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const sighup = (b: BrokerProcess) => reloadVia(b, () => b.proc.kill('SIGHUP'));

async function attest(b: BrokerProcess): Promise<{ status: number; code?: string }> {
  const c = (await (await fetch(`${b.url}/v1/challenge`, { method: 'POST' })).json()) as { nonce: string };
  const { compact } = await makeEvidence(w, { nonce: c.nonce });
  const res = await fetch(`${b.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ evidence: compact }) });
  const body = (await res.json()) as { code?: string };
  return { status: res.status, ...(body.code ? { code: body.code } : {}) };
}

/** The policy version named by the last audit record. */
const lastAuditPolicy = async () => {
  // The brokers share the SQLite store of the state directory; read it the way a second process would.
  const store = await openStore(parseConfig(JSON.stringify({ stateDir: w.stateDir }), { file: path.join(w.dir, 'read.json') }).store, { clock: systemClock });
  try {
    const releases = (await auditRecords(store.read)).filter((r) => r.event === 'release');
    return (releases.at(-1) as { policy?: { version: number | null } }).policy;
  } finally {
    await store.close();
  }
};

describe('a signed policy on SIGHUP: good → bad → good', () => {
  it('a change without a signature is refused and the signed version stays; a new signed version loads', async () => {
    const dir = path.join(w.dir, 'signed');
    cpSync(w.policyDir, dir, { recursive: true });
    await sign(dir, 1);
    const b = await serve(signedConfig('signed.json', dir));
    expect(await attest(b)).toEqual({ status: 200 });
    expect(await lastAuditPolicy()).toMatchObject({ version: 1 });

    writeFileSync(path.join(dir, 'test.yaml'), readFileSync(path.join(dir, 'test.yaml'), 'utf8').replace('zones: [z1]', 'zones: [z1] # loosened'));
    expect(await sighup(b)).toMatchObject({ msg: 'policy reload refused; the policy in force stays', code: 'policy_file_altered', trigger: 'sighup' });
    expect(await attest(b)).toEqual({ status: 200 });
    expect(await lastAuditPolicy()).toMatchObject({ version: 1 });

    await sign(dir, 2);
    expect(await sighup(b)).toMatchObject({ msg: 'policy loaded', version: 2, signed: true });
    expect(await attest(b)).toEqual({ status: 200 });
    expect(await lastAuditPolicy()).toMatchObject({ version: 2 });
    await b.stop();
  });
});

describe('hostile files on SIGHUP: the broker survives each and keeps releasing', () => {
  let b: BrokerProcess;
  let dir: string;
  beforeAll(async () => {
    dir = path.join(w.dir, 'hostile');
    cpSync(w.policyDir, dir, { recursive: true });
    b = await serve(config('hostile.json', { policy: { watch: false } }, dir));
  });
  afterAll(() => b?.stop());

  const cases: Array<[string, (d: string) => void, string]> = [
    ['a *.yaml symlink to /dev/zero', (d) => symlinkSync('/dev/zero', path.join(d, 'zero.yaml')), 'a symbolic link that leaves the policy directory (to /dev/zero)'],
    ['a FIFO named *.yaml', (d) => execFileSync('mkfifo', [path.join(d, 'pipe.yaml')]), 'not a regular file (a FIFO)'],
    ['a directory named *.yaml', (d) => mkdirSync(path.join(d, 'dir.yaml')), 'a directory named like a policy file'],
    ['a dangling symlink', (d) => symlinkSync('nowhere.yaml', path.join(d, 'dangling.yaml')), 'a dangling symbolic link'],
    ['a symlink loop', (d) => (symlinkSync('loop2.yaml', path.join(d, 'loop1.yaml')), symlinkSync('loop1.yaml', path.join(d, 'loop2.yaml'))), 'a symbolic link loop'],
    ['an alias bomb', (d) => writeFileSync(path.join(d, 'bomb.yaml'), 'a: &a [x, x, x, x, x, x, x, x, x, x]\n' + Array.from({ length: 9 }, (_, i) => `a${i}: &a${i} [${Array(10).fill(i ? `*a${i - 1}` : '*a').join(', ')}]`).join('\n')), 'an alias bomb'],
    ['a 50 MB policy file', (d) => (writeFileSync(path.join(d, 'big.yaml'), ''), truncateSync(path.join(d, 'big.yaml'), 50 * 1024 * 1024)), 'larger than the 16 MiB limit'],
    ['a Latin-1 file', (d) => writeFileSync(path.join(d, 'latin1.yaml'), Buffer.from('zones:\n  - name: caf\xe9\n', 'latin1')), 'is not UTF-8 (Latin-1?)'],
    ['a UTF-16 file', (d) => writeFileSync(path.join(d, 'utf16.yaml'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('zones: []\n', 'utf16le')])), 'UTF-16 text'],
    ['a certificate read from /dev/zero', (d) => writeFileSync(path.join(d, 'zero-cert.yaml'), 'nodeCAs:\n  - name: zero\n    certificate: { file: /dev/zero }\n'), '/dev/zero: not a regular file (a character device)'],
  ];

  for (const [name, make, message] of cases) {
    it(name, async () => {
      const before = readdirNames(dir);
      make(dir);
      const line = await sighup(b);
      expect(line).toMatchObject({ msg: 'policy reload refused; the policy in force stays', code: 'policy_invalid' });
      expect((line.problems as string[]).join('\n')).toContain(message);
      expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
      expect(await attest(b)).toEqual({ status: 200 });
      for (const n of readdirNames(dir)) if (!before.includes(n)) rmSync(path.join(dir, n), { recursive: true, force: true });
    });
  }

  it('and loads the directory again once it is clean', async () => {
    writeFileSync(path.join(dir, 'extra.yaml'), '# an extra team\nteams:\n  - name: sec\n    role: security\n    members: ["jwt:group:sec"]\n');
    expect(await sighup(b)).toMatchObject({ msg: 'policy loaded', signed: false });
  });
});

const readdirNames = (d: string) => execFileSync('ls', ['-A', d], { encoding: 'utf8' }).split('\n').filter(Boolean);

describe('the directory watch', () => {
  it('a saved change reloads the policy without a signal', async () => {
    const dir = path.join(w.dir, 'watched');
    cpSync(w.policyDir, dir, { recursive: true });
    const b = await serve(config('watched.json', { policy: { watch: true, watchDebounceMs: 100 } }, dir));
    const line = await reloadVia(b, () => writeFileSync(path.join(dir, 'more.yaml'), '# more\nteams:\n  - name: sec\n    role: security\n    members: ["jwt:group:sec"]\n'));
    expect(line).toMatchObject({ msg: 'policy loaded', files: expect.arrayContaining([expect.stringMatching(/more\.yaml$/)]) });
    await b.stop();
  });
});

describe('rollback', () => {
  it('after a restart: the older bundle is refused and the broker does not start', async () => {
    const dir = path.join(w.dir, 'restart');
    cpSync(w.policyDir, dir, { recursive: true });
    await sign(dir, 10);
    const v10 = readFileSync(path.join(dir, 'policy.dsse'));
    await sign(dir, 11);
    const b = await serve(signedConfig('restart.json', dir));
    await b.stop();
    writeFileSync(path.join(dir, 'policy.dsse'), v10);
    const r = await runKeyanchor(['--config', path.join(w.dir, 'restart.json'), 'serve']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^keyanchor: refusing to start: policy refused \(policy_rollback\)\n {2}\S+policy\.dsse:1:1 \(bundle\): policy_rollback: version 10 \(root version 1\) is below version 11 \(root version 1\), the highest accepted before\n$/);
  });

  it("on a second replica sharing the state directory's store (the PostgreSQL store shares it across hosts)", async () => {
    const dirA = path.join(w.dir, 'replica-a');
    const dirB = path.join(w.dir, 'replica-b');
    cpSync(w.policyDir, dirA, { recursive: true });
    await sign(dirA, 20);
    cpSync(dirA, dirB, { recursive: true });
    const v20 = readFileSync(path.join(dirA, 'policy.dsse'));
    const a = await serve(signedConfig('replica-a.json', dirA));
    const b = await serve(signedConfig('replica-b.json', dirB));
    await sign(dirA, 21);
    expect(await sighup(a)).toMatchObject({ msg: 'policy loaded', version: 21 });
    cpSync(path.join(dirA, 'policy.dsse'), path.join(dirB, 'policy.dsse'));
    expect(await sighup(b)).toMatchObject({ msg: 'policy loaded', version: 21 });
    // Someone on replica B's host puts the older bundle back: refused, B stays on 21.
    writeFileSync(path.join(dirB, 'policy.dsse'), v20);
    expect(await sighup(b)).toMatchObject({ msg: 'policy reload refused; the policy in force stays', code: 'policy_rollback' });
    expect(await attest(b)).toEqual({ status: 200 });
    expect(await lastAuditPolicy()).toMatchObject({ version: 21 });
    await Promise.all([a.stop(), b.stop()]);
  });
});

describe('expiry while running (in-process broker, injected clock, the agent CLI)', () => {
  it('the agent gets policy_expired once the bundle expires, and its key again after a fresh bundle', async () => {
    const dir = path.join(w.dir, 'expiring');
    cpSync(w.policyDir, dir, { recursive: true });
    rmSync(path.join(dir, 'policy.dsse'), { force: true });
    await sign(dir, 30, '1d');
    const clock = new ManualClock(Date.now());
    const cfg = parseConfig(readFileSync(signedConfig('expiring.json', dir), 'utf8'), { file: path.join(w.dir, 'expiring.json') });
    const broker = await startBroker(cfg, { clock, log: createLogger('silent') });
    const agent = () =>
      runAgent(['exec', '--allow-shared-uid', '--broker', broker.url, '--node-cert', path.join(w.dir, 'node.pem'), '--node-key', path.join(w.dir, 'node.key'), '--retries', '0', '--key', `${APP_KEY}=APP_KEY`, '--', w.app.path]);
    try {
      expect((await agent()).code).toBe(0);
      clock.advance(86_400_000 + 1000);
      const refused = await agent();
      expect(refused.code).toBe(EXIT_CODES.policy_expired);
      await sign(dir, 31, '7d');
      expect(await broker.reloadPolicy()).toMatchObject({ outcome: 'loaded', version: 31 });
      clock.set(Date.now()); // back to the agent's time, so its evidence is within the clock skew
      expect((await agent()).code).toBe(0);
    } finally {
      await broker.close();
    }
  });
});
