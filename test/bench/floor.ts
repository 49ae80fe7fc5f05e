/**
 * The crypto floor of one release: the cryptography the broker cannot avoid for a single-key
 * release to an EC recipient (one ECDSA P-256 verify of evidence-sized input, one ephemeral P-256
 * key, one ECDH, AES-256-KW and AES-256-GCM of 32 bytes, 32 random bytes), timed with synchronous
 * node:crypto. Shared by `npm run bench` and `npm run bench:jose`: one definition of the floor.
 *
 * CPU is process.cpuUsage() (user + system, all threads), divided by the operations in a batch;
 * each figure is the median over batches.
 */
import { createECDH, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { aesKeyWrap, gcmSeal } from '../../src/jose/primitives.js';
import { median } from './stats.js';

export interface Batches {
  batches: number;
  perBatch: number;
}

/** Median µs of CPU per call of `op` over `batches` batches of `perBatch` sequential calls. */
export async function cpuPerOp(op: () => unknown, { batches, perBatch }: Batches): Promise<number> {
  for (let i = 0; i < perBatch / 4; i++) await op(); // warm up
  const samples: number[] = [];
  for (let b = 0; b < batches; b++) {
    const start = process.cpuUsage();
    for (let i = 0; i < perBatch; i++) await op();
    const used = process.cpuUsage(start);
    samples.push((used.user + used.system) / perBatch);
  }
  return median(samples);
}

export interface CryptoFloor {
  /** Each primitive alone: [what, µs of CPU]. */
  parts: Array<[string, number]>;
  /** The sum of the parts, µs. */
  sum: number;
  /** All of them in one loop, µs: the floor. */
  together: number;
  /** 1e6 / together. */
  perCpuSecond: number;
}

/** An evidence-sized signing input (the JWS header with a two-certificate x5c and the payload). */
const SIGNING_INPUT_BYTES = 3100;

export async function cryptoFloor(batches: Batches): Promise<CryptoFloor> {
  const node = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signingInput = Buffer.from(randomBytes((SIGNING_INPUT_BYTES * 3) / 4).toString('base64url'), 'latin1');
  const signature = sign('sha256', signingInput, { key: node.privateKey, dsaEncoding: 'ieee-p1363' });
  const agent = createECDH('prime256v1');
  const peer = agent.generateKeys();
  const kek = randomBytes(32);
  const dataKey = randomBytes(32);
  const verifyEvidence = () => verify('sha256', signingInput, { key: node.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  const parts: Array<[string, () => unknown]> = [
    ['ECDSA P-256 verify', verifyEvidence],
    ['P-256 key generation', () => createECDH('prime256v1').generateKeys()],
    ['ECDH', () => agent.computeSecret(peer)],
    ['AES-256-KW of 32 bytes', () => aesKeyWrap(kek, dataKey)],
    ['AES-256-GCM of 32 bytes', () => gcmSeal(kek, randomBytes(12), Buffer.alloc(0), dataKey)],
    ['32 random bytes', () => randomBytes(32)],
  ];
  const timed: Array<[string, number]> = [];
  for (const [what, op] of parts) timed.push([what, await cpuPerOp(op, batches)]);
  const together = await cpuPerOp(() => {
    if (!verifyEvidence()) throw new Error('floor: the signature does not verify');
    const eph = createECDH('prime256v1');
    eph.generateKeys();
    eph.computeSecret(peer);
    aesKeyWrap(kek, dataKey);
    gcmSeal(kek, randomBytes(12), Buffer.alloc(0), randomBytes(32));
  }, batches);
  return { parts: timed, sum: timed.reduce((s, [, us]) => s + us, 0), together, perCpuSecond: 1e6 / together };
}
