/**
 * The KeyCustodian contract: one suite that every custody backend passes, against the real thing
 * (SPIRE's keymanagertest idea). Run it from a `custodian.<backend>.test.ts`.
 *
 * Wrong ref: every backend fails closed (custody_unavailable) when a blob is released under a
 * name or version other than the one it was generated for:
 * - software: the ref is the AES-GCM associated data of the blob;
 * - pkcs11: the blob carries an AES-CMAC of the ref under the data key, verified in the HSM.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/errors.js';
import type { KeyCustodian, KeyRef, WrappedKey } from '../../src/custody/custodian.js';
import { RecipientKeyType } from '../../src/protocol.js';
import { hostileRecipients } from '../helpers/hostileRecipients.js';
import { agentKey, openReleasedKey, type AgentKey } from './agentSide.js';

export async function expectBrokerError(p: Promise<unknown>, code: string, status?: number): Promise<BrokerError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected BrokerError ${code}`).toBeInstanceOf(BrokerError);
  const b = e as BrokerError;
  expect({ code: b.code, ...(status === undefined ? {} : { status: b.status }) }).toEqual({ code, ...(status === undefined ? {} : { status }) });
  return b;
}

export function custodianContract(name: string, makeCustodian: () => Promise<KeyCustodian>): void {
  describe(`KeyCustodian contract: ${name}`, () => {
    let c: KeyCustodian;
    const agents = {} as Record<'RSA' | 'EC' | 'RSA1024' | 'RSA2', AgentKey>;
    const ref: KeyRef = { name: 'payments/db', version: 1 };
    let wrapped: WrappedKey;
    let preferred: AgentKey;

    beforeAll(async () => {
      c = await makeCustodian();
      agents.RSA = agentKey('RSA');
      agents.RSA2 = agentKey('RSA');
      agents.EC = agentKey('EC');
      agents.RSA1024 = agentKey('RSA', 1024);
      preferred = agents[c.recipientKeyTypes[0]!];
      wrapped = await c.generate(ref);
    });
    afterAll(async () => {
      await c?.close();
    });

    it('names its kind and at least one recipient key type', () => {
      expect(c.kind).toBe(name);
      expect(c.recipientKeyTypes.length).toBeGreaterThan(0);
      for (const t of c.recipientKeyTypes) expect(RecipientKeyType.options).toContain(t);
    });

    it('check: proves a blob unwraps under its KEK and belongs to its ref, and releases nothing', async () => {
      await expect(c.check(ref, wrapped)).resolves.toBeUndefined();
      expect(c.kekId).toBe(wrapped.kekId);
      await expectBrokerError(c.check({ name: ref.name, version: 2 }, wrapped), 'custody_unavailable', 503);
      await expectBrokerError(c.check({ name: 'payments/other', version: 1 }, wrapped), 'custody_unavailable', 503);
      const flipped = Buffer.from(wrapped.blob);
      flipped[flipped.length - 1]! ^= 1;
      await expectBrokerError(c.check(ref, { ...wrapped, blob: flipped }), 'custody_unavailable', 503);
      await expectBrokerError(c.check(ref, { ...wrapped, kekId: 'another-kek' }), 'custody_unavailable', 503);
      await expectBrokerError(c.check(ref, { ...wrapped, blob: wrapped.blob.subarray(1) }), 'custody_unavailable', 503);
    });

    it('check fails closed under another KEK of the same kind', async () => {
      const other = await makeCustodian();
      try {
        const theirs = await other.generate(ref);
        if (other.kekId === c.kekId) return; // one token holds one KEK: the same KEK, nothing to tell apart
        await expectBrokerError(c.check(ref, theirs), 'custody_unavailable', 503);
      } finally {
        await other.close();
      }
    });

    it('releases a 256-bit key the agent can open, with kid name@version', async () => {
      const released = await c.releaseTo(ref, wrapped, preferred.jwk);
      expect(released).toMatchObject({ name: ref.name, version: ref.version });
      const opened = await openReleasedKey(released, preferred);
      expect(opened.kid).toBe('payments/db@1');
      expect(opened.key).toHaveLength(32);
    });

    it('generates a blob that is not the key, and a fresh blob and key on every call', async () => {
      const other = await c.generate(ref);
      expect(other.blob.equals(wrapped.blob)).toBe(false);
      expect(other.kekId).toBe(wrapped.kekId);
      const k1 = (await openReleasedKey(await c.releaseTo(ref, wrapped, preferred.jwk), preferred)).key;
      const k2 = (await openReleasedKey(await c.releaseTo(ref, other, preferred.jwk), preferred)).key;
      expect(k1.equals(k2)).toBe(false);
      for (const [blob, key] of [[wrapped.blob, k1], [other.blob, k2]] as const) {
        expect(blob.indexOf(key.subarray(0, 8))).toBe(-1);
      }
    });

    it('releases the same version as the same bytes, to any recipient, and other versions as other bytes', async () => {
      const v2: KeyRef = { name: ref.name, version: 2 };
      const w2 = await c.generate(v2);
      const a = await openReleasedKey(await c.releaseTo(ref, wrapped, preferred.jwk), preferred);
      const again = await openReleasedKey(await c.releaseTo(ref, wrapped, preferred.jwk), preferred);
      const second = preferred.kind === 'RSA' ? agents.RSA2 : agents.EC;
      const b = await openReleasedKey(await c.releaseTo(ref, wrapped, second.jwk), second);
      const other = await openReleasedKey(await c.releaseTo(v2, w2, preferred.jwk), preferred);
      expect(again.key.equals(a.key)).toBe(true);
      expect(b.key.equals(a.key)).toBe(true);
      expect(other.kid).toBe('payments/db@2');
      expect(other.key.equals(a.key)).toBe(false);
    });

    it('fails closed when a blob is released under another version or name', async () => {
      await expectBrokerError(c.releaseTo({ name: ref.name, version: 2 }, wrapped, preferred.jwk), 'custody_unavailable', 503);
      await expectBrokerError(c.releaseTo({ name: 'payments/other', version: 1 }, wrapped, preferred.jwk), 'custody_unavailable', 503);
    });

    it('fails closed on a tampered, truncated or foreign blob', async () => {
      for (const i of [0, Math.floor(wrapped.blob.length / 2), wrapped.blob.length - 1]) {
        const blob = Buffer.from(wrapped.blob);
        blob[i]! ^= 0x01;
        await expectBrokerError(c.releaseTo(ref, { ...wrapped, blob }, preferred.jwk), 'custody_unavailable', 503);
      }
      await expectBrokerError(c.releaseTo(ref, { ...wrapped, blob: wrapped.blob.subarray(1) }, preferred.jwk), 'custody_unavailable');
      await expectBrokerError(c.releaseTo(ref, { ...wrapped, kekId: 'some-other-kek' }, preferred.jwk), 'custody_unavailable');
      await expectBrokerError(c.releaseTo(ref, { ...wrapped, alg: 'none' }, preferred.jwk), 'custody_unavailable');
      await expectBrokerError(c.releaseTo(ref, { ...wrapped, blob: randomBytes(wrapped.blob.length) }, preferred.jwk), 'custody_unavailable');
    });

    it('releases to every recipient type it lists and refuses the others with recipient_unsupported', async () => {
      for (const type of RecipientKeyType.options) {
        const agent = agents[type];
        if (c.recipientKeyTypes.includes(type)) {
          expect((await openReleasedKey(await c.releaseTo(ref, wrapped, agent.jwk), agent)).kid).toBe('payments/db@1');
        } else {
          await expectBrokerError(c.releaseTo(ref, wrapped, agent.jwk), 'recipient_unsupported', 400);
        }
      }
    });

    it('refuses an RSA recipient below 2048 bits', async () => {
      if (!c.recipientKeyTypes.includes('RSA')) return;
      await expectBrokerError(c.releaseTo(ref, wrapped, agents.RSA1024.jwk), 'recipient_invalid', 400);
    });

    it('refuses every invalid recipient of issue 6 with 400 recipient_invalid (recipient_unsupported for types it does not list)', async () => {
      const hostile = hostileRecipients();
      for (const [what, jwk] of [...hostile.rsa, ...hostile.ec]) {
        const code = c.recipientKeyTypes.includes(jwk.kty) ? 'recipient_invalid' : 'recipient_unsupported';
        const e = await expectBrokerError(c.releaseTo(ref, wrapped, jwk), code, 400);
        expect(e.reason, what).not.toBe('');
      }
    });

    it('is healthy, and closes', async () => {
      await expect(c.health()).resolves.toBeUndefined();
      const extra = await makeCustodian();
      await expect(extra.close()).resolves.toBeUndefined();
      await expect(extra.close()).resolves.toBeUndefined();
    });
  });
}
