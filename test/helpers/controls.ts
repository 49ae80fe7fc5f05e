/**
 * For the crypto-anchor tests: a policy file of limits and alarms beside the world's policy, more
 * node certificates from the world's node CA, a real webhook receiver on loopback whose
 * deliveries the independent `standardwebhooks` package verifies, and the audit records of one
 * event.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { RequestListener } from 'node:http';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import type { Clock } from '../../src/clock.js';
import { issueCertificate, toX5c, type Issued } from '../../src/pki.js';
import type { Sql } from '../../src/store/sql.js';
import { IMG_KEY, makeEvidence, type World } from './world.js';

/** Writes (or replaces) `controls.yaml` in the world's policy directory. */
export function writeControls(w: World, text: string): void {
  writeFileSync(path.join(w.policyDir, 'controls.yaml'), text);
}

/** Another node in zone z1, certified by the world's node CA. */
export function zoneNode(name: string): (w: World) => Promise<Issued> {
  return (w) => issueCertificate({ subject: `CN=${name}`, uris: [`spiffe://test/zone/z1/${name}`] }, w.nodeCa);
}

export interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The payload as the standardwebhooks package verified it (it throws on a bad signature). */
  verified: { type: string; timestamp: string; data: Record<string, unknown> };
}

export interface Receiver {
  url: string;
  secret: string;
  deliveries: Delivery[];
  /** Resolves once `n` deliveries have arrived (polling the list; the sender retries by itself). */
  waitFor(n: number, timeoutMs?: number): Promise<Delivery[]>;
  close(): Promise<void>;
}

/** A real HTTP server on loopback that verifies each delivery with standardwebhooks and answers 204. */
export async function webhookReceiver(): Promise<Receiver> {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const verifier = new Webhook(secret);
  const deliveries: Delivery[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      try {
        const verified = verifier.verify(body, req.headers as Record<string, string>) as Delivery['verified'];
        deliveries.push({ headers: req.headers, body, verified });
        res.statusCode = 204;
      } catch {
        res.statusCode = 400; // a bad signature: the sender gives up (a final 4xx), and the test sees no delivery
      }
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keyanchor`;
  return {
    url,
    secret,
    deliveries,
    waitFor: async (n, timeoutMs = 10_000) => {
      const until = Date.now() + timeoutMs;
      while (deliveries.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      return deliveries;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The bodies of the audit records of `event`, oldest first. */
export async function recordsOf(sql: Sql, event: string): Promise<Array<Record<string, unknown>>> {
  const rows = await sql.all('SELECT body FROM audit WHERE event = $1 ORDER BY at, chain_id, seq', [event]);
  return rows.map((r) => JSON.parse(String(r.body)) as Record<string, unknown>);
}

/** The world's two services: `app` (signed by the publisher, key APP_KEY) and `pinned` (a pinned digest in an image, IMG_KEY). */
export type Service = 'app' | 'pinned';

export interface Answer {
  status: number;
  code?: string;
  retryAfter?: string;
}

/** Attestations through `app()` (the assembled broker's app, which a restart replaces) for `world()` (made in beforeAll), at the clock's time. */
export function attester(app: () => RequestListener, world: () => World, clock: Clock) {
  const attest = async (who: Service = 'app', node?: Issued): Promise<Answer> => {
    const w = world();
    const n = (await request(app()).post('/v1/challenge').send({}).expect(200)).body.nonce as string;
    const iat = Math.floor(clock.now() / 1000);
    const signer = node ? { signer: node, chain: toX5c(node) } : {};
    const ev = who === 'app'
      ? await makeEvidence(w, { nonce: n, iat, ...signer })
      : await makeEvidence(w, { nonce: n, iat, binary: { sha256: w.pinnedSha256, sigs: [] }, image: { digest: w.imageDigest }, keys: [{ name: IMG_KEY }], ...signer });
    const r = await request(app()).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: ev.compact }));
    return { status: r.status, ...(r.body.code ? { code: r.body.code as string } : {}), ...(r.headers['retry-after'] ? { retryAfter: r.headers['retry-after'] as string } : {}) };
  };
  const times = async (n: number, who: Service = 'app', node?: Issued): Promise<Answer[]> => {
    const out: Answer[] = [];
    for (let i = 0; i < n; i++) out.push(await attest(who, node));
    return out;
  };
  return { attest, times };
}
