/**
 * Readiness is true, with real processes and SoftHSM2: configured with `oaepHash: SHA-256` (the
 * docs' example value, which SoftHSM 2.6 does not implement), the broker starts, logs NOT READY,
 * `/readyz` answers 503 custody_unavailable naming custody.oaepHash, `keyanchor hsm status` exits 1
 * with the failed probe release, and the agent gives up after its bounded retries, saying so.
 * The same token with `oaepHash: SHA-1` is ready.
 */
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgent, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { createSoftHsm, softhsmAvailable, type SoftHsm } from '../helpers/softhsm.js';
import { writeSignedProgram, writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

const PIN_ENV = 'KEYANCHOR_HSM_PIN';

function get(url: string, ca: Buffer): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    }).on('error', reject);
  });
}

describe.skipIf(!softhsmAvailable())('readiness with an OAEP hash the token lacks (SoftHSM2, real processes)', () => {
  let hsm: SoftHsm;
  let w: World;
  let files: TlsWorldFiles;
  let env: NodeJS.ProcessEnv;
  let broker: BrokerProcess;
  const custody = (oaepHash: string) => ({ custody: { kind: 'pkcs11', module: hsm.module, token: { label: hsm.label }, pin: { env: PIN_ENV }, oaepHash } });
  const keyanchor = (...args: string[]) => runKeyanchor(['--config', files.config, ...args], env);

  beforeAll(async () => {
    hsm = createSoftHsm({ label: 'readiness' });
    w = await makeWorld();
    files = await writeTlsWorld(w, { config: custody('SHA-256') });
    env = { SOFTHSM2_CONF: hsm.conf, [PIN_ENV]: hsm.pin };
    expect((await keyanchor('hsm', 'init')).code).toBe(0);
    const created = await keyanchor('keys', 'create', '--init', APP_KEY); // AES only: works whatever the OAEP hash
    expect(created.code, created.stderr).toBe(0);
    broker = await startBrokerProcess(['--config', files.config, 'serve'], env);
  }, 60_000);

  afterAll(async () => {
    await broker?.stop();
    w?.cleanup();
    hsm?.cleanup();
  });

  it('/readyz: 503 custody_unavailable naming custody.oaepHash; the log has the HSM detail', async () => {
    const r = await get(`${broker.url}/readyz`, readFileSync(files.tlsCa));
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'custody_unavailable' });
    expect(r.body.detail).toBe('not ready: a release to an RSA-OAEP/SHA-256 recipient failed (custody.oaepHash SHA-256; SoftHSM 2.6 has SHA-1 only)');
    expect(JSON.stringify(r.body)).not.toMatch(/CKR_|softhsm2\.so/);
    expect(broker.output()).toMatch(/"msg":"NOT READY: custody cannot release \(see \/readyz\)"/);
    expect(broker.output()).toContain('CKR_');
  });

  it('hsm status: exit 1, the KEK is fine but the probe release failed', async () => {
    const r = await keyanchor('hsm', 'status');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('release:    AES_KEY_WRAP_PAD, AES_CMAC, RSA-OAEP/SHA-256, AES_GCM: FAILED: a release to an RSA-OAEP/SHA-256 recipient failed (custody.oaepHash SHA-256');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('NOT USABLE');
    const json = await keyanchor('hsm', 'status', '-o', 'json');
    expect(JSON.parse(json.stdout).probe).toMatchObject({ ran: true, ok: false });
  });

  it('the agent gives up after its bounded retries and says so (exit 30)', async () => {
    const prog = `${w.dir}/never-runs`;
    writeSignedProgram(w, prog, '#!/bin/sh\necho ran\n');
    const r = await runAgent(['exec', '--allow-shared-uid', '--broker', broker.url, '--ca', files.tlsCa, '--node-cert', files.nodeCert, '--node-key', files.nodeKey,
      '--retries', '1', '--key', `${APP_KEY}=K`, '--', prog]);
    expect(r.code).toBe(30);
    expect(r.stderr).toMatch(/^attest-agent: custody_unavailable: the broker's key custody is unavailable \(gave up after 2 attempts\) \(request [0-9a-f]+\)\n$/);
    expect(r.stdout).toBe('');
  });

  it('with oaepHash SHA-1 the same token is ready, and hsm status says the probe release went through', async () => {
    writeFileSync(files.config, JSON.stringify({ ...JSON.parse(readFileSync(files.config, 'utf8')), ...custody('SHA-1') }));
    const status = await keyanchor('hsm', 'status');
    expect(status.code, status.stdout).toBe(0);
    expect(status.stdout).toContain('RSA-OAEP/SHA-1, AES_GCM: a probe release went through');
    await broker.stop();
    broker = await startBrokerProcess(['--config', files.config, 'serve'], env);
    const r = await get(`${broker.url}/readyz`, readFileSync(files.tlsCa));
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: expect.objectContaining({ status: 'ready' }) });
  });
});
