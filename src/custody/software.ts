/**
 * Software custody (the embedded default): a 256-bit KEK in a 0600 file in the state directory;
 * data keys from the CSPRNG, wrapped with AES-256-GCM bound to `name:version` as associated data.
 * The plaintext data key exists in this process only for the instant of a release, and the
 * buffer is zeroed afterwards.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { BrokerError } from '../errors.js';
import { releaseKid, type RecipientJwk, type ReleasedKey } from '../protocol.js';
import { keyAad, type KeyCustodian, type KeyRef, type WrappedKey } from './custodian.js';
import { encryptToRecipient, validateRecipient } from './recipient.js';

const ALG = 'software:A256GCM';
const IV_LEN = 12;
const TAG_LEN = 16;

export class SoftwareCustodian implements KeyCustodian {
  readonly kind = 'software' as const;
  readonly recipientKeyTypes = ['EC', 'RSA'] as const;
  readonly #kek: Buffer;
  #closed = false;
  readonly kekId: string;

  constructor(kek: Buffer) {
    if (kek.length !== 32) throw new BrokerError('custody_unavailable', 'software KEK must be 32 bytes');
    this.#kek = Buffer.from(kek);
    this.kekId = 'sha256:' + createHash('sha256').update('keyanchor-kek-id').update(kek).digest('hex').slice(0, 16);
  }

  async generate(ref: KeyRef): Promise<WrappedKey> {
    const key = randomBytes(32);
    try {
      return { alg: ALG, kekId: this.kekId, blob: this.#seal(key, ref) };
    } finally {
      key.fill(0);
    }
  }

  async releaseTo(ref: KeyRef, wrapped: WrappedKey, recipient: RecipientJwk): Promise<ReleasedKey> {
    const to = validateRecipient(recipient);
    const key = this.#open(wrapped, ref);
    try {
      const jwe = encryptToRecipient(to, key, releaseKid(ref.name, ref.version));
      return { name: ref.name, version: ref.version, form: 'plaintext', jwe };
    } finally {
      key.fill(0);
    }
  }

  async check(ref: KeyRef, wrapped: WrappedKey): Promise<void> {
    this.#open(wrapped, ref).fill(0);
  }

  async health(): Promise<void> {
    this.#ensureOpen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#kek.fill(0);
  }

  /** A closed custodian has a zeroed KEK: refuse rather than wrap under zeros. */
  #ensureOpen(): void {
    if (this.#closed) throw new BrokerError('custody_unavailable', 'software custodian is closed');
  }

  #seal(key: Buffer, ref: KeyRef): Buffer {
    this.#ensureOpen();
    const iv = randomBytes(IV_LEN);
    const c = createCipheriv('aes-256-gcm', this.#kek, iv);
    c.setAAD(keyAad(ref));
    const ct = Buffer.concat([c.update(key), c.final()]);
    return Buffer.concat([iv, ct, c.getAuthTag()]);
  }

  #open(wrapped: WrappedKey, ref: KeyRef): Buffer {
    this.#ensureOpen();
    if (wrapped.alg !== ALG || wrapped.kekId !== this.kekId) {
      throw new BrokerError('custody_unavailable', `key ${ref.name}@${ref.version} is wrapped by ${wrapped.alg} ${wrapped.kekId}, not this KEK`);
    }
    const b = wrapped.blob;
    if (b.length !== IV_LEN + 32 + TAG_LEN) throw new BrokerError('custody_unavailable', 'wrapped key has the wrong length');
    try {
      const d = createDecipheriv('aes-256-gcm', this.#kek, b.subarray(0, IV_LEN));
      d.setAAD(keyAad(ref));
      d.setAuthTag(b.subarray(b.length - TAG_LEN));
      return Buffer.concat([d.update(b.subarray(IV_LEN, b.length - TAG_LEN)), d.final()]);
    } catch (e) {
      throw new BrokerError('custody_unavailable', `wrapped key ${ref.name}@${ref.version} fails authentication`, { cause: e });
    }
  }
}
