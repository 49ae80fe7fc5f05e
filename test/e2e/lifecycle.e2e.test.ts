/**
 * The broker's lifecycle with real processes: SIGTERM during a burst of releases drains (every
 * request already accepted completes; requests that arrive on kept-alive connections meanwhile
 * get `503 shutting_down` with `Connection: close`), then closes custody and the store, logging
 * each step, and exits 0; a request still running when the grace period ends is cut. SIGHUP
 * reloads the TLS certificate (a bad new pair leaves the old one in force) and the admin JWKS file.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate, SERVER_AUTH, type Issued } from '../../src/pki.js';
import { runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { RawConnection } from '../helpers/rawHttp.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeEvidence, makeWorld, openReleased, type Recipient, type World } from '../helpers/world.js';

let w: World;
let files: TlsWorldFiles;
let ca: Buffer;

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const exited = (b: BrokerProcess) => new Promise<number | null>((r) => (b.proc.exitCode !== null ? r(b.proc.exitCode) : b.proc.once('exit', (code) => r(code))));
const logLines = (b: BrokerProcess, msg: string) => b.output().split('\n').filter((l) => l.includes(`"msg":"${msg}`)).map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  w = await makeWorld();
  files = await writeTlsWorld(w);
  ca = readFileSync(files.tlsCa);
  const r = await runKeyanchor(['--config', files.config, 'keys', 'create', '--init', APP_KEY]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => w?.cleanup());

/** A connection that has fetched a challenge, with evidence ready for it. */
async function primed(url: string): Promise<{ conn: RawConnection; evidence: string; recipient: Recipient }> {
  const conn = await RawConnection.open(url, ca);
  conn.post('/v1/challenge', '{}');
  const challenge = await conn.nextResponse();
  expect(challenge?.status).toBe(200);
  const { compact, recipient } = await makeEvidence(w, { nonce: JSON.parse(challenge!.body).nonce });
  return { conn, evidence: compact, recipient };
}

/**
 * A challenge request the broker has received but whose body has not been sent: with
 * `Expect: 100-continue`, Node answers `100 Continue` as it hands the request to the broker, so the
 * interim answer proves the request is in flight.
 */
async function inFlightWithoutBody(url: string): Promise<RawConnection> {
  const conn = await RawConnection.open(url, ca);
  conn.send('POST /v1/challenge HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n');
  expect((await conn.nextResponse())?.status).toBe(100);
  return conn;
}

describe('SIGTERM drains', () => {
  it('during a release burst: every accepted request completes, late ones get 503 shutting_down, then custody and store close', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    const burst = await Promise.all(Array.from({ length: 24 }, () => primed(broker.url)));
    const idle = await primed(broker.url); // kept alive, idle when the drain begins
    // A request whose body is still to come holds the drain open until the test sends it.
    const slow = await inFlightWithoutBody(broker.url);

    for (const b of burst) b.conn.post('/v1/attest', JSON.stringify({ evidence: b.evidence }));
    broker.proc.kill('SIGTERM');
    const answers = Promise.all(burst.map((b) => b.conn.nextResponse()));
    await waitFor(() => logLines(broker, 'shutdown: stopped accepting').length === 1, 'the drain to begin');

    idle.conn.post('/v1/challenge', '{}');
    const late = await idle.conn.nextResponse();
    expect({ status: late?.status, code: JSON.parse(late!.body).code, connection: late?.headers.connection }).toEqual({ status: 503, code: 'shutting_down', connection: 'close' });
    expect(JSON.parse(late!.body).requestId).toBe(late?.headers['x-request-id']);
    await idle.conn.closed;

    slow.send('{}');
    const slowAnswer = await slow.nextResponse();
    expect({ status: slowAnswer?.status, connection: slowAnswer?.headers.connection }).toEqual({ status: 200, connection: 'close' });

    const responses = await answers;
    let released = 0;
    for (const [i, r] of responses.entries()) {
      expect(r, `burst request ${i} got an answer`).toBeDefined();
      if (r!.status === 200) {
        const [key] = JSON.parse(r!.body).keys as Array<{ jwe: string }>;
        expect((await openReleased(key!.jwe, burst[i]!.recipient)).key).toHaveLength(32);
        released++;
      } else expect({ status: r!.status, code: JSON.parse(r!.body).code }).toEqual({ status: 503, code: 'shutting_down' });
    }
    expect(await exited(broker)).toBe(0);
    const [drain] = logLines(broker, 'shutdown: stopped accepting');
    const [done] = logLines(broker, 'shutdown: every request in flight completed');
    expect(done).toMatchObject({ completed: drain!.inFlight });
    expect(released).toBeGreaterThanOrEqual(Number(drain!.inFlight) - 1); // all in flight but the slow challenge were releases
    expect(logLines(broker, 'shutdown: grace period over')).toHaveLength(0);
    expect(logLines(broker, 'shutdown: closing the state store, the policy runtime and custody')).toHaveLength(1);
    expect(logLines(broker, 'shutdown: complete')).toHaveLength(1);
  });

  it('cuts a request still running when the grace period ends, and still exits 0', async () => {
    const config = path.join(w.dir, 'grace.json');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(files.config, 'utf8')), server: { shutdownGraceSeconds: 1, workers: 1 } }));
    const broker = await startBrokerProcess(['--config', config, 'serve']);
    const stuck = await inFlightWithoutBody(broker.url);
    broker.proc.kill('SIGTERM');
    expect(await stuck.nextResponse()).toBeUndefined(); // cut: the connection closes without an answer
    expect(await exited(broker)).toBe(0);
    expect(logLines(broker, 'shutdown: grace period over')).toEqual([expect.objectContaining({ cut: 1 })]);
    expect(logLines(broker, 'shutdown: complete')).toHaveLength(1);
  });
});

describe('SIGHUP reloads', () => {
  let broker: BrokerProcess;
  let tlsCa: Issued;
  const idp = [generateKeyPairSync('ec', { namedCurve: 'P-256' }), generateKeyPairSync('ec', { namedCurve: 'P-256' })];
  const writeJwks = async (i: number) => writeFileSync(path.join(w.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp[i]!.publicKey)), kid: `k${i}`, alg: 'ES256' }] }));
  const token = (i: number) => new SignJWT({ groups: [] }).setProtectedHeader({ alg: 'ES256', kid: `k${i}` }).setIssuer('https://idp.test').setAudience('keyanchor')
    .setSubject('ops').setIssuedAt().setExpirationTime('5m').sign(idp[i]!.privateKey);

  const servedSubject = (): Promise<string> => new Promise((resolve, reject) => {
    const u = new URL(broker.url);
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca }, () => {
      resolve(s.getPeerX509Certificate()!.subject);
      s.destroy();
    });
    s.on('error', reject);
  });
  const adminStatus = async (bearer: string) => {
    const conn = await RawConnection.open(broker.url, ca);
    conn.send(`GET /v1/admin/keys HTTP/1.1\r\nHost: broker\r\nAuthorization: Bearer ${bearer}\r\nConnection: close\r\n\r\n`);
    const r = await conn.nextResponse();
    conn.close();
    return { status: r!.status, code: r!.status >= 400 ? JSON.parse(r!.body).code : undefined };
  };
  const hup = async (msg: string) => {
    const before = logLines(broker, msg).length;
    broker.proc.kill('SIGHUP');
    await waitFor(() => logLines(broker, msg).length > before, msg);
  };
  const writePair = (cert: string, key: string) => {
    writeFileSync(files.tlsCert, cert);
    writeFileSync(files.tlsKey, key, { mode: 0o600 });
  };

  beforeAll(async () => {
    await writeJwks(0);
    const config = path.join(w.dir, 'reload.json');
    writeFileSync(config, JSON.stringify({
      ...JSON.parse(readFileSync(files.config, 'utf8')),
      admin: { enabled: true, jwt: { issuer: 'https://idp.test', audience: 'keyanchor', jwksFile: path.join(w.dir, 'jwks.json') } },
    }));
    tlsCa = await issueCertificate({ subject: 'CN=reload TLS CA', ca: true });
    ca = Buffer.from(tlsCa.certPem);
    const first = await issueCertificate({ subject: 'CN=broker one', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, tlsCa);
    writePair(first.certPem, first.keyPem);
    broker = await startBrokerProcess(['--config', config, 'serve']);
  });
  afterAll(async () => {
    await broker?.stop();
    ca = readFileSync(files.tlsCa);
  });

  it('a new certificate and key: served from the next connection on', async () => {
    expect(await servedSubject()).toBe('CN=broker one');
    const next = await issueCertificate({ subject: 'CN=broker two', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, tlsCa);
    writePair(next.certPem, next.keyPem);
    await hup('TLS certificate reloaded');
    expect(await servedSubject()).toBe('CN=broker two');
  });

  it('a key that does not match, or an expired certificate: refused, the pair in force stays', async () => {
    const inForce = await servedSubject();
    const a = await issueCertificate({ subject: 'CN=a', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, tlsCa);
    const b = await issueCertificate({ subject: 'CN=b', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, tlsCa);
    writePair(a.certPem, b.keyPem);
    await hup('TLS reload refused');
    expect(logLines(broker, 'TLS reload refused').at(-1)?.problem).toBe(`${files.tlsKey} does not belong to the certificate in ${files.tlsCert}`);
    expect(await servedSubject()).toBe(inForce);

    const old = await issueCertificate({ subject: 'CN=old', ips: ['127.0.0.1'], eku: [SERVER_AUTH], notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) }, tlsCa);
    writePair(old.certPem, old.keyPem);
    await hup('TLS reload refused');
    expect(String(logLines(broker, 'TLS reload refused').at(-1)?.problem)).toMatch(/is valid from .* not now$/);
    expect(await servedSubject()).toBe(inForce);
  });

  it('the admin JWKS file: a new issuer key works after SIGHUP; a broken file is refused and the keys in force stay', async () => {
    expect(await adminStatus(await token(1))).toEqual({ status: 401, code: 'unauthorized' });
    await writeJwks(1);
    await hup('admin JWKS reloaded');
    const accepted = await adminStatus(await token(1));
    expect(accepted.status).not.toBe(401);
    expect(await adminStatus(await token(0))).toEqual({ status: 401, code: 'unauthorized' });

    writeFileSync(path.join(w.dir, 'jwks.json'), '{"keys": [');
    await hup('admin JWKS reload refused');
    expect(await adminStatus(await token(1))).toEqual(accepted);
  });

  it('one SIGHUP reloads the policy, TLS and JWKS each on its own: a refused part does not stop the others', async () => {
    const tlsRefused = logLines(broker, 'TLS reload refused').length;
    const jwksRefused = logLines(broker, 'admin JWKS reload refused').length;
    await hup('policy reloaded: unchanged'); // the expired pair and the broken JWKS from above are still on disk
    expect(logLines(broker, 'TLS reload refused').length).toBe(tlsRefused + 1);
    expect(logLines(broker, 'admin JWKS reload refused').length).toBe(jwksRefused + 1);
  });
});
