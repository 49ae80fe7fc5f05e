/**
 * A stand-in broker for the agent's flow tests: it speaks the wire protocol with real crypto
 * (verifies the evidence JWS against its x5c leaf, consumes nonces once, encrypts keys to
 * cnf.jwk in either release form) but has no policy. The real broker's e2e tests live elsewhere.
 */
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactEncrypt, compactVerify, decodeProtectedHeader, importJWK } from 'jose';
import {
  EvidenceHeaderSchema, EvidencePayloadSchema, releaseKid, type EvidencePayload, type ProblemCode, type RecipientKeyType, type ReleaseForm,
} from '../../../src/protocol.js';
import { makeCekJwe } from './helpers.js';

export interface StubKey { version: number; bytes: Buffer }
export interface ScriptedFailure { path: '/v1/challenge' | '/v1/attest'; status: number; code: ProblemCode; retryAfter?: string }

export interface StubBrokerOptions {
  keys: Record<string, StubKey>;
  form?: ReleaseForm;
  recipientKeyTypes?: RecipientKeyType[];
  /** Served, in order, before normal answers on the matching path. */
  failures?: ScriptedFailure[];
}

export interface StubBroker {
  url: string;
  evidence: EvidencePayload[];
  nonces: string[];
  close(): Promise<void>;
}

export async function startStubBroker(o: StubBrokerOptions): Promise<StubBroker> {
  const issued = new Set<string>();
  const evidence: EvidencePayload[] = [];
  const nonces: string[] = [];
  const failures = [...(o.failures ?? [])];
  let seq = 0;

  const send = (res: http.ServerResponse, status: number, body: unknown, type = 'application/json', headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, ...headers }).end(JSON.stringify(body));
  };
  const problem = (res: http.ServerResponse, status: number, code: ProblemCode, requestId: string, headers: Record<string, string> = {}) =>
    send(res, status, { type: `urn:keyanchor:problem:${code}`, title: code, status, code, requestId }, 'application/problem+json', headers);

  async function attest(body: string, requestId: string, res: http.ServerResponse) {
    const jws = (JSON.parse(body) as { evidence: string }).evidence;
    const header = EvidenceHeaderSchema.parse(decodeProtectedHeader(jws));
    const leaf = new X509Certificate(Buffer.from(header.x5c[0]!, 'base64'));
    const verified = await compactVerify(jws, leaf.publicKey, { algorithms: [header.alg] }).catch(() => undefined);
    if (!verified) return problem(res, 401, 'evidence_signature_invalid', requestId);
    const claims = EvidencePayloadSchema.parse(JSON.parse(Buffer.from(verified.payload).toString('utf8')));
    if (!issued.delete(claims.nonce)) return problem(res, 401, 'nonce_replayed', requestId);
    evidence.push(claims);
    const jwk = claims.cnf.jwk;
    const released = [];
    for (const k of claims.keys) {
      const key = o.keys[k.name];
      if (!key) return problem(res, 404, 'key_unknown', requestId);
      const kid = releaseKid(k.name, key.version);
      let jwe: string;
      if ((o.form ?? 'plaintext') === 'cek') {
        jwe = makeCekJwe(createPublicKey({ key: jwk, format: 'jwk' }), { alg: 'RSA-OAEP', kid, cek: key.bytes }).jwe;
      } else {
        const alg = jwk.kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
        jwe = await new CompactEncrypt(key.bytes).setProtectedHeader({ alg, enc: 'A256GCM', kid }).encrypt(await importJWK({ ...jwk, alg }, alg));
      }
      released.push({ name: k.name, version: key.version, form: o.form ?? 'plaintext', jwe });
    }
    send(res, 200, { requestId, keys: released });
  }

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const requestId = `req-${++seq}`;
      const failure = failures[0]?.path === req.url ? failures.shift() : undefined;
      if (failure) return problem(res, failure.status, failure.code, requestId, failure.retryAfter === undefined ? {} : { 'retry-after': failure.retryAfter });
      if (req.url === '/v1/challenge') {
        const nonce = randomBytes(32).toString('base64url');
        issued.add(nonce);
        nonces.push(nonce);
        return send(res, 200, { nonce, expiresAt: new Date(Date.now() + 60_000).toISOString(), ttlSeconds: 60, protocolVersion: 1, recipientKeyTypes: o.recipientKeyTypes ?? ['EC', 'RSA'] });
      }
      if (req.url === '/v1/attest') {
        attest(body, requestId, res).catch(() => problem(res, 400, 'evidence_malformed', requestId));
        return;
      }
      problem(res, 404, 'not_found', requestId);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    evidence,
    nonces,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
