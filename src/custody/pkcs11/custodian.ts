/**
 * PKCS#11 custody: data keys are made, wrapped, unwrapped and re-encrypted inside the HSM; the
 * broker handles only wrapped blobs and the finished JWE, never a key's bytes.
 *
 * Blob layout: `W ‖ T` where W = C_WrapKey(KEK, data key) with CKM_AES_KEY_WRAP_PAD (or
 * CKM_AES_KEY_WRAP), 40 bytes for a 256-bit key, and T = AES-CMAC(data key, keyAad(ref)),
 * 16 bytes, computed in the HSM. AES key wrap takes no associated data, so T is what binds the
 * blob to its name and version: a release verifies T (C_Verify, in the HSM) before anything else,
 * and a blob presented under another name or version fails closed. Forging T needs the data key.
 *
 * Release (`form: 'cek'`, see protocol.ts): the unwrapped data key becomes the content-encryption
 * key of a compact JWE to the agent's RSA key: encrypted_key = C_WrapKey(RSA-OAEP, recipient,
 * data key), and the data key AES-GCM-encrypts the UTF-8 kid `name@version` with the encoded
 * protected header as additional data. Every object made for a call is a session object and is
 * destroyed in `finally`. CKA_VALUE is never read.
 *
 * Trust boundary: a data key must be CKA_EXTRACTABLE for the HSM to wrap it to the agent, so
 * whoever holds the user PIN can unwrap any blob and wrap it to a key of their own. The PIN (and
 * the host holding it) is the boundary; the HSM keeps the KEK and the keys off the broker's heap.
 *
 * RSA-OAEP's hash comes from `oaepHash`: SHA-256 (RSA-OAEP-256) is the default and what real HSMs
 * support; SoftHSM 2.6 implements OAEP with SHA-1 only (RSA-OAEP) and answers SHA-256 with
 * CKR_ARGUMENTS_BAD, which surfaces as custody_unavailable naming `oaepHash`.
 */
import { randomBytes } from 'node:crypto';
import type { Pkcs11CustodyConfig } from '../../config.js';
import { BrokerError } from '../../errors.js';
import { releaseKid, type RecipientJwk, type ReleasedKey } from '../../protocol.js';
import { keyAad, type KeyCustodian, type KeyRef, type WrappedKey } from '../custodian.js';
import { validateRecipient } from '../recipient.js';
import { CK_PARAMS, CKA, CKG, CKK, CKM, CKO, CKR, CKZ_DATA_SPECIFIED } from './constants.js';
import { ckrOf, failureName, recoveryFor } from './errors.js';
import { compactJwe, encodeProtectedHeader, GCM_IV_BYTES, GCM_TAG_BYTES, type CekAlg } from './jwe.js';
import type { Handle, Pkcs11Module } from './library.js';
import { makeProbeKey, probeRelease, type ProbeKey } from './probe.js';
import type { Lease, SessionPool } from './sessions.js';

const DATA_KEY_BYTES = 32;
const WRAPPED_BYTES = 40;
const TAG_BYTES = 16;

const WRAP_ALGS = {
  'pkcs11:AES_KEY_WRAP_PAD': CKM.AES_KEY_WRAP_PAD,
  'pkcs11:AES_KEY_WRAP': CKM.AES_KEY_WRAP,
} as const;
type WrapAlg = keyof typeof WRAP_ALGS;

const OAEP = {
  'SHA-1': { alg: 'RSA-OAEP', hashAlg: CKM.SHA_1, mgf: CKG.MGF1_SHA1 },
  'SHA-256': { alg: 'RSA-OAEP-256', hashAlg: CKM.SHA256, mgf: CKG.MGF1_SHA256 },
} as const satisfies Record<Pkcs11CustodyConfig['oaepHash'], { alg: CekAlg; hashAlg: number; mgf: number }>;

/** One RSA key for every probe in this process (making one costs ~100 ms of CPU). */
let probeKey: Promise<ProbeKey> | undefined;

/** Refusals of the OAEP parameters, as opposed to a failing device. */
const OAEP_REFUSED: ReadonlySet<number> = new Set([CKR.ARGUMENTS_BAD, CKR.MECHANISM_INVALID, CKR.MECHANISM_PARAM_INVALID]);
/**
 * Refusals of the recipient key itself (one this token cannot take, e.g. larger than it supports):
 * the agent's fault, `400 recipient_invalid`. A failing device or session stays custody_unavailable.
 */
const RECIPIENT_REFUSED: ReadonlySet<number> = new Set([
  CKR.ATTRIBUTE_VALUE_INVALID,
  CKR.TEMPLATE_INCONSISTENT,
  CKR.DATA_LEN_RANGE,
  CKR.KEY_SIZE_RANGE,
  CKR.KEY_TYPE_INCONSISTENT,
  CKR.WRAPPING_KEY_SIZE_RANGE,
  CKR.WRAPPING_KEY_TYPE_INCONSISTENT,
]);

export class Pkcs11Custodian implements KeyCustodian {
  readonly kind = 'pkcs11' as const;
  readonly recipientKeyTypes = ['RSA'] as const;
  readonly #pool: SessionPool;
  readonly #wrapAlg: WrapAlg;
  readonly #oaep: (typeof OAEP)[keyof typeof OAEP];
  readonly #oaepHash: Pkcs11CustodyConfig['oaepHash'];
  readonly #wrapMechanism: Pkcs11CustodyConfig['wrapMechanism'];
  #probeFailure: BrokerError | undefined;
  #probing: Promise<BrokerError | undefined> | undefined;
  #probeTimer: NodeJS.Timeout | undefined;

  constructor(pool: SessionPool, config: Pick<Pkcs11CustodyConfig, 'wrapMechanism' | 'oaepHash'>) {
    this.#pool = pool;
    this.#wrapAlg = `pkcs11:${config.wrapMechanism}`;
    this.#oaep = OAEP[config.oaepHash];
    this.#oaepHash = config.oaepHash;
    this.#wrapMechanism = config.wrapMechanism;
  }

  get kekId(): string {
    return this.#pool.kekId;
  }

  /** Runs `op` on a logged-in session of the pool (the audit signing key, auditKey.ts, uses it). */
  withSession<T>(what: string, op: (lease: Lease) => Promise<T>): Promise<T> {
    return this.#pool.run(what, op);
  }

  async generate(ref: KeyRef): Promise<WrappedKey> {
    const alg = this.#wrapAlg;
    return this.#pool.run(`generating ${releaseKid(ref.name, ref.version)}`, async ({ mod, session, kek, kekId }) => {
      const objects = new SessionObjects(mod, session);
      try {
        const key = objects.add(await mod.C_GenerateKeyAsync(session, { mechanism: CKM.AES_KEY_GEN }, DATA_KEY_TEMPLATE.generate));
        const wrapped = await mod.C_WrapKeyAsync(session, { mechanism: WRAP_ALGS[alg] }, kek, key, Buffer.alloc(WRAPPED_BYTES + 16));
        mod.C_SignInit(session, { mechanism: CKM.AES_CMAC }, key);
        const tag = await mod.C_SignAsync(session, keyAad(ref), Buffer.alloc(TAG_BYTES));
        if (wrapped.length !== WRAPPED_BYTES || tag.length !== TAG_BYTES) {
          throw new BrokerError('custody_unavailable', `pkcs11: the token wrapped to ${wrapped.length} bytes and a ${tag.length}-byte CMAC, not ${WRAPPED_BYTES} and ${TAG_BYTES}`);
        }
        return { alg, kekId, blob: Buffer.concat([wrapped, tag]) };
      } finally {
        objects.destroyAll();
      }
    });
  }

  async releaseTo(ref: KeyRef, wrapped: WrappedKey, recipient: RecipientJwk): Promise<ReleasedKey> {
    const kid = releaseKid(ref.name, ref.version);
    const rsa = await this.#rsaRecipient(recipient);
    if (!Object.hasOwn(WRAP_ALGS, wrapped.alg)) throw new BrokerError('custody_unavailable', `key ${kid} is wrapped with ${wrapped.alg}, not by pkcs11 custody`);
    if (wrapped.blob.length !== WRAPPED_BYTES + TAG_BYTES) throw new BrokerError('custody_unavailable', `wrapped key ${kid} has the wrong length`);
    const header = encodeProtectedHeader(this.#oaep.alg, kid);

    return this.#pool.run(`releasing ${kid}`, async (lease) => {
      if (wrapped.kekId !== lease.kekId) {
        throw new BrokerError('custody_unavailable', `key ${kid} is wrapped by ${wrapped.kekId}, not by this KEK ${lease.kekId}`);
      }
      const objects = new SessionObjects(lease.mod, lease.session);
      try {
        const key = await unwrapBound(lease, objects, ref, WRAP_ALGS[wrapped.alg as WrapAlg], wrapped.blob);
        const encryptedKey = await this.#wrapToRecipient(lease, objects, key, rsa, kid);
        const { iv, sealed } = await sealKid(lease, key, kid, header);
        return { name: ref.name, version: ref.version, form: 'cek' as const, jwe: compactJwe(header, encryptedKey, iv, sealed) };
      } finally {
        objects.destroyAll();
      }
    });
  }

  async check(ref: KeyRef, wrapped: WrappedKey): Promise<void> {
    const kid = releaseKid(ref.name, ref.version);
    if (!Object.hasOwn(WRAP_ALGS, wrapped.alg)) throw new BrokerError('custody_unavailable', `key ${kid} is wrapped with ${wrapped.alg}, not by pkcs11 custody`);
    if (wrapped.blob.length !== WRAPPED_BYTES + TAG_BYTES) throw new BrokerError('custody_unavailable', `wrapped key ${kid} has the wrong length`);
    await this.#pool.run(`checking ${kid}`, async (lease) => {
      if (wrapped.kekId !== lease.kekId) throw new BrokerError('custody_unavailable', `key ${kid} is wrapped by ${wrapped.kekId}, not by this KEK ${lease.kekId}`);
      const objects = new SessionObjects(lease.mod, lease.session);
      try {
        await unwrapBound(lease, objects, ref, WRAP_ALGS[wrapped.alg as WrapAlg], wrapped.blob);
      } finally {
        objects.destroyAll();
      }
    });
  }

  /**
   * Ready when a session is logged in with the KEK in place and the last readiness probe (probe.ts)
   * passed. After a failed probe, each call probes again, so readiness returns with the token.
   */
  async health(): Promise<void> {
    await this.#pool.health();
    const failure = this.#probeFailure && (await this.probe());
    if (failure) throw failure;
  }

  /** Runs the readiness probe now (one at a time) and returns its failure, if any; health() reports it. */
  probe(): Promise<BrokerError | undefined> {
    this.#probing ??= (async () => {
      try {
        await probeRelease(this, await (probeKey ??= makeProbeKey()), { wrapMechanism: this.#wrapMechanism, oaepHash: this.#oaepHash });
        this.#probeFailure = undefined;
      } catch (e) {
        this.#probeFailure = e instanceof BrokerError ? e : new BrokerError('custody_unavailable', `pkcs11: readiness probe: ${String(e)}`, { cause: e });
      }
      return this.#probeFailure;
    })().finally(() => (this.#probing = undefined));
    return this.#probing;
  }

  /** Probes every `intervalMs` until close(); the timer never keeps the process alive. */
  probeEvery(intervalMs: number): void {
    clearInterval(this.#probeTimer);
    this.#probeTimer = setInterval(() => void this.probe(), intervalMs).unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#probeTimer);
    await this.#probing;
    return this.#pool.close();
  }

  /** RSA only (the HSM wraps with RSA-OAEP); the same recipient checks as software custody. */
  async #rsaRecipient(jwk: RecipientJwk): Promise<{ n: Buffer; e: Buffer }> {
    if (jwk.kty !== 'RSA') throw new BrokerError('recipient_unsupported', `pkcs11 custody releases to RSA keys only, not ${jwk.kty}`);
    if (jwk.alg !== undefined && jwk.alg !== this.#oaep.alg) {
      throw new BrokerError('recipient_unsupported', `the recipient key is for ${jwk.alg}; this custodian wraps with ${this.#oaep.alg}`);
    }
    const valid = validateRecipient(jwk);
    if (valid.kty !== 'RSA') throw new BrokerError('recipient_unsupported', 'pkcs11 custody releases to RSA keys only');
    return { n: valid.n, e: valid.e };
  }

  /** encrypted_key: the data key wrapped with RSA-OAEP to a session copy of the recipient's public key. */
  async #wrapToRecipient({ mod, session }: Lease, objects: SessionObjects, key: Handle, rsa: { n: Buffer; e: Buffer }, kid: string): Promise<Buffer> {
    const pub = objects.add(await refuseRecipient(() => mod.C_CreateObject(session, recipientTemplate(rsa.n, rsa.e))));
    const parameter = { type: CK_PARAMS.RSA_OAEP, hashAlg: this.#oaep.hashAlg, mgf: this.#oaep.mgf, source: CKZ_DATA_SPECIFIED };
    const wrapping = refuseRecipient(() => mod.C_WrapKeyAsync(session, { mechanism: CKM.RSA_PKCS_OAEP, parameter }, pub, key, Buffer.alloc(rsa.n.length)));
    return refine(wrapping, (e) =>
      OAEP_REFUSED.has(ckrOf(e) ?? -1)
        ? `the token refused RSA-OAEP with ${this.#oaepHash} (${failureName(e)}); SoftHSM 2.6 supports only SHA-1: ` +
          'set custody.oaepHash to SHA-1 for it (real HSMs support SHA-256)'
        : `wrapping ${kid} to the recipient failed (${failureName(e)})`,
    );
  }
}

/** Unwraps the data key into a session object and checks, in the HSM, that the blob belongs to `ref`. */
async function unwrapBound({ mod, session, kek, kekId }: Lease, objects: SessionObjects, ref: KeyRef, mechanism: number, blob: Buffer): Promise<Handle> {
  const kid = releaseKid(ref.name, ref.version);
  const wrapped = blob.subarray(0, WRAPPED_BYTES);
  const tag = blob.subarray(WRAPPED_BYTES);
  const key = objects.add(
    await refine(mod.C_UnwrapKeyAsync(session, { mechanism }, kek, wrapped, DATA_KEY_TEMPLATE.release), (e) =>
      `wrapped key ${kid} does not unwrap under ${kekId} (${failureName(e)})`),
  );
  const notBound = `wrapped key ${kid} is bound to another key name or version`;
  mod.C_VerifyInit(session, { mechanism: CKM.AES_CMAC }, key);
  const bound = await refine(mod.C_VerifyAsync(session, keyAad(ref), tag), (e) =>
    ckrOf(e) === CKR.SIGNATURE_INVALID ? notBound : `verifying the binding of ${kid} failed (${failureName(e)})`);
  if (!bound) throw new BrokerError('custody_unavailable', `pkcs11: ${notBound}`);
  return key;
}

/** The JWE content: AES-256-GCM under the data key, in the HSM, of the UTF-8 kid, with the encoded header as AAD. */
async function sealKid({ mod, session }: Lease, key: Handle, kid: string, header: string): Promise<{ iv: Buffer; sealed: Buffer }> {
  const iv = randomBytes(GCM_IV_BYTES);
  const plaintext = Buffer.from(kid, 'utf8');
  const parameter = { type: CK_PARAMS.AES_GCM_v240, iv, ivBits: GCM_IV_BYTES * 8, aad: Buffer.from(header, 'ascii'), tagBits: GCM_TAG_BYTES * 8 };
  mod.C_EncryptInit(session, { mechanism: CKM.AES_GCM, parameter }, key);
  const sealed = await mod.C_EncryptAsync(session, plaintext, Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
  return { iv, sealed };
}

/** Data keys are session objects: sensitive, extractable only so they can be wrapped, single-purpose. */
const dataKeyTemplate = (uses: { sign?: boolean; verify?: boolean; encrypt?: boolean }) => [
  { type: CKA.CLASS, value: CKO.SECRET_KEY },
  { type: CKA.KEY_TYPE, value: CKK.AES },
  { type: CKA.TOKEN, value: false },
  { type: CKA.PRIVATE, value: true },
  { type: CKA.SENSITIVE, value: true },
  { type: CKA.EXTRACTABLE, value: true },
  { type: CKA.SIGN, value: uses.sign ?? false },
  { type: CKA.VERIFY, value: uses.verify ?? false },
  { type: CKA.ENCRYPT, value: uses.encrypt ?? false },
  { type: CKA.DECRYPT, value: false },
  { type: CKA.WRAP, value: false },
  { type: CKA.UNWRAP, value: false },
  { type: CKA.DERIVE, value: false },
];

const DATA_KEY_TEMPLATE = {
  generate: [...dataKeyTemplate({ sign: true }), { type: CKA.VALUE_LEN, value: DATA_KEY_BYTES }],
  release: dataKeyTemplate({ verify: true, encrypt: true }),
};

const recipientTemplate = (n: Buffer, e: Buffer) => [
  { type: CKA.CLASS, value: CKO.PUBLIC_KEY },
  { type: CKA.KEY_TYPE, value: CKK.RSA },
  { type: CKA.TOKEN, value: false },
  { type: CKA.MODULUS, value: n },
  { type: CKA.PUBLIC_EXPONENT, value: e },
  { type: CKA.WRAP, value: true },
  { type: CKA.ENCRYPT, value: false },
  { type: CKA.VERIFY, value: false },
];

/**
 * Turns a failure into custody_unavailable with a precise reason, except a failure the session
 * pool recovers from, which passes through untouched so it still triggers the recovery.
 */
async function refine<T>(p: Promise<T>, reason: (e: unknown) => string): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof BrokerError || recoveryFor(e) !== undefined) throw e;
    throw new BrokerError('custody_unavailable', `pkcs11: ${reason(e)}`, { cause: e });
  }
}

/** A token's refusal of the recipient key becomes recipient_invalid; anything else passes on. */
async function refuseRecipient<T>(op: () => T | Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    if (RECIPIENT_REFUSED.has(ckrOf(e) ?? -1)) throw new BrokerError('recipient_invalid', `pkcs11: the token refused the recipient key (${failureName(e)})`, { cause: e });
    throw e;
  }
}

/** The objects one call makes; all destroyed in its `finally`, best effort (a lost session took them along). */
class SessionObjects {
  readonly #handles: Handle[] = [];
  constructor(
    private readonly mod: Pkcs11Module,
    private readonly session: Handle,
  ) {}

  add(h: Handle): Handle {
    this.#handles.push(h);
    return h;
  }

  destroyAll(): void {
    for (const h of this.#handles.splice(0).reverse()) {
      try {
        this.mod.C_DestroyObject(this.session, h);
      } catch {
        /* the session is gone, and its objects with it */
      }
    }
  }
}
