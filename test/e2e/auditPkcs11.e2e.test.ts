/**
 * The audit signing key in the HSM, end to end with real processes and a real token (SoftHSM2):
 * the first command that writes a record makes an EC P-256 key pair on the token whose private
 * half is sensitive, never extractable and can only sign; `keyanchor audit key` gives its public
 * key, whose id is the SHA-256 openssl computes of it; a checkpoint signed inside the token
 * verifies with `openssl dgst -sha256 -verify` (docs/operations.md quotes that command) and with
 * `keyanchor audit verify --key --against`; one changed byte fails both.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/deps.js';
import { ROOT, runKeyanchor } from '../helpers/processes.js';
import { createSoftHsm, softhsmAvailable, type SoftHsm } from '../helpers/softhsm.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

const PIN_ENV = 'KEYANCHOR_HSM_PIN';

describe.skipIf(!softhsmAvailable({ pkcs11Tool: true }) || !requireTool('openssl', 'verifying audit checkpoints with openssl'))('audit checkpoints signed in the HSM (SoftHSM2, openssl)', () => {
  let hsm: SoftHsm;
  let w: World;
  let files: TlsWorldFiles;
  let env: NodeJS.ProcessEnv;
  const keyanchor = (...args: string[]) => runKeyanchor(['--config', files.config, ...args], env);
  const f = (name: string) => path.join(w.dir, name);

  beforeAll(async () => {
    hsm = createSoftHsm({ label: 'keyanchor-audit-e2e' });
    w = await makeWorld();
    files = await writeTlsWorld(w, { config: { custody: { kind: 'pkcs11', module: hsm.module, token: { label: hsm.label }, pin: { env: PIN_ENV }, oaepHash: 'SHA-1' } } });
    env = { SOFTHSM2_CONF: hsm.conf, [PIN_ENV]: hsm.pin };
    expect((await keyanchor('hsm', 'init')).code).toBe(0);
    const created = await keyanchor('keys', 'create', '--init', APP_KEY);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).not.toContain('warning');
  });

  afterAll(() => {
    w?.cleanup();
    hsm?.cleanup();
  });

  it('the token holds the audit key pair: the private key sensitive, never extractable, for signing only', () => {
    const listing = hsm.pkcs11Tool(['--list-objects', '--type', 'privkey']);
    const audit = listing.split(/\n(?=\S)/).find((o) => o.includes('label:      keyanchor-audit'))!;
    expect(audit).toMatch(/^Private Key Object; EC/);
    expect(audit).toMatch(/Usage: +sign\n/);
    expect(audit).toMatch(/Access: +sensitive, always sensitive, never extractable, local/);
  });

  it('`audit key` prints the public key; its id is the SHA-256 of its DER form, as openssl computes it', async () => {
    const k = await keyanchor('audit', 'key', '--out', f('audit.pub'));
    expect(k.code, k.stderr).toBe(0);
    const id = /audit signing key ([0-9a-f]{64}) \(pkcs11 custody\)/.exec(k.stderr)![1];
    const der = execFileSync('openssl', ['pkey', '-pubin', '-in', f('audit.pub'), '-outform', 'DER']);
    expect(execFileSync('sha256sum', { input: der }).toString().split(' ')[0]).toBe(id);
    expect(execFileSync('openssl', ['pkey', '-pubin', '-in', f('audit.pub'), '-noout', '-text']).toString()).toContain('NIST CURVE: P-256');
  });

  it('a checkpoint signed in the token verifies with openssl and with `audit verify`; a changed byte fails both', async () => {
    // `keys create` signed a checkpoint of its own records before it exited: nothing is left to sweep.
    const cp = await keyanchor('audit', 'checkpoint', '--out', f('cp'), '-o', 'json');
    expect(cp.code, cp.stderr).toBe(0);
    expect(JSON.parse(cp.stdout)).toMatchObject({ entries: [], refused: [] });
    expect(readFileSync(f('cp.txt'), 'utf8')).toMatch(/^keyanchor-audit-checkpoint\/1\nstore \S+\nlog 1\n[^]*\nbasis writer\nkey [0-9a-f]{64}\n$/);

    // The exact command docs/operations.md gives, run where cp.txt, cp.sig and audit.pub are.
    const doc = readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
    const command = /^(openssl dgst -sha256 -verify audit\.pub -signature cp\.sig cp\.txt) /m.exec(doc)![1]!.split(' ');
    const ok = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', cwd: w.dir });
    expect({ status: ok.status, stdout: ok.stdout }).toEqual({ status: 0, stdout: 'Verified OK\n' });
    const v = await keyanchor('audit', 'verify', '--key', f('audit.pub'), '--against', f('cp.txt'));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('every signature verified with the 1 key(s) given');
    expect(v.stdout).toContain('the store holds the witnessed checkpoint');

    writeFileSync(f('bad.txt'), readFileSync(f('cp.txt'), 'utf8').replace(/^seq (\d+)$/m, (_, s: string) => `seq ${Number(s) + 1}`));
    writeFileSync(f('bad.sig'), readFileSync(f('cp.sig')));
    const bad = spawnSync('openssl', ['dgst', '-sha256', '-verify', f('audit.pub'), '-signature', f('bad.sig'), f('bad.txt')], { encoding: 'utf8' });
    expect({ status: bad.status, stdout: bad.stdout }).toEqual({ status: 1, stdout: 'Verification failure\n' });
    const vb = await keyanchor('audit', 'verify', '--key', f('audit.pub'), '--against', f('bad.txt'));
    expect(vb.code).toBe(3);
    expect(vb.stderr).toMatch(/against the witnessed checkpoint \(entry \d+\): the witnessed checkpoint is not signed by any of the keys given\n$/);
  });
});
