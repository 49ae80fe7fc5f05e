/**
 * Recovery: sessions and library state lost behind the backend's back, the token unplugged and
 * plugged back, a module that does not load, and a PIN that stops working. The custodian must
 * answer custody_unavailable (503) while the HSM cannot serve, resume by itself, and never retry
 * a refused PIN.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyRef, WrappedKey } from '../../../src/custody/custodian.js';
import { createPkcs11Custodian, hsmInit } from '../../../src/custody/pkcs11/index.js';
import type { Pkcs11Module } from '../../../src/custody/pkcs11/library.js';
import { CKF } from '../../../src/custody/pkcs11/constants.js';
import { Secret } from '../../../src/secret.js';
import { agentKey, openReleasedKey } from '../../contract/agentSide.js';
import { expectBrokerError } from '../../contract/custodian.contract.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../../helpers/softhsm.js';
import { createSpy, type Spy } from './pkcs11Spy.js';

/** The real module as pkcs11js exposes it, with the calls the backend itself never makes. */
type FullModule = Pkcs11Module & {
  C_CloseAllSessions(slot: Buffer): void;
  C_SetPIN(session: Buffer, oldPin: string, newPin: string): void;
};

describe.skipIf(!softhsmAvailable())('pkcs11 recovery', () => {
  let hsm: SoftHsm;
  const agent = agentKey('RSA');
  const ref: KeyRef = { name: 'ops/recovery', version: 1 };

  beforeAll(async () => {
    hsm = createSoftHsm();
    await hsmInit(softhsmCustodyConfig(hsm));
  });
  afterAll(() => hsm?.cleanup());

  const ourSlot = (mod: Pkcs11Module): Buffer => mod.C_GetSlotList(true).find((s) => mod.C_GetTokenInfo(s).label.trimEnd() === hsm.label)!;
  const keyOf = async (c: Awaited<ReturnType<typeof createPkcs11Custodian>>, w: WrappedKey) =>
    (await openReleasedKey(await c.releaseTo(ref, w, agent.jwk), agent)).key;

  describe('with a live custodian', () => {
    let spy: Spy;
    let c: Awaited<ReturnType<typeof createPkcs11Custodian>>;
    let wrapped: WrappedKey;
    let key: Buffer;

    beforeAll(async () => {
      spy = createSpy();
      c = await createPkcs11Custodian(softhsmCustodyConfig(hsm, { sessions: 2 }), spy.internals);
      wrapped = await c.generate(ref);
      key = await keyOf(c, wrapped);
    });
    afterAll(() => c?.close());

    it('recovers when every session is closed behind its back (login lost too)', async () => {
      const real = spy.real as FullModule;
      real.C_CloseAllSessions(ourSlot(real));
      const logins = spy.named('C_Login').length;
      expect((await keyOf(c, wrapped)).equals(key)).toBe(true);
      expect(spy.named('C_Login').length).toBe(logins + 1);
      real.C_CloseAllSessions(ourSlot(real));
      await expect(c.health()).resolves.toBeUndefined();
      real.C_CloseAllSessions(ourSlot(real));
      expect((await c.generate(ref)).kekId).toBe(c.kekId);
    });

    it('recovers when the library is finalized behind its back', async () => {
      spy.real!.C_Finalize();
      const inits = spy.named('C_Initialize').length;
      expect((await keyOf(c, wrapped)).equals(key)).toBe(true);
      expect(spy.named('C_Initialize').length).toBe(inits + 1);
    });

    it('answers 503 while the token is unplugged, and resumes by itself when it is back', async () => {
      hsm.unplug();
      try {
        // SoftHSM answers CKR_UNWRAPPING_KEY_HANDLE_INVALID, then cannot re-initialize without its token directory.
        await expectBrokerError(c.releaseTo(ref, wrapped, agent.jwk), 'custody_unavailable', 503);
        await expectBrokerError(c.generate(ref), 'custody_unavailable', 503);
        await expectBrokerError(c.health(), 'custody_unavailable', 503);
      } finally {
        hsm.replug();
      }
      expect((await keyOf(c, wrapped)).equals(key)).toBe(true);
      await expect(c.health()).resolves.toBeUndefined();
    });

    it('recovers while many releases are in flight', async () => {
      const real = spy.real as FullModule;
      const pending = Array.from({ length: 12 }, () => keyOf(c, wrapped));
      real.C_CloseAllSessions(ourSlot(real));
      const keys = await Promise.all(pending);
      for (const k of keys) expect(k.equals(key)).toBe(true);
    });
  });

  it('fails closed when the module does not load, or the token is absent', async () => {
    const noModule = await expectBrokerError(createPkcs11Custodian(softhsmCustodyConfig(hsm, { module: '/nonexistent/libnope.so' })), 'custody_unavailable', 503);
    expect(noModule.reason).toContain('cannot load the module /nonexistent/libnope.so');
    const noToken = await expectBrokerError(createPkcs11Custodian(softhsmCustodyConfig(hsm, { token: { label: 'no-such-token' } })), 'custody_unavailable');
    expect(noToken.reason).toContain('no token labelled "no-such-token"');
    await expectBrokerError(createPkcs11Custodian(softhsmCustodyConfig(hsm, { token: { slot: 424242 } })), 'custody_unavailable');
  });

  it('selects the token by slot id too', async () => {
    const spy = createSpy();
    const probe = await createPkcs11Custodian(softhsmCustodyConfig(hsm), spy.internals);
    const slot = ourSlot(spy.real!).readBigUInt64LE(0);
    await probe.close();
    const c = await createPkcs11Custodian(softhsmCustodyConfig(hsm, { token: { slot: Number(slot) } }));
    await expect(c.health()).resolves.toBeUndefined();
    await c.close();
  });

  it('tries a wrong PIN once and says so', async () => {
    const spy = createSpy();
    const e = await expectBrokerError(createPkcs11Custodian({ ...softhsmCustodyConfig(hsm), pin: new Secret('000000') }, spy.internals), 'custody_unavailable');
    expect(e.reason).toContain('refused the user PIN (CKR_PIN_INCORRECT)');
    expect(spy.named('C_Login')).toHaveLength(1);
  });

  it('stops logging in once the token refuses the PIN at runtime (no lockout by retries)', async () => {
    const spy = createSpy();
    const c = await createPkcs11Custodian(softhsmCustodyConfig(hsm), spy.internals);
    const wrapped = await c.generate(ref);
    const real = spy.real as FullModule;
    const setPin = (from: string, to: string) => {
      const s = real.C_OpenSession(ourSlot(real), CKF.SERIAL_SESSION | CKF.RW_SESSION);
      real.C_SetPIN(s, from, to);
      real.C_CloseSession(s);
    };
    setPin(hsm.pin, `${hsm.pin}-new`);
    real.C_CloseAllSessions(ourSlot(real));
    try {
      const first = await expectBrokerError(c.releaseTo(ref, wrapped, agent.jwk), 'custody_unavailable', 503);
      expect(first.reason).toContain('CKR_PIN_INCORRECT');
      const logins = spy.named('C_Login').length;
      await expectBrokerError(c.releaseTo(ref, wrapped, agent.jwk), 'custody_unavailable');
      await expectBrokerError(c.health(), 'custody_unavailable');
      expect(spy.named('C_Login')).toHaveLength(logins);
    } finally {
      setPin(`${hsm.pin}-new`, hsm.pin);
      await c.close();
    }
  });
});
