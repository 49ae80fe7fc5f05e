/** The whole agent flow against a stub broker on 127.0.0.1 (no policy; real crypto). */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { attest } from '../../../attest-agent/src/attest.js';
import { runCli } from '../../../attest-agent/src/cli.js';
import { runExec, type ExecFlags } from '../../../attest-agent/src/commands/exec.js';
import { exitCodeFor } from '../../../attest-agent/src/exitCodes.js';
import { loadNodeIdentity } from '../../../attest-agent/src/nodeIdentity.js';
import { makeNodeCert, scratchDir } from './helpers.js';
import { startStubBroker, type StubBroker, type StubBrokerOptions } from './stubBroker.js';

const scratch = scratchDir();
const shm = scratchDir('agent-flow-', '/dev/shm');
const work = scratchDir('agent-work-', '/dev/shm');
const node = makeNodeCert(scratch.dir, 'P-256');
const identity = loadNodeIdentity(node);
const DB = { version: 3, bytes: randomBytes(32) };
const TLS = { version: 1, bytes: randomBytes(32) };
const SHA = 'b'.repeat(64);
const workload = { binary: { path: '/opt/app', sha256: SHA, signatures: [] } };

let broker: StubBroker | undefined;
const start = async (o: Partial<StubBrokerOptions> = {}) => (broker = await startStubBroker({ keys: { 'app/db': DB, 'app/tls': TLS }, ...o }));
afterEach(async () => { await broker?.close(); broker = undefined; });
afterAll(() => { scratch.remove(); shm.remove(); work.remove(); });

describe('attest()', () => {
  it('releases plaintext-form keys to an EC recipient', async () => {
    const b = await start({ recipientKeyTypes: ['EC'] });
    const r = await attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }, { name: 'app/tls', version: 1 }] });
    expect(r.keys.get('app/db')?.equals(DB.bytes)).toBe(true);
    expect(r.keys.get('app/tls')?.equals(TLS.bytes)).toBe(true);
    expect(r.versions.get('app/db')).toBe(3);
    expect(r.requestId).toBe('req-2');
    expect(b.evidence[0]?.cnf.jwk.kty).toBe('EC');
    expect(b.evidence[0]?.workload.binary.sha256).toBe(SHA);
  });

  it('releases cek-form keys to an RSA recipient', async () => {
    const b = await start({ recipientKeyTypes: ['RSA'], form: 'cek' });
    const r = await attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }] });
    expect(r.keys.get('app/db')?.equals(DB.bytes)).toBe(true);
    expect(b.evidence[0]?.cnf.jwk.kty).toBe('RSA');
  });

  it('retries the whole exchange (fresh nonce) after a 5xx on attest', async () => {
    const b = await start({ failures: [{ path: '/v1/attest', status: 503, code: 'custody_unavailable' }] });
    const r = await attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }], retry: { sleep: async () => undefined } });
    expect(r.keys.get('app/db')?.equals(DB.bytes)).toBe(true);
    expect(b.nonces).toHaveLength(2);
    expect(b.nonces[0]).not.toBe(b.nonces[1]);
  });

  it('does not retry a policy refusal, and reports its code and request id', async () => {
    const b = await start({ failures: [{ path: '/v1/attest', status: 403, code: 'software_not_approved' }] });
    await expect(attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }], retry: { sleep: async () => undefined } }))
      .rejects.toMatchObject({ code: 'software_not_approved', requestId: 'req-2' });
    expect(b.nonces).toHaveLength(1);
  });
});

const flags = (b: StubBroker, extra: Partial<ExecFlags> = {}): ExecFlags => ({
  broker: b.url, nodeCert: node.certFile, nodeKey: node.keyFile, key: [], sig: [], imageSig: [], timeoutMs: 5000, retries: 0, waitOnRateLimit: 0, workDir: work.dir, allowSharedUid: true, ...extra,
});

describe('exec', () => {
  it('runs the measured bytes with the keys delivered, then removes key files and the copy', async () => {
    const b = await start();
    const program = join(scratch.dir, 'app.sh');
    const out = join(scratch.dir, 'app.out');
    const keyFile = join(shm.dir, 'tls.key');
    writeFileSync(program, `#!/bin/sh\necho "original $DB_KEY $(base64 -w0 < ${keyFile})" > ${out}\nexit 42\n`, { mode: 0o755 });
    const measured = execFileSync('sha256sum', [program], { encoding: 'utf8' }).split(' ')[0];

    const status = await runExec(program, [], flags(b, { key: ['app/db=DB_KEY', `app/tls:file=${keyFile}`] }), {
      // between measurement and start: replace the program (the TOCTOU window a path-based exec would have)
      afterMeasure: () => writeFileSync(program, `#!/bin/sh\necho evil > ${out}\n`),
      env: { PATH: process.env.PATH },
    });
    expect(status).toBe(42);
    expect(readFileSync(out, 'utf8')).toBe(`original ${DB.bytes.toString('base64')} ${TLS.bytes.toString('base64')}\n`);
    expect(b.evidence[0]?.workload.binary).toEqual({ path: program, sha256: measured, signatures: [] });
    expect(existsSync(keyFile)).toBe(false);
    expect(readdirSync(work.dir)).toEqual([]);
  });

  it('via the CLI: passes everything after the program through as its arguments', async () => {
    const b = await start();
    const program = join(scratch.dir, 'args.sh');
    const out = join(scratch.dir, 'args.out');
    writeFileSync(program, `#!/bin/sh\nprintf '%s|' "$@" > ${out}\n[ -n "$DB_KEY" ]\n`, { mode: 0o755 });
    const status = await runCli(['node', 'attest-agent', 'exec', '--allow-shared-uid', '--broker', b.url, '--node-cert', node.certFile, '--node-key', node.keyFile,
      '--key', 'app/db=DB_KEY', '--work-dir', work.dir, '--retries', '0', '--', program, '--broker', 'x y', '--', '-k'], { out: () => undefined, err: () => undefined });
    expect(status).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe('--broker|x y|--|-k|');
  });

  it('refuses a key file off tmpfs before contacting the broker', async () => {
    const b = await start();
    await expect(runExec('/bin/true', [], flags(b, { key: [`app/db:file=${join(scratch.dir, 'k')}`] })))
      .rejects.toMatchObject({ code: 'tmpfs_refused' });
    expect(b.nonces).toHaveLength(0);
  });

  it('via the CLI: prints one line with code and request id, exits with the code status, cleans up', async () => {
    const b = await start({ failures: [{ path: '/v1/attest', status: 403, code: 'key_not_granted' }] });
    let err = '';
    const status = await runCli(['node', 'attest-agent', 'exec', '--allow-shared-uid', '--broker', b.url, '--node-cert', node.certFile, '--node-key', node.keyFile,
      '--key', 'app/db=DB_KEY', '--work-dir', work.dir, '--', '/bin/true'], { out: () => undefined, err: (t) => { err += t; } });
    expect(status).toBe(exitCodeFor('key_not_granted'));
    expect(err).toBe('attest-agent: key_not_granted: policy does not grant a requested key to this software (request req-2)\n');
    expect(readdirSync(work.dir)).toEqual([]);
  });
});

describe('fetch', () => {
  const fetchArgs = (b: StubBroker, ...rest: string[]) => ['node', 'attest-agent', 'fetch', '--broker', b.url, '--node-cert', node.certFile,
    '--node-key', node.keyFile, '--program', '/bin/true', '--key', 'app/db', '--key', 'app/tls@1', ...rest];

  it('prints {name: base64} on --stdout', async () => {
    const b = await start();
    let out = '';
    expect(await runCli(fetchArgs(b, '--stdout'), { out: (t) => { out += t; }, err: () => undefined })).toBe(0);
    expect(JSON.parse(out)).toEqual({ 'app/db': DB.bytes.toString('base64'), 'app/tls': TLS.bytes.toString('base64') });
    const { sha256 } = { sha256: execFileSync('sha256sum', ['/bin/true'], { encoding: 'utf8' }).split(' ')[0] };
    expect(b.evidence[0]?.workload.binary.sha256).toBe(sha256);
  });

  it('writes --out 0400 on tmpfs, refuses to overwrite, refuses disk', async () => {
    const b = await start();
    const io = { out: () => undefined, err: () => undefined };
    const out = join(shm.dir, 'keys.json');
    expect(await runCli(fetchArgs(b, '--out', out), io)).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o400);
    expect(JSON.parse(readFileSync(out, 'utf8'))['app/db']).toBe(DB.bytes.toString('base64'));
    expect(await runCli(fetchArgs(b, '--out', out), io)).toBe(exitCodeFor('delivery_failed'));
    expect(await runCli(fetchArgs(b, '--out', join(scratch.dir, 'keys.json')), io)).toBe(exitCodeFor('tmpfs_refused'));
    expect(await runCli(fetchArgs(b), io)).toBe(exitCodeFor('usage'));
  });
});
