/**
 * The agent as it ships: `npm pack` in attest-agent/, `npm install -g` of the tarball into an empty
 * prefix (offline: the package has no dependencies), then the installed `attest-agent` — no
 * TypeScript, no broker packages — attests against a real broker process.
 *
 * Node-key isolation with real processes: as root, `exec --user nobody` starts a program that
 * cannot open the node key, cannot read the agent's environment, and cannot get another program's
 * keys with `attest-agent fetch --program /bin/true` itself; it runs with uid and gid nobody/nogroup
 * and no supplementary groups, and its key file is its own (0400). Needs root: CI runs as root; a
 * developer's run as another user skips that part with a loud message (and fails under CI).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';
import { ROOT, run, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { writeSignedProgram, writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  const msg = 'not running as root: the uid-drop tests of attest-agent exec --user cannot run';
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`${msg} (CI runs as root)`);
  console.warn(`\n*** SKIPPING: ${msg}. Run as root (CI does) to run them. ***\n`);
}
const NOBODY = { uid: 65534, gid: 65534 };

let w: World;
let pub: string;
let files: TlsWorldFiles;
let broker: BrokerProcess;
let prefix: string;
let agent: string;
let shm: string;

beforeAll(async () => {
  w = await makeWorld();
  // A directory every user can search: certificates, the program and its signature. The node key
  // sits in it too, root-owned 0600: the mode bits alone keep it from other users.
  pub = mkdtempSync(path.join(tmpdir(), 'keyanchor-installed-'));
  chmodSync(pub, 0o755);
  files = await writeTlsWorld(w, { dir: pub });
  for (const f of [files.tlsCa, files.nodeCert]) chmodSync(f, 0o644);
  const created = await runKeyanchor(['--config', files.config, 'keys', 'create', '--init', APP_KEY]);
  expect(created.code, created.stderr).toBe(0);
  broker = await startBrokerProcess(['--config', files.config, 'serve']);

  const pack = path.join(pub, 'pack');
  prefix = path.join(pub, 'prefix');
  mkdirSync(pack);
  execFileSync('npm', ['pack', '--silent', '--pack-destination', pack], { cwd: path.join(ROOT, 'attest-agent'), stdio: ['ignore', 'pipe', 'inherit'] });
  const tgz = readdirSync(pack).find((f) => f.endsWith('.tgz'));
  expect(tgz).toBeDefined();
  execFileSync('npm', ['install', '-g', '--offline', '--no-audit', '--no-fund', '--prefix', prefix, path.join(pack, tgz!)], { stdio: ['ignore', 'pipe', 'inherit'] });
  agent = path.join(prefix, 'bin', 'attest-agent');
  shm = mkdtempSync('/dev/shm/keyanchor-installed-');
  chmodSync(shm, 0o711); // the program's user may open its key file by name, not list the directory
}, 180_000);

afterAll(async () => {
  await broker?.stop();
  if (shm) rmSync(shm, { recursive: true, force: true });
  if (pub) rmSync(pub, { recursive: true, force: true });
  w?.cleanup();
});

const common = () => ['--broker', broker.url, '--ca', files.tlsCa, '--node-cert', files.nodeCert, '--node-key', files.nodeKey, '--retries', '0'];
const releases = () => broker.output().split('\n').filter((l) => l.includes('"keys released"')).length;

describe('the packed attest-agent, installed into an empty prefix', () => {
  it('holds the bundle, its bin, README and LICENSE, and nothing else: no dependencies, no TypeScript', () => {
    const pkg = path.join(prefix, 'lib', 'node_modules', 'attest-agent');
    const list = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? list(path.join(d, e.name)) : [path.relative(pkg, path.join(d, e.name))]));
    expect(list(pkg).sort()).toEqual(['LICENSE', 'README.md', 'bin/attest-agent.js', 'dist/attest-agent.mjs', 'package.json']);
    expect(JSON.parse(readFileSync(path.join(pkg, 'package.json'), 'utf8')).dependencies).toBeUndefined();
  });

  it('--version prints the package version', async () => {
    const r = await run(agent, ['--version']);
    const version = JSON.parse(readFileSync(path.join(ROOT, 'attest-agent', 'package.json'), 'utf8')).version;
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: `${version}\n` });
  });

  it('exec attests against the broker and runs the program with its key', async () => {
    const prog = path.join(pub, 'hello');
    writeSignedProgram(w, prog, '#!/bin/sh\necho "hello: $(printf %s "$APP_KEY" | base64 -d | wc -c) key bytes"\n');
    const r = await run(agent, ['exec', '--allow-shared-uid', ...common(), '--key', `${APP_KEY}=APP_KEY`, '--', prog]);
    expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code: 0, stderr: '', stdout: 'hello: 32 key bytes\n' });
  });
});

describe.runIf(isRoot)('exec --user: the program cannot reach the node key (real uid drop, as root)', () => {
  /** A program that reports who it is, what it received, and what it could not do. */
  const probe = (keyFile: string) => `#!/bin/sh
echo "ids $(id -u) $(id -g) groups=$(id -G)"
grep '^Groups:' /proc/self/status
echo "env-key ${'$'}{#APP_KEY}"
${keyFile ? `echo "keyfile $(stat -c '%u %a' ${keyFile}) $(wc -c < ${keyFile})"` : ''}
cat ${files.nodeKey} >/dev/null 2>&1 && echo "node key: READ" || echo "node key: denied"
cat /proc/$PPID/environ >/dev/null 2>&1 && echo "agent environ: READ" || echo "agent environ: denied"
${agent} fetch ${common().join(' ')} --program /bin/true --key ${APP_KEY} --stdout 2>/tmp/.keyanchor-fetch-err-$$ >/dev/null
echo "fetch exit $?: $(cat /tmp/.keyanchor-fetch-err-$$)"
rm -f /tmp/.keyanchor-fetch-err-$$
`;

  it('runs as nobody:nogroup with no other groups; the node key, the agent and other programs\' keys are out of reach', async () => {
    const keyFile = path.join(shm, 'app.key');
    const prog = path.join(pub, 'probe-file');
    writeSignedProgram(w, prog, probe(keyFile));
    const before = releases();
    const r = await run(agent, ['exec', '--user', 'nobody', ...common(), '--key', `${APP_KEY}:file=${keyFile}`, '--', prog]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`ids ${NOBODY.uid} ${NOBODY.gid} groups=${NOBODY.gid}`);
    expect(lines[1]).toMatch(/^Groups:\s*$/); // setgroups(0, NULL): no supplementary groups at all
    expect(lines.slice(2)).toEqual([
      'env-key 0',
      `keyfile ${NOBODY.uid} 400 32`,
      'node key: denied',
      'agent environ: denied',
      `fetch exit 2: attest-agent: config: cannot read node key ${files.nodeKey}: EACCES`,
    ]);
    expect(releases()).toBe(before + 1); // the exec's own release, nothing for the program's fetch
    expect(readdirSync(shm)).toEqual([]);
  });

  it('an env key is in the program\'s environment, as nobody', async () => {
    const prog = path.join(pub, 'probe-env');
    writeSignedProgram(w, prog, probe(''));
    const r = await run(agent, ['exec', '--user', 'nobody', '--group', 'nogroup', ...common(), '--key', `${APP_KEY}=APP_KEY`, '--', prog]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('env-key 44\n'); // 32 bytes, base64
    expect(r.stdout).toContain('node key: denied\n');
  });

  it('refuses, before attesting, a user that could read the node key, and says why', async () => {
    const prog = path.join(pub, 'never-runs');
    writeSignedProgram(w, prog, '#!/bin/sh\necho ran\n');
    const before = releases();
    const own = await run(agent, ['exec', ...common(), '--key', `${APP_KEY}=K`, '--', prog]);
    expect(own.code).toBe(47);
    expect(own.stderr).toMatch(/^attest-agent: node_key_exposed: refusing to start the program as the agent's own user: uid 0 is the agent's own/);
    const root = await run(agent, ['exec', '--user', 'root', ...common(), '--key', `${APP_KEY}=K`, '--', prog]);
    expect(root.code).toBe(47);
    chmodSync(files.nodeKey, 0o644);
    try {
      const r = await run(agent, ['exec', '--user', 'nobody', ...common(), '--key', `${APP_KEY}=K`, '--', prog]);
      expect(r.code).toBe(47);
      expect(r.stderr).toContain(`refusing to start the program as uid 65534 gid 65534: ${files.nodeKey} (owner 0, group 0, mode 0644) is readable by others`);
      expect(r.stdout).toBe('');
    } finally {
      chmodSync(files.nodeKey, 0o600);
    }
    expect(releases()).toBe(before);
  });
});
