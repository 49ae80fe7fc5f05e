/**
 * PKCS#11 custody end to end, every step a real process against a real token (SoftHSM2):
 * `keyanchor hsm init|status` make and inspect the KEK, `keyanchor keys create` has the HSM
 * generate a data key that only the keystore holds (wrapped), `keyanchor serve` releases it in the
 * `cek` form to the RSA key `attest-agent exec` makes, and the workload gets the same 32 bytes
 * every time. The token is then unplugged (its directory moved away, which the broker child sees
 * through its SOFTHSM2_CONF) and plugged back: 503 custody_unavailable while it is away, and
 * releases resume by themselves. Neither the key nor the PIN ever shows in the broker's output,
 * the keystore or the audit file — not even a wrong PIN.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { sqliteStoreText } from '../helpers/audit.js';
import { EXIT_CODES } from '../../attest-agent/src/exitCodes.js';
import type { HsmStatus } from '../../src/custody/pkcs11/index.js';
import { run, runAgent, runKeyanchor, startBrokerProcess, type BrokerProcess, type Ran, BROKER_CLI } from '../helpers/processes.js';
import { createSoftHsm, softhsmAvailable, type SoftHsm } from '../helpers/softhsm.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

const PIN_ENV = 'KEYANCHOR_HSM_PIN';
const KEK_LABEL = 'keyanchor-kek';
/** The first command that writes an audit record makes the audit signing key pair (auditPkcs11.e2e.test.ts checks it). */
const KEK_AND_AUDIT_KEY = ['Private Key Object; EC', 'Public Key Object; EC  EC_POINT 256 bits', 'Secret Key Object; AES length 32'];

const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

describe.skipIf(!softhsmAvailable({ pkcs11Tool: true }))('PKCS#11 custody end to end (SoftHSM2, real processes)', () => {
  let hsm: SoftHsm;
  let w: World;
  let files: TlsWorldFiles;
  /** What every child process gets: the token's softhsm2.conf and the PIN, passed explicitly. */
  let env: NodeJS.ProcessEnv;
  let shmDir: string;
  let kekId: string;
  /** Everything the keyanchor CLI printed, to search for the PIN at the end. */
  const cliOutput: string[] = [];

  const keyanchor = async (...args: string[]) => {
    const r = await runKeyanchor(['--config', files.config, ...args], env);
    cliOutput.push(r.stdout, r.stderr);
    return r;
  };

  beforeAll(async () => {
    hsm = createSoftHsm({ label: 'keyanchor-e2e' });
    w = await makeWorld();
    shmDir = path.join('/dev/shm', `keyanchor-pkcs11-e2e-${process.pid}`);
    mkdirSync(shmDir, { recursive: true, mode: 0o700 });
    files = await writeTlsWorld(w, {
      // SoftHSM 2.6 does RSA-OAEP with SHA-1 only.
      config: { custody: { kind: 'pkcs11', module: hsm.module, token: { label: hsm.label }, pin: { env: PIN_ENV }, kekLabel: KEK_LABEL, oaepHash: 'SHA-1' } },
    });
    env = { SOFTHSM2_CONF: hsm.conf, [PIN_ENV]: hsm.pin };
  });

  afterAll(() => {
    if (shmDir) rmSync(shmDir, { recursive: true, force: true });
    w?.cleanup();
    hsm?.cleanup();
  });

  /** The token's objects as OpenSC lists them: one `<Kind> Object; …` header line per object. */
  const tokenObjects = () => hsm.pkcs11Tool(['--list-objects']).split('\n').filter((l) => /^\S.* Object;/.test(l));

  it('hsm init creates the KEK; hsm status shows it sensitive and never extractable', async () => {
    const init = await keyanchor('hsm', 'init');
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain(`created KEK "${KEK_LABEL}" on token "${hsm.label}"`);
    kekId = /kekId: (\S+)/.exec(init.stdout)![1]!;
    expect(kekId).toMatch(new RegExp(`^pkcs11:${KEK_LABEL}:[0-9a-f]{32}$`));

    const again = await keyanchor('hsm', 'init');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('key_exists');

    const text = await keyanchor('hsm', 'status');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`KEK:        "${KEK_LABEL}" found, ${kekId}`);
    expect(text.stdout).toMatch(/^ {12}AES-256, CKA_ID [0-9a-f]{32}$/m);
    expect(text.stdout).toMatch(/^ {12}false: .*\bextractable\b/m);
    expect(text.stdout).toMatch(/^ {12}true: .*\bsensitive\b/m);
    expect(text.stdout.trimEnd().split('\n').at(-1)).toBe('ok');

    const json = await keyanchor('hsm', 'status', '--json');
    expect(json.code, json.stderr).toBe(0);
    const s = JSON.parse(json.stdout) as HsmStatus;
    expect(s.ok).toBe(true);
    expect(s.token.label).toBe(hsm.label);
    expect(s.kek).toMatchObject({ label: KEK_LABEL, found: 1, kekId, problems: [] });
    expect(s.kek.attributes).toMatchObject({
      valueLen: 32, token: true, private: true, sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true,
      wrap: true, unwrap: true, encrypt: false, decrypt: false, sign: false, verify: false, derive: false,
    });

    const objects = tokenObjects();
    expect(objects).toEqual(['Secret Key Object; AES length 32']);
  });

  it('keys create has the HSM make the key: the keystore holds it wrapped, the token holds nothing but the KEK and the audit signing key', async () => {
    const r = await keyanchor('keys', 'create', '--init', APP_KEY);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: APP_KEY, versions: [{ version: 1, state: 'enabled' }] });

    const db = new Database(path.join(w.stateDir, 'keyanchor.db'), { readonly: true });
    try {
      expect(db.prepare("SELECT name, value FROM meta WHERE name IN ('custody', 'kek_id') ORDER BY name").all()).toEqual([{ name: 'custody', value: 'pkcs11' }, { name: 'kek_id', value: kekId }]);
      const wrapped = db.prepare('SELECT wrap_alg, kek_id, blob FROM key_versions WHERE name = ? AND version = 1').get(APP_KEY) as { wrap_alg: string; kek_id: string; blob: Buffer };
      expect(wrapped).toMatchObject({ wrap_alg: 'pkcs11:AES_KEY_WRAP_PAD', kek_id: kekId });
      // RFC 5649 wrap of 32 bytes (40) and the 16-byte CMAC that binds it to name and version.
      expect(wrapped.blob).toHaveLength(56);
    } finally {
      db.close();
    }
    // Listing metadata does not log in to the HSM: it works with the token away.
    hsm.unplug();
    try {
      const listed = await keyanchor('keys', 'list');
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout).map((k: { name: string }) => k.name)).toEqual([APP_KEY]);
    } finally {
      hsm.replug();
    }

    const listing = hsm.pkcs11Tool(['--list-objects']);
    expect(tokenObjects().sort()).toEqual(KEK_AND_AUDIT_KEY);
    expect(listing).toContain(`label:      ${KEK_LABEL}`);
    expect(listing).toMatch(/Usage: +wrap, unwrap/);
    expect(listing).toMatch(/Access: +sensitive, always sensitive, never extractable, local/);
  });

  describe('keyanchor serve with the HSM', () => {
    let broker: BrokerProcess;
    let ca: Buffer;
    let prog: string;
    let keyFile: string;
    let key: Buffer;

    beforeAll(async () => {
      ca = readFileSync(files.tlsCa);
      broker = await startBrokerProcess(['--config', files.config, 'serve'], env);
      expect(broker.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      // A workload that prints the key it was handed through a tmpfs file, signed with the openssl CLI.
      keyFile = path.join(shmDir, 'app.key');
      prog = path.join(w.dir, 'print-key');
      writeFileSync(prog, `#!/bin/sh\nbase64 -w0 "${keyFile}"\n`);
      chmodSync(prog, 0o755);
      openssl('dgst', '-sha256', '-sign', files.publisherKey, '-out', `${prog}.sig`, prog);
    });

    afterAll(async () => {
      await broker?.stop();
    });

    const execPrintKey = (url = broker.url) =>
      runAgent([
        'exec', '--allow-shared-uid', '--broker', url, '--ca', files.tlsCa, '--node-cert', files.nodeCert, '--node-key', files.nodeKey, '--retries', '0',
        '--key', `${APP_KEY}:file=${keyFile}`, '--', prog,
      ]);

    it('attest-agent exec gets the key in the cek form to an RSA key, and the workload gets the same 32 bytes every run', async () => {
      const proxy = await recordingProxy(broker.url, ca);
      let viaProxy: Ran;
      try {
        viaProxy = await execPrintKey(proxy.url);
      } finally {
        await proxy.close();
      }
      expect(viaProxy.code, viaProxy.stderr).toBe(0);
      key = Buffer.from(viaProxy.stdout.trim(), 'base64');
      expect(key).toHaveLength(32);

      // What went over the wire: the broker offers only RSA, the agent sends an RSA key, the key comes back as `cek`.
      const challenge = proxy.exchanges.find((x) => x.path === '/v1/challenge')!;
      expect(JSON.parse(challenge.response).recipientKeyTypes).toEqual(['RSA']);
      const attest = proxy.exchanges.find((x) => x.path === '/v1/attest')!;
      const evidence = JSON.parse(attest.request).evidence as string;
      const payload = JSON.parse(Buffer.from(evidence.split('.')[1]!, 'base64url').toString('utf8'));
      expect(payload.cnf.jwk).toMatchObject({ kty: 'RSA' });
      expect(attest.status).toBe(200);
      const released = JSON.parse(attest.response).keys;
      expect(released).toHaveLength(1);
      expect(released[0]).toMatchObject({ name: APP_KEY, version: 1, form: 'cek' });
      expect(decodeProtectedHeader(released[0].jwe)).toEqual({ alg: 'RSA-OAEP', enc: 'A256GCM', kid: `${APP_KEY}@1` });
      for (const enc of ['base64', 'base64url', 'hex'] as const) expect(attest.response).not.toContain(key.toString(enc));

      const direct = await execPrintKey();
      expect(direct.code, direct.stderr).toBe(0);
      expect(Buffer.from(direct.stdout.trim(), 'base64').equals(key)).toBe(true);
    });

    it('while the token is unplugged: the agent exits custody_unavailable and /readyz answers 503; plugged back, releases resume without a restart', async () => {
      expect(await getJson(`${broker.url}/readyz`, ca)).toEqual({ status: 200, body: expect.objectContaining({ status: 'ready' }) });
      hsm.unplug();
      try {
        const down = await execPrintKey();
        expect(down.code, down.stderr).toBe(EXIT_CODES.custody_unavailable);
        expect(down.stderr).toMatch(/^attest-agent: custody_unavailable: /);
        expect(down.stderr).not.toMatch(/CKR_|pkcs11|softhsm/i);
        expect(down.stdout).toBe('');
        const ready = await getJson(`${broker.url}/readyz`, ca);
        expect({ status: ready.status, code: ready.body.code }).toEqual({ status: 503, code: 'custody_unavailable' });
        // The client learns the code, not the HSM's details.
        expect(JSON.stringify(ready.body)).not.toMatch(/CKR_|pkcs11|softhsm/i);
      } finally {
        hsm.replug();
      }
      const up = await execPrintKey();
      expect(up.code, up.stderr).toBe(0);
      expect(Buffer.from(up.stdout.trim(), 'base64').equals(key)).toBe(true);
      expect(await getJson(`${broker.url}/readyz`, ca)).toEqual({ status: 200, body: expect.objectContaining({ status: 'ready' }) });
      expect(broker.proc.exitCode).toBeNull();
    });

    it('the token still holds only the KEK and the audit signing key: every object a release made is gone', () => {
      expect(tokenObjects().sort()).toEqual(KEK_AND_AUDIT_KEY);
    });

    let wrongPinStart: Ran | undefined;

    it('a broker given a wrong PIN refuses to start, and its output names neither that PIN nor the right one', async () => {
      const wrongPin = `wrong-${randomBytes(6).toString('hex')}`;
      const r = await run(process.execPath, [BROKER_CLI, '--config', files.config, 'serve'], { env: { ...env, [PIN_ENV]: wrongPin }, timeoutMs: 20_000 });
      wrongPinStart = r;
      const out = r.stdout + r.stderr;
      expect(r.code, out).toBe(1);
      expect(r.stderr).toContain('refusing to start: custody_unavailable');
      expect(r.stdout).not.toContain('listening');
      for (const pin of [wrongPin, hsm.pin]) expect(out).not.toContain(pin);
      // One refused login locks nothing: a fresh login with the right PIN works, and the running broker still serves.
      const status = await keyanchor('hsm', 'status');
      expect(status.code, status.stderr).toBe(0);
      expect(await getJson(`${broker.url}/readyz`, ca)).toEqual({ status: 200, body: expect.objectContaining({ status: 'ready' }) });
    });

    it('a broker refusing a wrong PIN tells the operator why: the token refused the PIN (not "retry later", which only counts towards a lockout)', () => {
      expect(wrongPinStart, 'the wrong-PIN start ran').toBeDefined();
      expect(wrongPinStart!.stderr).toContain('refused the user PIN (CKR_PIN_INCORRECT)');
    });

    it('neither the key nor the PIN is in the broker output, the keystore, the audit file or the CLI output', () => {
      const log = broker.output();
      expect(log).toContain('keys released');
      expect(log).toContain('attestation refused'); // the unplugged run
      const places = {
        'broker output': log,
        'state store (keystore and audit trail)': sqliteStoreText(w.stateDir),
        'keyanchor CLI output': cliOutput.join('\n'),
      };
      for (const [where, text] of Object.entries(places)) {
        for (const enc of ['base64', 'base64url', 'hex'] as const) expect(text, `${where} holds the key (${enc})`).not.toContain(key.toString(enc));
        expect(text, `${where} holds the PIN`).not.toContain(hsm.pin);
      }
    });
  });

  it('another KEK on the token (another kekLabel) is refused for the store\'s keys: every command and serve name both KEKs and create nothing', async () => {
    const other = path.join(w.dir, 'other-kek.json');
    writeFileSync(other, readFileSync(files.config, 'utf8').replace(`"kekLabel":"${KEK_LABEL}"`, '"kekLabel":"other-kek"'));
    const init = await run(process.execPath, [BROKER_CLI, '--config', other, 'hsm', 'init'], { env });
    expect(init.code, init.stderr).toBe(0);
    const otherId = /kekId: (\S+)/.exec(init.stdout)![1]!;
    const snapshot = () => {
      const db = new Database(path.join(w.stateDir, 'keyanchor.db'), { readonly: true });
      try {
        return db.prepare("SELECT (SELECT COUNT(*) FROM key_versions) AS versions, (SELECT COUNT(*) FROM audit) AS records, (SELECT value FROM meta WHERE name = 'kek_id') AS kek").get();
      } finally {
        db.close();
      }
    };
    const before = snapshot();
    expect(before).toMatchObject({ kek: kekId });
    for (const args of [['keys', 'rotate', APP_KEY], ['keys', 'create', 'payments/new'], ['keys', 'export'], ['serve', '--port', '0']]) {
      const r = await run(process.execPath, [BROKER_CLI, '--config', other, ...args], { env, timeoutMs: 20_000 });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(`kek_mismatch: the keys in ${path.join(w.stateDir, 'keyanchor.db')} are wrapped by KEK ${kekId}, but the configured pkcs11 custody has KEK ${otherId}`);
    }
    expect(snapshot()).toEqual(before);
  });
});

interface Exchange {
  path: string;
  request: string;
  status: number;
  response: string;
}

/** A plain-HTTP proxy to the broker that records each request and response body, as an on-path observer would see them. */
async function recordingProxy(target: string, ca: Buffer): Promise<{ url: string; exchanges: Exchange[]; close(): Promise<void> }> {
  const exchanges: Exchange[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = Buffer.concat(chunks);
      const headers: Record<string, string> = { 'content-type': req.headers['content-type'] ?? 'application/json' };
      const up = https.request(target + req.url, { method: req.method, headers, ca }, (ur) => {
        const body: Buffer[] = [];
        ur.on('data', (c: Buffer) => body.push(c));
        ur.on('end', () => {
          const response = Buffer.concat(body);
          exchanges.push({ path: req.url ?? '', request: request.toString(), status: ur.statusCode ?? 0, response: response.toString() });
          res.writeHead(ur.statusCode ?? 502, { 'content-type': ur.headers['content-type'] ?? 'application/json' });
          res.end(response);
        });
      });
      up.on('error', () => res.destroy());
      up.end(request);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    exchanges,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

function getJson(url: string, ca: Buffer): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let data = '';
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
      })
      .on('error', reject);
  });
}
