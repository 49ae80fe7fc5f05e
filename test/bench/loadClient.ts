/**
 * One load-generator connection: the agent's exchange (challenge → evidence → attest → open the
 * released key) made cheap enough to share two cores with the broker it measures.
 *
 * - One kept-alive TLS connection per client (an https.Agent with one socket), as a long-running
 *   client holds; the handshake happens during the warm-up. (Plain HTTP for an http: URL: the
 *   profile's comparison that prices TLS.)
 * - The evidence is one payload template (built and schema-checked once by the agent's own
 *   buildPayload) in which only the nonce, iat and recipient change; the node key signs every
 *   evidence (ES256 through src/jose, as the agent does).
 * - The recipient key is fresh per release (`fresh`, what the agent does) or taken from a small
 *   pool made once (the broker still runs a fresh ephemeral key and ECDH for every release: the
 *   JWE's `epk` is its own; only the agent's side is saved).
 * - Released keys are opened and checked (the agent's openReleasedKeys: alg, enc, kid
 *   name@version, the requested set) for a sample only, and must all be the same 32 bytes.
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { buildPayload, createRecipient, openReleasedKeys, zeroKeys, type NodeIdentity, type Recipient, type WorkloadClaims } from '../../attest-agent/src/index.js';
import { compactSign } from '../../src/jose/index.js';
import { EVIDENCE_TYP, type AttestResponse, type ChallengeResponse, type RecipientKeyType } from '../../src/protocol.js';

export interface Identity {
  node: NodeIdentity;
  workload: WorkloadClaims;
  key: string;
  ca: Buffer;
}

/** A few recipients per key type, made on first use and shared by every client. */
export class RecipientPool {
  readonly #pools = new Map<RecipientKeyType, Promise<Recipient[]>>();
  constructor(readonly size: number) {}
  get(type: RecipientKeyType, i: number): Promise<Recipient> {
    let pool = this.#pools.get(type);
    if (!pool) this.#pools.set(type, (pool = Promise.all(Array.from({ length: this.size }, () => createRecipient(type)))));
    return pool.then((p) => p[i % p.length]!);
  }
}

/** A refusal or a transport failure, counted by `code` (the problem code, or the socket error). */
export class ReleaseFailed extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

export class LoadClient {
  readonly #lib: typeof http | typeof https;
  readonly #agent: http.Agent;
  readonly #template: ReturnType<typeof buildPayload>;
  readonly #header: { alg: NodeIdentity['alg']; typ: string; x5c: string[] };
  #type: RecipientKeyType | undefined;
  /** The first key opened from each broker: every later sample from it must be the same bytes. */
  static readonly #reference = new Map<string, Buffer>();

  constructor(
    readonly url: string,
    readonly id: Identity,
    readonly index: number,
    readonly pool: RecipientPool,
  ) {
    this.#template = buildPayload({ nonce: 'A'.repeat(43), workload: id.workload, keys: [{ name: id.key }], recipient: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43) } });
    this.#header = { alg: id.node.alg, typ: EVIDENCE_TYP, x5c: id.node.x5c };
    this.#lib = url.startsWith('https:') ? https : http;
    this.#agent = new this.#lib.Agent({ keepAlive: true, maxSockets: 1 });
  }

  /** One release; opens and checks the key when `check`. */
  async release(opts: { fresh: boolean; check: boolean }): Promise<void> {
    const challenge = JSON.parse(await this.#post('v1/challenge', '{}')) as ChallengeResponse;
    this.#type ??= challenge.recipientKeyTypes.includes('EC') ? 'EC' : 'RSA';
    const recipient = opts.fresh ? await createRecipient(this.#type) : await this.pool.get(this.#type, this.index);
    const payload = { ...this.#template, nonce: challenge.nonce, iat: Math.floor(Date.now() / 1000), cnf: { jwk: recipient.publicJwk } };
    const evidence = compactSign(this.#header, Buffer.from(JSON.stringify(payload), 'utf8'), this.id.node.privateKey);
    const answer = JSON.parse(await this.#post('v1/attest', JSON.stringify({ evidence }))) as AttestResponse;
    if (opts.check) this.#check(await openReleasedKeys(answer.keys, [{ name: this.id.key }], recipient));
  }

  #check({ keys }: { keys: Map<string, Buffer> }): void {
    const key = keys.get(this.id.key)!;
    let reference = LoadClient.#reference.get(this.url);
    if (!reference) LoadClient.#reference.set(this.url, (reference = Buffer.from(key)));
    const same = key.length === 32 && timingSafeEqual(key, reference);
    zeroKeys(keys);
    if (!same) throw new ReleaseFailed('released key differs from the first one released');
  }

  close(): void {
    this.#agent.destroy();
  }

  /** POSTs JSON on the kept-alive connection; the 200 body, or ReleaseFailed with the problem code. */
  #post(route: string, body: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = this.#lib.request(`${this.url}/${route}`, {
        method: 'POST',
        agent: this.#agent,
        ...(this.#lib === https ? { ca: this.id.ca } : {}),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.setTimeout(30_000, () => req.destroy(new ReleaseFailed('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof ReleaseFailed ? e : new ReleaseFailed(e.code ?? e.message)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new ReleaseFailed(e.message)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200) return resolve(text);
          let code = `HTTP ${res.statusCode}`;
          try {
            code = (JSON.parse(text) as { code?: string }).code ?? code;
          } catch {
            /* not a problem document */
          }
          reject(new ReleaseFailed(code));
        });
      });
      req.end(body);
    });
  }
}
