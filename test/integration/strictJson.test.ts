/**
 * Issue 6 item 7 through HTTP: correctly signed evidence whose header or payload names a member
 * twice, an attest body with two `evidence` members, and a node certificate in non-canonical
 * base64 are refused with a code; JSON.parse alone would have kept the last member of each.
 */
import type { RequestListener } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { toX5c } from '../../src/pki.js';
import { EVIDENCE_TYP } from '../../src/protocol.js';
import { nonCanonicalBase64 } from '../helpers/spellings.js';
import { APP_KEY, makeEvidence, makeRecipient, makeWorld, signEvidenceText, UNGRANTED_KEY, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;
let app: RequestListener;

beforeAll(async () => {
  w = await makeWorld();
  b = await assembleBroker(w.config);
  app = b.app;
  await b.keys.create(APP_KEY, 'test');
  await b.keys.create(UNGRANTED_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

const nonce = async () => (await request(app).post('/v1/challenge').expect(200)).body.nonce as string;
const attestBody = (text: string, type = 'application/json') => request(app).post('/v1/attest').set('content-type', type).send(text);

/** The header and payload texts of good evidence for a fresh nonce, to edit before signing. */
async function texts(): Promise<{ header: string; payload: string }> {
  const { compact } = await makeEvidence(w, { nonce: await nonce(), recipient: await makeRecipient() });
  const [h, p] = compact.split('.') as [string, string];
  return { header: Buffer.from(h, 'base64url').toString(), payload: Buffer.from(p, 'base64url').toString() };
}
const problem = (r: request.Response) => ({ status: r.status, code: r.body.code as string | undefined, keys: r.body.keys as unknown });

describe('duplicate members and non-canonical x5c', () => {
  it('the raw signer itself makes evidence the broker accepts (so the refusals below are about the duplicates)', async () => {
    const t = await texts();
    const r = await attestBody(JSON.stringify({ evidence: signEvidenceText(t.header, t.payload, w.node) }));
    expect(r.status).toBe(200);
  });

  it('a header naming alg twice: 400 evidence_malformed', async () => {
    const t = await texts();
    const header = t.header.replace('{', '{"alg":"none",');
    const r = await attestBody(JSON.stringify({ evidence: signEvidenceText(header, t.payload, w.node) }));
    expect(problem(r)).toEqual({ status: 400, code: 'evidence_malformed', keys: undefined });
  });

  it('a header with two x5c members: 400 evidence_malformed', async () => {
    const t = await texts();
    const header = t.header.replace('{', `{"x5c":${JSON.stringify(toX5c(w.rogueNode))},`);
    const r = await attestBody(JSON.stringify({ evidence: signEvidenceText(header, t.payload, w.node) }));
    expect(problem(r)).toEqual({ status: 400, code: 'evidence_malformed', keys: undefined });
  });

  it('a payload with two keys members (the second asking for an ungranted key): 400 evidence_malformed', async () => {
    const t = await texts();
    const payload = t.payload.replace(/}$/, `,"keys":[{"name":"${UNGRANTED_KEY}"}]}`);
    expect((JSON.parse(payload) as { keys: unknown }).keys).toEqual([{ name: UNGRANTED_KEY }]);
    const r = await attestBody(JSON.stringify({ evidence: signEvidenceText(t.header, payload, w.node) }));
    expect(problem(r)).toEqual({ status: 400, code: 'evidence_malformed', keys: undefined });
  });

  it('a payload with a duplicate inside cnf.jwk: 400 evidence_malformed', async () => {
    const t = await texts();
    const payload = t.payload.replace('"kty":"EC"', '"kty":"EC","kty":"EC"');
    const r = await attestBody(JSON.stringify({ evidence: signEvidenceText(t.header, payload, w.node) }));
    expect(problem(r)).toEqual({ status: 400, code: 'evidence_malformed', keys: undefined });
  });

  it('an x5c certificate in non-canonical base64 (same DER): 400 evidence_malformed', async () => {
    const t = await texts();
    const leaf = toX5c(w.node)[0]!;
    const header = JSON.stringify({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: [nonCanonicalBase64(leaf)] });
    expect(Buffer.from(JSON.parse(header).x5c[0], 'base64').equals(Buffer.from(leaf, 'base64'))).toBe(true);
    const r = await attestBody(JSON.stringify({ evidence: signEvidenceText(header, t.payload, w.node) }));
    expect(problem(r)).toEqual({ status: 400, code: 'evidence_malformed', keys: undefined });
  });

  it('an attest body with two evidence members: 400 request_malformed', async () => {
    const t = await texts();
    const good = signEvidenceText(t.header, t.payload, w.node);
    const r = await attestBody(`{"evidence":"x.y.z","evidence":"${good}"}`);
    expect(problem(r)).toEqual({ status: 400, code: 'request_malformed', keys: undefined });
  });

  it('an attest body that is not UTF-8, or declares another charset: 400 request_malformed, 415', async () => {
    const bytes = Buffer.concat([Buffer.from('{"evidence":"caf'), Buffer.of(0xe9), Buffer.from('"}')]);
    const r = await request(app).post('/v1/attest').set('content-type', 'application/json').send(bytes);
    expect(problem(r)).toEqual({ status: 400, code: 'request_malformed', keys: undefined });
    const latin1 = await attestBody('{"evidence":"a.b.c"}', 'application/json; charset=iso-8859-1');
    expect(problem(latin1)).toEqual({ status: 415, code: 'unsupported_media_type', keys: undefined });
  });
});
