/**
 * A cheap load generator for the store bench, run as its own process: challenge + attest over
 * kept-alive HTTP, round-robin over several brokers, evidence signed with node:crypto and one
 * ephemeral recipient reused (the broker cannot tell; it keeps the generator's CPU small so the
 * brokers and the database get the cores). Released keys are not decrypted: the store bench
 * counts releases, the main bench measures the whole round trip. Prints one JSON line.
 */
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { EVIDENCE_TYP, PROTOCOL_VERSION } from '../../src/protocol.js';

interface Args {
  urls: string[];
  seconds: number;
  concurrency: number;
  nodeCertPem: string;
  nodeKey: string;
  program: { path: string; sha256: string; sig: string };
  key: string;
}

const a = JSON.parse(process.argv[2]!) as Args;
const x5c = [a.nodeCertPem.replace(/-----[^-]+-----|\s/g, '')];
const nodeKey = createPrivateKey(readFileSync(a.nodeKey));
const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: EVIDENCE_TYP, x5c })).toString('base64url');

function evidence(nonce: string): string {
  const payload = Buffer.from(JSON.stringify({
    ver: PROTOCOL_VERSION, nonce, iat: Math.floor(Date.now() / 1000),
    workload: { binary: { path: a.program.path, sha256: a.program.sha256, signatures: [{ sig: a.program.sig }] } },
    keys: [{ name: a.key }], cnf: { jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } },
  })).toString('base64url');
  const s = sign('sha256', Buffer.from(`${header}.${payload}`), { key: nodeKey, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${s.toString('base64url')}`;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

const lat: number[] = [];
const codes: Record<string, number> = {};
let n = 0;
const end = performance.now() + a.seconds * 1000;
const t0 = performance.now();
await Promise.all(Array.from({ length: a.concurrency }, async (_, w) => {
  for (let i = w; performance.now() < end; i += a.concurrency) {
    const url = a.urls[i % a.urls.length]!;
    const t = performance.now();
    try {
      const ch = await post(`${url}/v1/challenge`, {});
      const at = await post(`${url}/v1/attest`, { evidence: evidence(String(ch.json.nonce)) });
      const k = at.status === 200 ? '200' : `${at.status} ${String(at.json.code)}`;
      codes[k] = (codes[k] ?? 0) + 1;
      if (at.status === 200) lat.push(performance.now() - t);
    } catch (e) {
      codes[String(e)] = (codes[String(e)] ?? 0) + 1;
    }
    n++;
  }
}));
process.stdout.write(JSON.stringify({ lat, codes, attempts: n, elapsedMs: performance.now() - t0, cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000 }) + '\n');
