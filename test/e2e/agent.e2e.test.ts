/**
 * End to end with real processes: `keyanchor serve` over HTTPS as a child process, keys created
 * with the `keyanchor keys` CLI, and the `attest-agent` CLI attesting real executables signed
 * with the openssl command line. The broker's log is checked for key material at the end.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteStoreText } from '../helpers/audit.js';
import { EXIT_CODES } from '../../attest-agent/src/exitCodes.js';
import { issueCertificate, SERVER_AUTH } from '../../src/pki.js';
import { APP_KEY, IMG_KEY, UNGRANTED_KEY, makeWorld, type World } from '../helpers/world.js';
import { runAgent, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { requireTool } from '../helpers/deps.js';

let w: World;
let broker: BrokerProcess;
let files: Record<string, string>;
const hasUmoci = requireTool('umoci', 'the OCI image layout end-to-end test');

const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

beforeAll(async () => {
  w = await makeWorld();
  const f = (n: string) => path.join(w.dir, n);
  files = {
    tlsCa: f('tls-ca.pem'), tlsCert: f('tls.pem'), tlsKey: f('tls.key'),
    nodeCert: f('node.pem'), nodeKey: f('node.key'), rogueCert: f('rogue.pem'), rogueKey: f('rogue.key'),
    expiredCert: f('expired.pem'), expiredKey: f('expired.key'),
    publisherKey: f('publisher.key'), otherKey: f('other.key'), config: f('broker.json'),
  };
  const tlsCa = await issueCertificate({ subject: 'CN=e2e TLS CA', ca: true });
  const tls = await issueCertificate({ subject: 'CN=broker', ips: ['127.0.0.1'], dns: ['localhost'], eku: [SERVER_AUTH] }, tlsCa);
  writeFileSync(files.tlsCa!, tlsCa.certPem);
  writeFileSync(files.tlsCert!, tls.certPem);
  writeFileSync(files.tlsKey!, tls.keyPem, { mode: 0o600 });
  writeFileSync(files.nodeCert!, w.node.certPem);
  writeFileSync(files.nodeKey!, w.node.keyPem, { mode: 0o600 });
  writeFileSync(files.rogueCert!, w.rogueNode.certPem + w.rogueCa.certPem);
  writeFileSync(files.rogueKey!, w.rogueNode.keyPem, { mode: 0o600 });
  writeFileSync(files.expiredCert!, w.expiredNode.certPem);
  writeFileSync(files.expiredKey!, w.expiredNode.keyPem, { mode: 0o600 });
  writeFileSync(files.publisherKey!, w.publisher.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(files.otherKey!, w.otherPublisher.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // The release pipeline's signature, made by the openssl command line.
  openssl('dgst', '-sha256', '-sign', files.publisherKey!, '-out', `${w.app.path}.sig`, w.app.path);
  writeFileSync(
    files.config!,
    JSON.stringify({
      stateDir: w.stateDir, policyDir: w.policyDir, tls: { cert: files.tlsCert, key: files.tlsKey },
      listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'info' },
    }),
  );
  for (const k of [APP_KEY, IMG_KEY, UNGRANTED_KEY]) {
    const r = await runKeyanchor(['--config', files.config!, 'keys', 'create', ...(k === APP_KEY ? ['--init'] : []), k]);
    expect(r.code, r.stderr).toBe(0);
  }
  broker = await startBrokerProcess(['--config', files.config!, 'serve']);
  expect(broker.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
});

afterAll(async () => {
  await broker?.stop();
  w?.cleanup();
});

const common = (o: { cert?: string; key?: string; url?: string } = {}) => [
  '--broker', o.url ?? broker.url, '--ca', files.tlsCa!, '--node-cert', o.cert ?? files.nodeCert!, '--node-key', o.key ?? files.nodeKey!, '--retries', '0',
];
const execApp = (extra: string[], program = w.app.path, o: Parameters<typeof common>[0] = {}) =>
  runAgent(['exec', '--allow-shared-uid', ...common(o), '--key', `${APP_KEY}=APP_KEY`, ...extra, '--', program]);

describe('attest-agent exec against keyanchor serve', () => {
  it('runs the program with its key when everything checks out (openssl-made signature beside the program)', async () => {
    const r = await execApp([]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('app ran: key bytes 32');
  });

  it('refuses a tampered binary: the signature no longer matches, and the program never runs', async () => {
    const tampered = path.join(w.dir, 'tampered');
    writeFileSync(tampered, readFileSync(w.app.path, 'utf8').replace('app ran', 'evil ran'));
    chmodSync(tampered, 0o755);
    const r = await execApp(['--sig', `${w.app.path}.sig`], tampered);
    expect(r.code).toBe(EXIT_CODES.software_not_approved);
    expect(r.stderr).toMatch(/software_not_approved/);
    expect(r.stdout).not.toContain('ran');
  });

  it('refuses a signature made by another key', async () => {
    const sig = path.join(w.dir, 'other.sig');
    openssl('dgst', '-sha256', '-sign', files.otherKey!, '-out', sig, w.app.path);
    const r = await execApp(['--sig', sig]);
    expect(r.code).toBe(EXIT_CODES.software_not_approved);
  });

  it('accepts the same signature base64-encoded, as cosign sign-blob prints it', async () => {
    const b64 = path.join(w.dir, 'app.sig.b64');
    writeFileSync(b64, readFileSync(`${w.app.path}.sig`).toString('base64') + '\n');
    const r = await execApp(['--sig', b64]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('refuses a node certificate from an untrusted CA', async () => {
    const r = await execApp([], w.app.path, { cert: files.rogueCert!, key: files.rogueKey! });
    expect(r.code).toBe(EXIT_CODES.node_untrusted);
    expect(r.stderr).toMatch(/node_untrusted/);
  });

  it('refuses an expired node certificate (the agent says so before sending)', async () => {
    const r = await execApp([], w.app.path, { cert: files.expiredCert!, key: files.expiredKey! });
    expect(r.code).toBe(EXIT_CODES.node_cert_expired);
  });

  it('refuses a key that is not granted', async () => {
    const r = await runAgent(['exec', '--allow-shared-uid', ...common(), '--key', `${UNGRANTED_KEY}=K`, '--', w.app.path]);
    expect(r.code).toBe(EXIT_CODES.key_not_granted);
    expect(r.stdout).toBe('');
  });

  it('fetch writes the key to a 0400 file on tmpfs, the same key exec delivers', async () => {
    const dir = path.join('/dev/shm', `keyanchor-e2e-${process.pid}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      const out = path.join(dir, 'key.json');
      const r = await runAgent(['fetch', ...common(), '--key', APP_KEY, '--program', w.app.path, '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(statSync(out).mode & 0o777).toBe(0o400);
      const fetched = Buffer.from(JSON.parse(readFileSync(out, 'utf8'))[APP_KEY], 'base64');
      expect(fetched).toHaveLength(32);
      expect(fetched.equals(await keyViaExec())).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('delivers a key as a tmpfs file that is gone when the program exits', async () => {
    const dir = path.join('/dev/shm', `keyanchor-e2e-f-${process.pid}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keyFile = path.join(dir, 'app.key');
    const prog = path.join(w.dir, 'reads-file');
    writeFileSync(prog, `#!/bin/sh\nstat -c '%a %s' "${keyFile}"\n`);
    chmodSync(prog, 0o755);
    openssl('dgst', '-sha256', '-sign', files.publisherKey!, '-out', `${prog}.sig`, prog);
    try {
      const r = await runAgent(['exec', '--allow-shared-uid', ...common(), '--key', `${APP_KEY}:file=${keyFile}`, '--', prog]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('400 32');
      expect(existsSync(keyFile)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a key file outside a tmpfs', async () => {
    const r = await runAgent(['exec', '--allow-shared-uid', ...common(), '--key', `${APP_KEY}:file=${path.join(w.dir, 'k')}`, '--', w.app.path]);
    expect(r.code).toBe(EXIT_CODES.tmpfs_refused);
    expect(existsSync(path.join(w.dir, 'k'))).toBe(false);
  });

  it('refuses a replayed attestation captured on the wire', async () => {
    // A recording proxy plays the attacker who captured the agent's evidence in flight.
    const captured: string[] = [];
    const ca = readFileSync(files.tlsCa!);
    const proxy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url === '/v1/attest') captured.push(body.toString());
        const up = https.request(broker.url + req.url, { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, ca }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, { 'content-type': ur.headers['content-type'] ?? 'application/json' });
          ur.pipe(res);
        });
        up.end(body);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    try {
      const ok = await execApp([], w.app.path, { url });
      expect(ok.code, ok.stderr).toBe(0);
      expect(captured).toHaveLength(1);
      const replay = await fetchJson(broker.url + '/v1/attest', captured[0]!, ca);
      expect({ status: replay.status, code: replay.body.code }).toEqual({ status: 401, code: 'nonce_replayed' });
    } finally {
      proxy.close();
    }
  });

  it.runIf(hasUmoci)('releases to pinned software in an approved OCI image, and refuses an unapproved image', async () => {
    const layout = path.join(w.dir, 'oci');
    execFileSync('umoci', ['init', '--layout', layout]);
    execFileSync('umoci', ['new', '--image', `${layout}:v1`]);
    const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8'));
    const digest: string = index.manifests[0].digest;
    const pinned = path.join(w.dir, 'pinned-app');
    writeFileSync(pinned, '#!/bin/sh\necho "pinned ran"\n');
    chmodSync(pinned, 0o755);
    const sha = createHash('sha256').update(readFileSync(pinned)).digest('hex');
    writeFileSync(
      path.join(w.policyDir, 'image.yaml'),
      `software:\n  - name: pinned-app\n    binary: { digests: ["${sha}"] }\n    image: { digests: ["${digest}"] }\n    grants:\n      - keys: [${IMG_KEY}]\n        zones: [z1]\n`,
    );
    broker.proc.kill('SIGHUP');
    await waitFor(() => broker.output().includes('image.yaml'));
    const ok = await runAgent(['exec', '--allow-shared-uid', ...common(), '--key', `${IMG_KEY}=K`, '--oci-layout', `${layout}:v1`, '--', pinned]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('pinned ran');
    const bad = await runAgent(['exec', '--allow-shared-uid', ...common(), '--key', `${IMG_KEY}=K`, '--image-digest', `sha256:${'0'.repeat(64)}`, '--', pinned]);
    expect(bad.code).toBe(EXIT_CODES.software_not_approved);
  });

  it('never wrote a key to its log', async () => {
    // Take the key as the workload sees it and look for it in everything the broker printed.
    const key = await keyViaExec();
    {
      const log = broker.output();
      expect(log).toContain('keys released');
      for (const enc of ['base64', 'base64url', 'hex'] as const) expect(log).not.toContain(key.toString(enc));
      const store = sqliteStoreText(w.stateDir);
      for (const enc of ['base64', 'base64url', 'hex', 'latin1'] as const) expect(store).not.toContain(key.toString(enc));
    }
  });
});

/** The key as a workload started by `attest-agent exec` receives it (through a tmpfs file). */
async function keyViaExec(): Promise<Buffer> {
  const dir = path.join('/dev/shm', `keyanchor-e2e-k-${process.pid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'k');
  const prog = path.join(w.dir, 'copy-key');
  writeFileSync(prog, `#!/bin/sh\nbase64 -w0 "${keyFile}"\n`);
  chmodSync(prog, 0o755);
  openssl('dgst', '-sha256', '-sign', files.publisherKey!, '-out', `${prog}.sig`, prog);
  try {
    const r = await runAgent(['exec', '--allow-shared-uid', ...common(), '--key', `${APP_KEY}:file=${keyFile}`, '--', prog]);
    expect(r.code, r.stderr).toBe(0);
    const key = Buffer.from(r.stdout.trim(), 'base64');
    expect(key).toHaveLength(32);
    return key;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function fetchJson(url: string, body: string, ca: Buffer): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, ca }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
