/**
 * What the backend asks of the token, recorded by a spy around the real module: never CKA_VALUE,
 * every object made for a call destroyed, the *Async variant of every call that has one, and
 * the PIN in no error, inspect or JSON output.
 */
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CKA, CKF } from '../../../src/custody/pkcs11/constants.js';
import { createPkcs11Custodian, hsmInit, hsmStatus } from '../../../src/custody/pkcs11/index.js';
import { Secret } from '../../../src/secret.js';
import { agentKey, openReleasedKey } from '../../contract/agentSide.js';
import { expectBrokerError } from '../../contract/custodian.contract.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../../helpers/softhsm.js';
import { createSpy, CREATING, type Spy } from './pkcs11Spy.js';

describe.skipIf(!softhsmAvailable())('pkcs11 backend, observed', () => {
  let hsm: SoftHsm;
  let spy: Spy;
  const errors: unknown[] = [];
  const rsa = agentKey('RSA');
  const ec = agentKey('EC');

  beforeAll(async () => {
    hsm = createSoftHsm();
    spy = createSpy();
    await hsmInit(softhsmCustodyConfig(hsm), spy.internals);
    await hsmStatus(softhsmCustodyConfig(hsm), spy.internals);
    const c = await createPkcs11Custodian(softhsmCustodyConfig(hsm), spy.internals);
    const catchInto = (p: Promise<unknown>) => p.then(() => expect.unreachable(), (e: unknown) => void errors.push(e));
    try {
      for (const version of [1, 2, 3]) {
        const ref = { name: 'spy/key', version };
        const w = await c.generate(ref);
        await openReleasedKey(await c.releaseTo(ref, w, rsa.jwk), rsa);
        const tampered = Buffer.from(w.blob);
        tampered[tampered.length - 1]! ^= 1;
        await catchInto(c.releaseTo(ref, { ...w, blob: tampered }, rsa.jwk)); // unwraps, then fails the binding check
        await catchInto(c.releaseTo({ ...ref, version: 99 }, w, rsa.jwk));
        await catchInto(c.releaseTo(ref, w, ec.jwk));
      }
      await c.health();
      errors.push(c);
    } finally {
      await c.close();
    }
    await catchInto(createPkcs11Custodian({ ...softhsmCustodyConfig(hsm), pin: new Secret(`${hsm.pin}x`) }, spy.internals));
    await catchInto(createPkcs11Custodian(softhsmCustodyConfig(hsm, { kekLabel: 'missing' }), spy.internals));
  });
  afterAll(() => hsm?.cleanup());

  it('never reads CKA_VALUE', () => {
    const reads = spy.named('C_GetAttributeValue');
    expect(reads.length).toBeGreaterThan(0);
    for (const call of reads) for (const t of call.templates) expect(t.map((a) => a.type)).not.toContain(CKA.VALUE);
  });

  it('destroys every object it makes for a call, including calls that fail', () => {
    const created = spy.calls.filter((c) => CREATING.has(c.name) && c.result !== undefined);
    // `hsm init` makes the KEK (a token object, kept); everything else is per-call.
    const perCall = created.filter((c) => !c.templates.some((t) => t.some((a) => a.type === CKA.TOKEN && a.value === true)));
    expect(created.length - perCall.length).toBe(1);
    // per version: generate 1; a release 2 (data key, recipient key); tampered tag and wrong version 1 each
    // (unwrapped, then refused by the binding check); an EC recipient is refused before the HSM.
    // Plus two readiness probes (one by `hsm status`, one as the custodian starts), each a generate and a release.
    expect(perCall.length).toBe(3 * (1 + 2 + 1 + 1) + 2 * (1 + 2));
    const destroyed = spy.named('C_DestroyObject').map((c) => (c.args[1] as Buffer).toString('hex'));
    expect(destroyed.sort()).toEqual(perCall.map((c) => (c.result as Buffer).toString('hex')).sort());
    for (const call of perCall) {
      expect(call.templates[0]!.find((a) => a.type === CKA.TOKEN)?.value).toBe(false);
    }
  });

  it('uses the *Async calls for everything that can block on the device, and initializes with OS locking', () => {
    const names = new Set(spy.calls.map((c) => c.name));
    for (const sync of ['C_GenerateKey', 'C_WrapKey', 'C_UnwrapKey', 'C_Encrypt', 'C_Sign', 'C_Verify']) {
      expect(names.has(sync), sync).toBe(false);
      expect(names.has(`${sync}Async`), `${sync}Async`).toBe(true);
    }
    for (const call of spy.named('C_Initialize')) expect(call.args[0]).toEqual({ flags: CKF.OS_LOCKING_OK });
  });

  it('keeps data keys sensitive session objects, and makes the KEK wrap-only and non-extractable', () => {
    const templates = spy.named('C_GenerateKeyAsync').concat(spy.named('C_UnwrapKeyAsync')).map((c) => new Map(c.templates[0]!.map((a) => [a.type, a.value])));
    const [kek, ...dataKeys] = templates.sort((a, b) => Number(b.get(CKA.TOKEN)) - Number(a.get(CKA.TOKEN)));
    expect(dataKeys.length).toBe(3 * 4 + 2 * 2); // with the two readiness probes' generate and unwrap
    for (const t of dataKeys) {
      expect([t.get(CKA.TOKEN), t.get(CKA.SENSITIVE), t.get(CKA.DECRYPT), t.get(CKA.WRAP), t.get(CKA.UNWRAP)]).toEqual([false, true, false, false, false]);
    }
    expect(Object.fromEntries([CKA.TOKEN, CKA.PRIVATE, CKA.SENSITIVE, CKA.EXTRACTABLE, CKA.WRAP, CKA.UNWRAP, CKA.ENCRYPT, CKA.DECRYPT, CKA.SIGN, CKA.VERIFY].map((a) => [a, kek!.get(a)]))).toEqual({
      [CKA.TOKEN]: true, [CKA.PRIVATE]: true, [CKA.SENSITIVE]: true, [CKA.EXTRACTABLE]: false, [CKA.WRAP]: true, [CKA.UNWRAP]: true,
      [CKA.ENCRYPT]: false, [CKA.DECRYPT]: false, [CKA.SIGN]: false, [CKA.VERIFY]: false,
    });
  });

  it('never shows the PIN in errors, inspect or JSON', () => {
    expect(errors.length).toBeGreaterThanOrEqual(3 * 3 + 3);
    for (const e of errors) {
      const texts = [inspect(e, { depth: Infinity, showHidden: true }), JSON.stringify(e) ?? '', String(e)];
      if (e instanceof Error) texts.push(e.stack ?? '', inspect(e.cause, { depth: Infinity, showHidden: true }));
      for (const t of texts) expect(t).not.toContain(hsm.pin);
    }
    const config = softhsmCustodyConfig(hsm);
    expect(inspect(config, { depth: Infinity })).not.toContain(hsm.pin);
    expect(JSON.stringify(config)).not.toContain(hsm.pin);
  });

  it('answers with the stable codes', async () => {
    const codes = errors.filter((e): e is { code: string } => e instanceof Error).map((e) => (e as Error & { code: string }).code);
    expect(new Set(codes)).toEqual(new Set(['custody_unavailable', 'recipient_unsupported']));
    await expectBrokerError(Promise.reject(errors.at(-1)), 'custody_unavailable', 503);
  });
});
