/**
 * The `cek` release as the wire sees it, the wrap mechanism and OAEP hash options, and 50
 * concurrent releases through a pool of 4 sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyRef, WrappedKey } from '../../../src/custody/custodian.js';
import { createPkcs11Custodian, hsmInit } from '../../../src/custody/pkcs11/index.js';
import { agentKey, openReleasedKey } from '../../contract/agentSide.js';
import { expectBrokerError } from '../../contract/custodian.contract.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../../helpers/softhsm.js';
import { createSpy, type Spy } from './pkcs11Spy.js';

describe.skipIf(!softhsmAvailable())('pkcs11 releases', () => {
  let hsm: SoftHsm;
  let spy: Spy;
  let c: Awaited<ReturnType<typeof createPkcs11Custodian>>;
  const agent = agentKey('RSA', 3072); // what attest-agent generates
  const ref: KeyRef = { name: 'billing/ledger', version: 7 };
  let wrapped: WrappedKey;

  beforeAll(async () => {
    hsm = createSoftHsm();
    await hsmInit(softhsmCustodyConfig(hsm));
    spy = createSpy();
    c = await createPkcs11Custodian(softhsmCustodyConfig(hsm), spy.internals);
    wrapped = await c.generate(ref);
  });
  afterAll(async () => {
    await c?.close();
    hsm?.cleanup();
  });

  it('stores CMAC-bound AES-KWP blobs under the named KEK', () => {
    expect(wrapped.alg).toBe('pkcs11:AES_KEY_WRAP_PAD');
    expect(wrapped.kekId).toBe(c.kekId);
    expect(wrapped.kekId).toMatch(/^pkcs11:keyanchor-kek:[0-9a-f]{32}$/);
    expect(wrapped.blob).toHaveLength(40 + 16);
  });

  it('releases a compact JWE whose CEK is the key, to RSA-OAEP, with the kid as plaintext', async () => {
    const released = await c.releaseTo(ref, wrapped, agent.jwk);
    expect(released).toMatchObject({ name: ref.name, version: ref.version, form: 'cek' });
    const [h, ek, iv, ct, tag, ...rest] = released.jwe.split('.');
    expect(rest).toEqual([]);
    expect(Buffer.from(h!, 'base64url').toString()).toBe('{"alg":"RSA-OAEP","enc":"A256GCM","kid":"billing/ledger@7"}');
    expect([Buffer.from(ek!, 'base64url').length, Buffer.from(iv!, 'base64url').length, Buffer.from(tag!, 'base64url').length]).toEqual([384, 12, 16]);
    expect(Buffer.from(ct!, 'base64url')).toHaveLength('billing/ledger@7'.length);
    const opened = await openReleasedKey(released, agent);
    expect(opened).toMatchObject({ kid: 'billing/ledger@7', alg: 'RSA-OAEP' });
    const again = await c.releaseTo(ref, wrapped, agent.jwk);
    expect(again.jwe.split('.')[2]).not.toBe(iv); // fresh IV per release
  });

  it('says why a blob under the wrong ref is refused', async () => {
    const e = await expectBrokerError(c.releaseTo({ ...ref, version: 8 }, wrapped, agent.jwk), 'custody_unavailable', 503);
    expect(e.reason).toContain('is bound to another key name or version');
  });

  it('refuses a recipient key whose alg is not the configured OAEP', async () => {
    await expectBrokerError(c.releaseTo(ref, wrapped, { ...(agent.jwk as { kty: 'RSA'; n: string; e: string }), alg: 'RSA-OAEP-256' }), 'recipient_unsupported', 400);
  });

  it('with oaepHash SHA-256, SoftHSM 2.6 refuses and the error names the setting', async () => {
    const sha256 = await createPkcs11Custodian(softhsmCustodyConfig(hsm, { oaepHash: 'SHA-256' }));
    try {
      const e = await expectBrokerError(sha256.releaseTo(ref, wrapped, agent.jwk), 'custody_unavailable', 503);
      expect(e.reason).toContain('refused RSA-OAEP with SHA-256 (CKR_ARGUMENTS_BAD)');
      expect(e.reason).toContain('oaepHash');
    } finally {
      await sha256.close();
    }
  });

  it('wraps with AES_KEY_WRAP when configured, and releases blobs of either mechanism', async () => {
    const kw = await createPkcs11Custodian(softhsmCustodyConfig(hsm, { wrapMechanism: 'AES_KEY_WRAP' }));
    try {
      const w = await kw.generate(ref);
      expect(w.alg).toBe('pkcs11:AES_KEY_WRAP');
      const viaKwp = await openReleasedKey(await c.releaseTo(ref, w, agent.jwk), agent);
      const viaKw = await openReleasedKey(await kw.releaseTo(ref, w, agent.jwk), agent);
      expect(viaKw.key.equals(viaKwp.key)).toBe(true);
      expect((await openReleasedKey(await kw.releaseTo(ref, wrapped, agent.jwk), agent)).kid).toBe('billing/ledger@7');
    } finally {
      await kw.close();
    }
  });

  it('serves 50 concurrent releases through a pool of 4 sessions', async () => {
    const before = spy.calls.length;
    const released = await Promise.all(Array.from({ length: 50 }, () => c.releaseTo(ref, wrapped, agent.jwk)));
    const keys = await Promise.all(released.map((r) => openReleasedKey(r, agent)));
    for (const k of keys) expect(k.key.equals(keys[0]!.key)).toBe(true);
    const sessions = new Set(spy.calls.slice(before).filter((x) => x.name === 'C_UnwrapKeyAsync').map((x) => (x.args[0] as Buffer).toString('hex')));
    expect(sessions.size).toBe(4);
  });
});
