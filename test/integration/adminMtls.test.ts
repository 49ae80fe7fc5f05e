/**
 * The admin API over real TLS with client certificates: an HTTPS server on 127.0.0.1:0 created
 * with adminTlsOptions (asks for a certificate, does not require one), certificates issued at test
 * time by src/pki.ts, and bearer JWTs configured alongside to show which credential decides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { adminTlsOptions, createAuthenticator } from '../../src/admin/index.js';
import { assembleBroker, policyVars, type Assembled } from '../../src/broker.js';
import { BrokerError } from '../../src/errors.js';
import { adminRoutes } from '../../src/http/adminRoutes.js';
import { errorHandler } from '../../src/http/problem.js';
import { createLogger } from '../../src/log.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import { issueCertificate, SERVER_AUTH, type Issued } from '../../src/pki.js';
import { auditText } from '../helpers/audit.js';
import { makeWorld, type World } from '../helpers/world.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ISSUER = 'https://idp.test';
const AUDIENCE = 'keyanchor-admin';
const CI_URI = 'spiffe://admin.test/ci/payments';
const DAY = 86_400_000;

let w: World;
let b: Assembled;
let server: https.Server;
let url: string;
let tlsCa: Issued;
let idpKey: CryptoKey;
const logLines: Array<Record<string, unknown>> = [];
const certs = {} as Record<'ci' | 'viaIntermediate' | 'intermediate' | 'officer' | 'stranger' | 'foreign' | 'serverOnly' | 'expired', Issued>;

beforeAll(async () => {
  w = await makeWorld({
    configExtra: {
      insecureHttp: false,
      tls: { cert: 'tls-server.pem', key: 'tls-server-key.pem' },
      admin: { enabled: true, mtls: { ca: 'admin-ca.pem' }, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'admin-jwks.json' } },
    },
  });
  tlsCa = await issueCertificate({ subject: 'CN=test TLS CA', ca: true });
  const serverCert = await issueCertificate({ subject: 'CN=127.0.0.1', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, tlsCa);
  writeFileSync(path.join(w.dir, 'tls-server.pem'), serverCert.certPem);
  writeFileSync(path.join(w.dir, 'tls-server-key.pem'), serverCert.keyPem);

  const adminCa = await issueCertificate({ subject: 'CN=keyanchor admin CA', ca: true });
  const otherCa = await issueCertificate({ subject: 'CN=keyanchor admin CA', ca: true });
  writeFileSync(path.join(w.dir, 'admin-ca.pem'), adminCa.certPem);
  certs.ci = await issueCertificate({ subject: 'CN=ci-payments', uris: [CI_URI], eku: [CLIENT_AUTH] }, adminCa);
  certs.intermediate = await issueCertificate({ subject: 'CN=admin intermediate', ca: true, pathLength: 0 }, adminCa);
  certs.viaIntermediate = await issueCertificate({ subject: 'CN=ci-payments-2', uris: [CI_URI] }, certs.intermediate);
  certs.officer = await issueCertificate({ subject: 'O=Example, CN=security officer', eku: [CLIENT_AUTH] }, adminCa);
  certs.stranger = await issueCertificate({ subject: 'CN=stranger', uris: ['spiffe://admin.test/ci/other'] }, adminCa);
  certs.foreign = await issueCertificate({ subject: 'CN=ci-payments', uris: [CI_URI] }, otherCa);
  certs.serverOnly = await issueCertificate({ subject: 'CN=ci-payments', uris: [CI_URI], eku: [SERVER_AUTH] }, adminCa);
  certs.expired = await issueCertificate({ subject: 'CN=ci-payments', uris: [CI_URI], notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) }, adminCa);

  const idp = await generateKeyPair('ES256', { extractable: true });
  idpKey = idp.privateKey;
  writeFileSync(path.join(w.dir, 'admin-jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1' }] }));
  writeFileSync(
    path.join(w.policyDir, 'admin.yaml'),
    `teams:
  - name: payments
    keyPrefixes: ["payments/"]
    members: ["cert:uri:${CI_URI}"]
  - name: secops
    role: security
    members: ["cert:subject:O=Example\\nCN=security officer"]
`,
  );

  const log = createLogger('info', new Writable({ write: (chunk, _enc, cb) => (logLines.push(JSON.parse(String(chunk))), cb()) }));
  b = await assembleBroker(w.config, { log });
  await b.keys.create('payments/card-key', 'test');
  const policy = loadPolicyDir(w.policyDir, { vars: policyVars(w.config) });
  const app = express();
  app.use((_req, res, next) => {
    res.locals.requestId = randomBytes(8).toString('hex');
    next();
  });
  app.use('/v1/admin', adminRoutes({ keys: b.keys, policy: () => policy, auth: createAuthenticator(w.config.admin), log }));
  app.use(() => {
    throw new BrokerError('not_found', 'no such route');
  });
  app.use(errorHandler(log));

  const tlsOptions = adminTlsOptions(w.config.admin);
  expect(tlsOptions).toMatchObject({ requestCert: true, rejectUnauthorized: false, ca: adminCa.certPem });
  server = https.createServer({ cert: serverCert.certPem, key: serverCert.keyPem, minVersion: 'TLSv1.2', ...tlsOptions }, app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  if (server) {
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
    await closed;
  }
  await b?.close();
  w?.cleanup();
});

function as(client: Issued | undefined, method: 'get' | 'post', p: string, chain: Issued[] = []) {
  let t = request(url)[method](p).ca(tlsCa.certPem);
  if (client) t = t.cert(client.certPem + chain.map((c) => c.certPem).join('')).key(client.keyPem);
  return t;
}

function expectProblem(r: request.Response, status: number, code: string, reason?: RegExp) {
  expect({ status: r.status, code: r.body?.code }).toEqual({ status, code });
  if (reason) expect(logLines.find((l) => l.requestId === r.body.requestId)?.reason).toMatch(reason);
}

describe('client certificates', () => {
  it('a certificate from the admin CA whose SAN URI is in a team acts as its subject', async () => {
    const r = await as(certs.ci, 'get', '/v1/admin/keys');
    expect(r.status).toBe(200);
    expect(r.body.keys.map((k: { name: string }) => k.name)).toEqual(['payments/card-key']);
    const rotated = await as(certs.ci, 'post', '/v1/admin/keys/payments/card-key/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.body.versions[1]).toMatchObject({ version: 2, createdBy: 'cert:subject:CN=ci-payments' });
  });

  it('a certificate issued through an intermediate the client sends is accepted', async () => {
    const r = await as(certs.viaIntermediate, 'post', '/v1/admin/keys', [certs.intermediate]).send({ name: 'payments/from-ci-2' });
    expect(r.status).toBe(201);
    expect(r.body.createdBy).toBe('cert:subject:CN=ci-payments-2');
  });

  it('a subject DN in a security team may export; an owner may not', async () => {
    const r = await as(certs.officer, 'get', '/v1/admin/keystore');
    expect(r.status).toBe(200);
    expect(r.body.format).toBe('keyanchor-keystore/1');
    expect(await auditText(b.store.read)).toContain(JSON.stringify({ actor: 'cert:subject:O=Example\nCN=security officer' }).slice(1, -1));
    expectProblem(await as(certs.ci, 'get', '/v1/admin/keystore'), 403, 'forbidden', /may not act on the whole keystore/);
  });

  it('a valid certificate in no team → 403', async () => {
    expectProblem(await as(certs.stranger, 'get', '/v1/admin/keys'), 403, 'forbidden', /is in no team/);
  });

  it('a certificate from another CA (same CA name) → 401', async () => {
    const r = await as(certs.foreign, 'get', '/v1/admin/keys');
    expectProblem(r, 401, 'unauthorized', /refused by TLS: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keyanchor-admin"');
  });

  it('a certificate from the admin CA without clientAuth, or expired → 401', async () => {
    expectProblem(await as(certs.serverOnly, 'get', '/v1/admin/keys'), 401, 'unauthorized', /refused by TLS: INVALID_PURPOSE/);
    expectProblem(await as(certs.expired, 'get', '/v1/admin/keys'), 401, 'unauthorized', /refused by TLS: CERT_HAS_EXPIRED/);
  });

  it('an intermediate the client does not send → 401', async () => {
    expectProblem(await as(certs.viaIntermediate, 'get', '/v1/admin/keys'), 401, 'unauthorized', /refused by TLS: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('no client certificate and no token → 401; the TLS handshake itself still succeeds (agents need none)', async () => {
    expectProblem(await as(undefined, 'get', '/v1/admin/keys'), 401, 'unauthorized', /^no credentials$/);
  });
});

describe('client certificate and bearer token together', () => {
  const bearer = (sub: string, key: CryptoKey = idpKey) =>
    new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub }).setIssuedAt().setExpirationTime('5m').setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).sign(key);

  it('a failing bearer token is refused even with a valid client certificate', async () => {
    const forged = await bearer('pat@example.com', (await generateKeyPair('ES256')).privateKey);
    const r = await as(certs.ci, 'get', '/v1/admin/keys').set('authorization', `Bearer ${forged}`);
    expectProblem(r, 401, 'unauthorized', /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keyanchor-admin", error="invalid_token"');
  });

  it('a valid bearer token decides the identity, not the certificate', async () => {
    // The token's subject is in no team, so the certificate's team membership does not apply.
    const r = await as(certs.ci, 'get', '/v1/admin/keys').set('authorization', `Bearer ${await bearer('someone@example.com')}`);
    expectProblem(r, 403, 'forbidden', /^jwt:sub:someone@example.com is in no team$/);
  });
});
