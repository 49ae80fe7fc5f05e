/**
 * `keyanchor --broker URL …` against a real `keyanchor serve` process over TLS: the key lifecycle
 * and the suspension commands through the admin API, authenticated by a bearer token (env or
 * file) or a client certificate, printing what the local commands print (`-o json|text`); the
 * broker's refusals as one line with their code; local-only commands and bad remote options
 * refused (exit 2). A suspension set by the local CLI on the broker host is enforced by the running
 * broker through the change feed. Tokens and certificates are made at test time.
 */
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '../../src/pki.js';
import { runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ISSUER = 'https://idp.remote.test';
const AUDIENCE = 'keyanchor-admin';

let w: World;
let files: TlsWorldFiles;
let broker: BrokerProcess;
let idpKey: CryptoKey;
let ownerToken: string;
let secToken: string;
const f = (n: string) => path.join(w.dir, n);

beforeAll(async () => {
  w = await makeWorld();
  const idp = await generateKeyPair('ES256', { extractable: true });
  idpKey = idp.privateKey;
  writeFileSync(path.join(w.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp' }] }));
  const adminCa = await issueCertificate({ subject: 'CN=admin CA', ca: true });
  const ops = await issueCertificate({ subject: 'CN=ops', uris: ['spiffe://admin.test/ops'], eku: [CLIENT_AUTH] }, adminCa);
  writeFileSync(f('admin-ca.pem'), adminCa.certPem);
  writeFileSync(f('ops.pem'), ops.certPem);
  writeFileSync(f('ops.key'), ops.keyPem, { mode: 0o600 });
  writeFileSync(
    path.join(w.policyDir, 'teams.yaml'),
    'teams:\n  - name: team\n    keyPrefixes: ["team/"]\n    members: ["jwt:sub:owner@example.com"]\n  - name: secops\n    role: security\n    members: ["jwt:group:secops", "cert:uri:spiffe://admin.test/ops"]\n',
  );
  files = await writeTlsWorld(w, {
    config: {
      log: { level: 'warn' },
      store: { kind: 'sqlite', changePollMs: 100 },
      admin: { enabled: true, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: f('jwks.json'), algorithms: ['ES256'] }, mtls: { ca: f('admin-ca.pem') } },
    },
  });
  const made = await runKeyanchor(['--config', files.config, 'keys', 'create', '--init', APP_KEY]);
  expect(made.code, made.stderr).toBe(0);
  broker = await startBrokerProcess(['--config', files.config, 'serve']);
  const token = (claims: Record<string, unknown>) => new SignJWT({ iss: ISSUER, aud: AUDIENCE, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'idp' }).setIssuedAt().setExpirationTime('10m').sign(idpKey);
  ownerToken = await token({ sub: 'owner@example.com' });
  secToken = await token({ sub: 'sec@example.com', groups: ['secops'] });
  writeFileSync(f('sec.token'), `${secToken}\n`, { mode: 0o600 });
}, 60_000);
afterAll(async () => {
  await broker?.stop();
  w?.cleanup();
});

/** `keyanchor --broker URL --ca CA …`, with the token in KEYANCHOR_TOKEN unless `token` is null; no config anywhere. */
const remote = (args: string[], token: string | null = ownerToken, extra: string[] = []) =>
  runKeyanchor(['--broker', broker.url, '--ca', files.tlsCa, ...extra, ...args], { KEYANCHOR_TOKEN: token ?? '', KEYANCHOR_CONFIG: '', KEYANCHOR_ADDR: '' });
const USING = () => `keyanchor: using the broker at ${broker.url}\n`;

describe('keyanchor --broker: the key lifecycle through the admin API', () => {
  it('create, list (-o json and text), rotate, disable, show: the same metadata as on the broker host, with the caller as actor', async () => {
    const created = await remote(['keys', 'create', 'team/remote']);
    expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: USING() });
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'team/remote', createdBy: 'jwt:sub:owner@example.com', versions: [{ version: 1, state: 'enabled' }] });

    const listed = await remote(['keys', 'list', '-o', 'json']);
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((k) => k.name)).toEqual(['team/app-key', 'team/remote']);
    const text = await remote(['keys', 'list', '-o', 'text']);
    expect(text.stdout).toMatch(/^team\/remote +1 version\(s\), 1 enabled {2}created \S+ by jwt:sub:owner@example\.com$/m);

    expect(JSON.parse((await remote(['keys', 'rotate', 'team/remote'])).stdout).versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
    const disabled = JSON.parse((await remote(['keys', 'disable', 'team/remote', '1'])).stdout);
    expect(disabled.versions[0]).toMatchObject({ version: 1, state: 'disabled', changedBy: 'jwt:sub:owner@example.com' });
    const shown = await remote(['keys', 'show', 'team/remote', '-o', 'text']);
    expect(shown.stdout).toMatch(/^ {2}v1 {2}disabled +created .* by jwt:sub:owner@example\.com, disabled .* by jwt:sub:owner@example\.com$/m);
    // What the broker host sees is the same key.
    const local = await runKeyanchor(['--config', files.config, 'keys', 'show', 'team/remote']);
    expect(JSON.parse(local.stdout)).toEqual(JSON.parse((await remote(['keys', 'show', 'team/remote'])).stdout));
  });

  it("the broker's refusals: one line with the code, exit 1", async () => {
    const forbidden = await remote(['keys', 'show', 'other/key']);
    expect({ code: forbidden.code, stdout: forbidden.stdout }).toEqual({ code: 1, stdout: '' });
    expect(forbidden.stderr).toMatch(/^keyanchor: using the broker at \S+\nkeyanchor: forbidden: Not allowed \(HTTP 403, request [0-9a-f]{16}\)\n$/);
    const exists = await remote(['keys', 'create', 'team/remote']);
    expect(exists.stderr.split('\n')[1]).toMatch(/^keyanchor: key_exists: The key already exists \(HTTP 409, request [0-9a-f]{16}\)$/);
    const badToken = await remote(['keys', 'list'], 'not-a-token');
    expect({ code: badToken.code, line: badToken.stderr.split('\n')[1] }).toEqual({ code: 1, line: expect.stringMatching(/^keyanchor: unauthorized: Authentication required \(HTTP 401/) });
  });

  it('bad remote options and local-only commands: exit 2, nothing sent', async () => {
    const cases: Array<[string[], string | null, string[], string]> = [
      [['keys', 'list'], null, [], 'keyanchor: no credentials for the broker: set KEYANCHOR_TOKEN, --token-file, or --client-cert and --client-key\n'],
      [['keys', 'import', 'x.json'], ownerToken, [], 'keyanchor: keys import works on the broker host only (it reads the store directly): run it there without --broker\n'],
      [['keys', 'create', '--init', 'team/y'], ownerToken, [], 'keyanchor: --init initialises a local store; a running broker has one\n'],
      [['keys', 'list'], ownerToken, ['--client-cert', f('ops.pem')], 'keyanchor: a client certificate needs both --client-cert and --client-key\n'],
    ];
    for (const [args, token, extra, stderr] of cases) {
      const r = await remote(args, token, extra);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr.replace(USING(), '') }, args.join(' ')).toEqual({ code: 2, stdout: '', stderr });
    }
    const plain = await runKeyanchor(['--broker', 'http://broker.example:8443', 'keys', 'list'], { KEYANCHOR_TOKEN: ownerToken });
    expect({ code: plain.code, stderr: plain.stderr }).toEqual({ code: 2, stderr: 'keyanchor: --broker http://broker.example:8443: https:// (plain http:// only to a loopback address)\n' });
    const noCa = await runKeyanchor(['--broker', broker.url, 'keys', 'list'], { KEYANCHOR_TOKEN: ownerToken });
    expect({ code: noCa.code, line: noCa.stderr.split('\n')[1] }).toEqual({ code: 1, line: expect.stringMatching(/^keyanchor: network_unreachable: cannot reach the broker at https:\/\/127\.0\.0\.1:\d+: .*certificate/) });
  });
});

describe('keyanchor suspend', () => {
  const attest = async () => {
    const ca = (await import('node:fs')).readFileSync(files.tlsCa);
    const post = (p: string, body: unknown) =>
      new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
        const req = https.request(`${broker.url}${p}`, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
          let t = '';
          res.on('data', (d: Buffer) => (t += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(t) as Record<string, unknown> }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    const nonce = (await post('/v1/challenge', {})).body.nonce as string;
    const r = await post('/v1/attest', { evidence: (await makeEvidence(w, { nonce })).compact });
    return { status: r.status, code: r.body.code };
  };
  const waitFor = async (want: number) => {
    for (let i = 0; i < 200; i++) {
      const r = await attest();
      if (r.status === want) return r;
      await new Promise((res) => setTimeout(res, 25));
    }
    return attest();
  };

  it('on the broker host: set, list, show, clear on the store; the running broker enforces each within its poll interval', async () => {
    expect((await attest()).status).toBe(200);
    const set = await runKeyanchor(['--config', files.config, 'suspend', 'node', 'spiffe://test/zone/z1/node-1', '--reason', 'node key stolen']);
    expect({ code: set.code, stderr: set.stderr }).toEqual({ code: 0, stderr: '' });
    expect(set.stdout).toMatch(/^suspended: node:spiffe:\/\/test\/zone\/z1\/node-1 {2}ACTIVE\n {2}suspended \S+ by cli:\S+: node key stolen\n {2}id \S+\n$/);
    expect(await waitFor(403)).toEqual({ status: 403, code: 'suspended' });
    const again = await runKeyanchor(['--config', files.config, 'suspend', 'node', 'spiffe://test/zone/z1/node-1', '--reason', 'twice', '-o', 'json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ created: false, suspension: { reason: 'node key stolen' } });
    const listed = await runKeyanchor(['--config', files.config, 'suspend', 'list', '-o', 'json']);
    expect((JSON.parse(listed.stdout) as Array<{ subject: string }>).map((s) => s.subject)).toEqual(['node:spiffe://test/zone/z1/node-1']);
    const cleared = await runKeyanchor(['--config', files.config, 'suspend', 'clear', 'node:spiffe://test/zone/z1/node-1']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toMatch(/^cleared: node:spiffe:\/\/test\/zone\/z1\/node-1 {2}cleared \S+ by cli:\S+\n/);
    expect(await waitFor(200)).toEqual({ status: 200, code: undefined });
    const shown = await runKeyanchor(['--config', files.config, 'suspend', 'show', 'node:spiffe://test/zone/z1/node-1', '-o', 'json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ subject: 'node:spiffe://test/zone/z1/node-1', active: null, history: [{ active: false, reason: 'node key stolen' }] });
  });

  it('through --broker (security role: a token, a token file, or a client certificate); an owner team is refused', async () => {
    const set = await remote(['suspend', 'software', 'app', '--reason', 'incident 7'], secToken);
    expect({ code: set.code, stderr: set.stderr }).toEqual({ code: 0, stderr: USING() });
    expect(set.stdout).toMatch(/^suspended: software:app {2}ACTIVE\n {2}suspended \S+ by jwt:sub:sec@example\.com: incident 7\n/);
    expect(await waitFor(403)).toEqual({ status: 403, code: 'suspended' });
    const viaFile = await runKeyanchor(['--broker', broker.url, '--ca', files.tlsCa, '--token-file', f('sec.token'), 'suspend', 'list', '-o', 'json'], { KEYANCHOR_TOKEN: '' });
    expect((JSON.parse(viaFile.stdout) as Array<{ subject: string }>).map((s) => s.subject)).toEqual(['software:app']);
    const viaCert = await remote(['suspend', 'show', 'software:app', '-o', 'json'], null, ['--client-cert', f('ops.pem'), '--client-key', f('ops.key')]);
    expect(JSON.parse(viaCert.stdout)).toMatchObject({ subject: 'software:app', active: { createdBy: 'jwt:sub:sec@example.com' } });
    const owner = await remote(['suspend', 'clear', 'software:app'], ownerToken);
    expect({ code: owner.code, line: owner.stderr.split('\n')[1] }).toEqual({ code: 1, line: expect.stringMatching(/^keyanchor: forbidden: Not allowed \(HTTP 403/) });
    const cleared = await remote(['suspend', 'clear', 'software:app'], null, ['--client-cert', f('ops.pem'), '--client-key', f('ops.key')]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toMatch(/^cleared: software:app {2}cleared \S+ by cert:subject:CN=ops\n/);
    expect(await waitFor(200)).toEqual({ status: 200, code: undefined });
    const unknown = await remote(['suspend', 'clear', 'software:app'], secToken);
    expect({ code: unknown.code, line: unknown.stderr.split('\n')[1] }).toEqual({ code: 1, line: expect.stringMatching(/^keyanchor: suspension_unknown: No such suspension \(HTTP 404/) });
  });

  it('a malformed subject or kind: exit 2 before anything is sent or opened', async () => {
    const cases: Array<[string[], string]> = [
      [['suspend', 'clear', 'galaxy:far'], 'keyanchor: invalid subject "galaxy:far": a subject is software:NAME, zone:NAME, key:OWNER/PURPOSE or node:SAN-URI|sha256:HEX|serial:HEX, not "galaxy:…"\n'],
      [['suspend', 'key', 'nokey', '--reason', 'r'], 'keyanchor: invalid key "nokey": "nokey" is not a key name (owner/purpose)\n'],
      [['suspend', 'node', 'not a uri', '--reason', 'r'], 'keyanchor: invalid node "not a uri": a node is a SAN URI (spiffe://…), sha256:HEX or serial:HEX\n'],
    ];
    for (const [args, stderr] of cases) {
      const r = await runKeyanchor(['--config', files.config, ...args]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }, args.join(' ')).toEqual({ code: 2, stdout: '', stderr });
    }
    const noReason = await runKeyanchor(['--config', files.config, 'suspend', 'zone', 'z1']);
    expect({ code: noReason.code, first: noReason.stderr.split('\n')[0] }).toEqual({ code: 2, first: "error: required option '--reason <text>' not specified" });
  });
});
