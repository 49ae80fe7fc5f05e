/**
 * The `keyanchor` command line as an operator meets it, with real processes: dev mode only when
 * asked (a config without `dev:` makes no dev material and prints no banner; `serve --dev` does),
 * the config it uses said on stderr when it was not named, `config check` on real files, the
 * version, and a short usage line after a typo.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_CLI, ROOT, run, startBrokerProcess } from '../helpers/processes.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { makeWorld, type World } from '../helpers/world.js';

let w: World;
let files: TlsWorldFiles;
let cwd: string;

/** The CLI in `cwd` without any KEYANCHOR_* variable but those given. */
const keyanchor = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYANCHOR_')));
  return run(process.execPath, [BROKER_CLI, ...args], { cwd, env: { ...clean, ...env }, timeoutMs: 20_000 });
};

beforeAll(async () => {
  w = await makeWorld();
  files = await writeTlsWorld(w, { config: { stateDir: path.join(w.dir, 'prod-state') } });
  cwd = mkdtempSync(path.join(tmpdir(), 'keyanchor-cli-e2e-'));
});
afterAll(() => {
  rmSync(cwd, { recursive: true, force: true });
  w?.cleanup();
});

describe('dev mode only when asked', () => {
  it('a config without `dev:` starts with no dev CA, no demo credentials, no demo key and no banner', async () => {
    expect(JSON.parse(readFileSync(files.config, 'utf8')).dev).toEqual({ enabled: false });
    const config = path.join(w.dir, 'no-dev.json');
    const { dev: _dev, ...rest } = JSON.parse(readFileSync(files.config, 'utf8'));
    writeFileSync(config, JSON.stringify(rest));
    const broker = await startBrokerProcess(['--config', config, 'serve']);
    await broker.stop();
    const state = path.join(w.dir, 'prod-state');
    expect(readdirSync(state).sort()).toEqual(['audit-signing.pem', 'kek.bin', 'keyanchor.db']); // the audit signing key beside the KEK (software custody)
    expect(broker.output()).not.toMatch(/DEV MODE|dev TLS CA|demo/);
  });

  it('the embedded defaults without --dev: refuses to start for want of TLS, and makes no dev material', async () => {
    const r = await keyanchor(['serve', '--port', '0'], { KEYANCHOR_POLICY_DIR: w.policyDir });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `keyanchor: using the embedded defaults (no --config, KEYANCHOR_CONFIG or /etc/keyanchor/config.yaml), state dir ${path.join(cwd, 'state')}\n` +
        'keyanchor: refusing to start: no TLS certificate configured: set tls.cert and tls.key (or, on a laptop, run with --dev)\n',
    );
    expect(existsSync(path.join(cwd, 'state', 'tls'))).toBe(false);
    expect(existsSync(path.join(cwd, 'state', 'dev'))).toBe(false);
  });

  it('serve --dev: a banner, then the dev CA, demo credentials and the demo key', async () => {
    const broker = await startBrokerProcess(['serve', '--dev', '--port', '0'], { KEYANCHOR_STATE_DIR: path.join(cwd, 'dev-state'), KEYANCHOR_POLICY_DIR: w.policyDir });
    await broker.stop();
    expect(broker.output()).toContain('keyanchor: DEV MODE (--dev or dev.enabled)');
    expect(broker.output()).toContain(`"tlsCa":"${path.join(cwd, 'dev-state', 'tls', 'ca.pem')}"`);
    expect(readdirSync(path.join(cwd, 'dev-state')).sort()).toEqual(['audit-signing.pem', 'dev', 'kek.bin', 'keyanchor.db', 'tls']);
    const listed = await keyanchor(['keys', 'list'], { KEYANCHOR_STATE_DIR: path.join(cwd, 'dev-state') });
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((k) => k.name)).toEqual(['demo/app-key']);
  });
});

describe('which config', () => {
  it('KEYANCHOR_CONFIG is used and announced on stderr; --config is not announced', async () => {
    const viaEnv = await keyanchor(['config', 'check'], { KEYANCHOR_CONFIG: files.config });
    expect(viaEnv.code, viaEnv.stdout).toBe(0);
    expect(viaEnv.stderr).toBe(`keyanchor: using config ${files.config} (from KEYANCHOR_CONFIG), state dir ${path.join(w.dir, 'prod-state')}\n`);
    const viaFlag = await keyanchor(['--config', files.config, 'config', 'check']);
    expect({ code: viaFlag.code, stderr: viaFlag.stderr }).toEqual({ code: 0, stderr: '' });
  });
});

describe('keyanchor config check', () => {
  it('a deployable config: every check ok, exit 0', async () => {
    const r = await keyanchor(['config', 'check', files.config]);
    expect(r.code, r.stdout).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(files.config);
    expect(lines.slice(1, -1).map((l) => l.slice(0, 16).trim())).toEqual(['ok      config', 'ok      tls', 'ok      policy', 'ok      stateDir']);
    expect(lines.at(-1)).toBe('config OK');
  });

  it('a missing key file, an invalid policy and an unknown option: exit 3, each named', async () => {
    const bad = path.join(w.dir, 'bad.json');
    const policyDir = path.join(w.dir, 'bad-policies');
    mkdirSync(policyDir, { recursive: true });
    writeFileSync(path.join(policyDir, 'p.yaml'), 'software:\n  - name: x\n    binary: { digests: ["nothex"] }\n    grants: []\n');
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync(files.config, 'utf8')), policyDir, tls: { cert: files.tlsCert, key: path.join(w.dir, 'gone.key') } }));
    const r = await keyanchor(['config', 'check', bad, '-o', 'json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ check: string; ok: boolean; details: string[] }> };
    expect(report.ok).toBe(false);
    const failed = Object.fromEntries(report.checks.filter((c) => !c.ok).map((c) => [c.check, c.details]));
    expect(failed.tls).toEqual([`cannot read ${path.join(w.dir, 'gone.key')} (ENOENT)`]);
    expect(failed.policy?.[0]).toMatch(/p\.yaml:3:\d+ software\[0\]\.binary\.digests\[0\]: lowercase hex sha256/);

    writeFileSync(bad, JSON.stringify({ colour: 'blue' }));
    const unknown = await keyanchor(['config', 'check', bad]);
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toBe(`${bad}\nPROBLEM config   ${bad}:1:2 colour: unknown key "colour"\n1 check(s) failed\n`);
    unlinkSync(bad);
  });
});

describe('the command line itself', () => {
  it('--version prints package.json\'s version', async () => {
    const r = await keyanchor(['--version']);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: `${JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}\n` });
  });

  it('a flag typo: the error, one usage line and where the help is; exit 2', async () => {
    const r = await keyanchor(['serve', '--prot', '8443']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: unknown option '--prot'\n(Did you mean --port?)\nusage: keyanchor serve [options]\n(run `keyanchor serve --help` for the options and examples)\n");
    expect(r.stdout).toBe('');
  });
});
