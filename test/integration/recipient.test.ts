/**
 * Issue 6 item 2 through HTTP: every invalid recipient key (`cnf.jwk`) in otherwise valid,
 * correctly signed evidence for a granted key is `400 recipient_invalid` with no key in the
 * answer — with software custody and with PKCS#11 custody on SoftHSM2 (which releases to RSA only,
 * so an EC recipient there is `400 recipient_unsupported`). Before the fix some of these gave a
 * 500 and `e = 1` gave the key away.
 */
import type { RequestListener } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { hsmInit } from '../../src/custody/pkcs11/index.js';
import type { RecipientJwk } from '../../src/protocol.js';
import { hostileRecipients } from '../helpers/hostileRecipients.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../helpers/softhsm.js';
import { APP_KEY, makeEvidence, makeRecipient, makeWorld, type World } from '../helpers/world.js';

const hostile = hostileRecipients();

async function attestWith(app: RequestListener, w: World, jwk: RecipientJwk | undefined): Promise<request.Response> {
  const nonce = (await request(app).post('/v1/challenge').expect(200)).body.nonce as string;
  const recipient = jwk ? { jwk, privateKey: undefined as never } : await makeRecipient('RSA');
  const { compact } = await makeEvidence(w, { nonce, recipient });
  return request(app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: compact }));
}

function suite(name: 'software' | 'pkcs11', setup: () => Promise<{ w: World; b: Assembled; ecCode: string; cleanup?: () => void }>) {
  describe(`${name} custody`, () => {
    let w: World;
    let b: Assembled;
    let ecCode: string;
    let cleanup: (() => void) | undefined;
    beforeAll(async () => {
      ({ w, b, ecCode, cleanup } = await setup());
      await b.keys.create(APP_KEY, 'test');
    });
    afterAll(async () => {
      await b?.close();
      w?.cleanup();
      cleanup?.();
    });

    it('releases to a valid RSA-2048 recipient', async () => {
      const r = await attestWith(b.app, w, undefined);
      expect(r.status).toBe(200);
      expect(r.body.keys).toHaveLength(1);
      expect(r.body.keys[0].form).toBe(name === 'pkcs11' ? 'cek' : 'plaintext');
    });

    it.each(hostile.rsa)('refuses an RSA recipient with %s: 400 recipient_invalid, nothing released', async (_what, jwk) => {
      const r = await attestWith(b.app, w, jwk);
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 400, code: 'recipient_invalid' });
      expect(r.body.keys).toBeUndefined();
      expect(r.text).not.toContain('jwe');
    });

    it.each(hostile.ec)('refuses an EC recipient with %s, nothing released', async (_what, jwk) => {
      const r = await attestWith(b.app, w, jwk);
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 400, code: ecCode });
      expect(r.body.keys).toBeUndefined();
    });
  });
}

suite('software', async () => {
  const w = await makeWorld();
  return { w, b: await assembleBroker(w.config), ecCode: 'recipient_invalid' };
});

describe.skipIf(!softhsmAvailable())('on SoftHSM2', () => {
  let hsm: SoftHsm;
  suite('pkcs11', async () => {
    hsm = createSoftHsm();
    const custody = softhsmCustodyConfig(hsm);
    await hsmInit(custody);
    const w = await makeWorld();
    return { w, b: await assembleBroker({ ...w.config, custody }), ecCode: 'recipient_unsupported', cleanup: () => hsm.cleanup() };
  });
});
