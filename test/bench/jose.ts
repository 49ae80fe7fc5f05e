/**
 * `node dist/test/bench/jose.js [--quick]` (after `npm run build`): CPU per operation of the release
 * path's JOSE work, jose (WebCrypto, async) against src/jose (synchronous node:crypto), in one run,
 * next to the crypto floor a release cannot avoid. CPU is process.cpuUsage() (user + system, all
 * threads, so WebCrypto's thread-pool work counts), divided by the operations in a batch; each
 * figure is the median over batches. The machine is noisy: compare figures from the same run.
 */
import { createECDH, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import * as jose from 'jose';
import { encryptToRecipient, validateRecipient } from '../../src/custody/recipient.js';
import { compactDecrypt, compactEncrypt, compactSign, compactVerify, generateP256, pointJwk } from '../../src/jose/index.js';
import type { RecipientJwk } from '../../src/protocol.js';
import { cpuPerOp as cpuPerOpIn, cryptoFloor } from './floor.js';
import { fmt } from './stats.js';

const quick = process.argv.includes('--quick');
const BATCHES = quick ? 5 : 21;
const PER_BATCH = quick ? 20 : 200;

const cpuPerOp = (op: () => unknown) => cpuPerOpIn(op, { batches: BATCHES, perBatch: PER_BATCH });

// ---- fixtures: a node key and evidence-sized JWS, an agent EC key, a 32-byte data key --------
const node = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const x5c = [randomBytes(700).toString('base64'), randomBytes(650).toString('base64')];
const evidencePayload = Buffer.from(JSON.stringify({ ver: 1, nonce: randomBytes(32).toString('base64url'), iat: 1, workload: { binary: { path: '/opt/app', sha256: 'ab'.repeat(32), signatures: [{ sig: randomBytes(72).toString('base64url') }] } }, keys: [{ name: 'team/app-key' }], cnf: { jwk: { kty: 'EC', crv: 'P-256', x: 'x'.repeat(43), y: 'y'.repeat(43) } } }));
const header = { alg: 'ES256', typ: 'keyanchor-evidence+jws', x5c } as const;
const evidence = compactSign(header, evidencePayload, node.privateKey);

const agentKeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const agentKeyJwk = agentKeyObject.publicKey.export({ format: 'jwk' });
const agentEcdh = createECDH('prime256v1');
agentEcdh.setPrivateKey(Buffer.from(agentKeyObject.privateKey.export({ format: 'jwk' }).d!, 'base64url'));
const dataKey = randomBytes(32);
const kid = 'team/app-key@1';
const recipientJwk = (): RecipientJwk => ({ kty: 'EC', crv: 'P-256', x: agentKeyJwk.x!, y: agentKeyJwk.y! });

const joseJwe = await new jose.CompactEncrypt(dataKey).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid }).encrypt(agentKeyObject.publicKey);
const ownJwe = compactEncrypt(dataKey, { kty: 'EC', point: agentEcdh.getPublicKey() }, { kid });

// ---- the rows -----------------------------------------------------------------------------
interface Row { what: string; jose: number; own: number }
const rows: Row[] = [];
async function row(what: string, joseOp: () => unknown, ownOp: () => unknown): Promise<void> {
  rows.push({ what, jose: await cpuPerOp(joseOp), own: await cpuPerOp(ownOp) });
}

await row(
  'broker: JWE encrypt ECDH-ES+A256KW, 32-byte key (recipient JWK import + encrypt)',
  async () => new jose.CompactEncrypt(dataKey).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid }).encrypt(createPublicKey({ key: recipientJwk(), format: 'jwk' })),
  () => encryptToRecipient(validateRecipient(recipientJwk()), dataKey, kid),
);
await row(
  `broker: JWS ES256 verify, evidence of ${evidence.length} bytes`,
  () => jose.compactVerify(evidence, node.publicKey, { algorithms: ['ES256'] }),
  () => compactVerify(evidence, node.publicKey, { algorithms: ['ES256'] }),
);
await row(
  'agent: JWE decrypt ECDH-ES+A256KW',
  () => jose.compactDecrypt(joseJwe, agentKeyObject.privateKey, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] }),
  () => compactDecrypt(ownJwe, { kty: 'EC', ecdh: agentEcdh }, { algorithms: ['ECDH-ES+A256KW'] }),
);
await row(
  'agent: JWS ES256 sign (evidence)',
  () => new jose.CompactSign(evidencePayload).setProtectedHeader(header).sign(node.privateKey),
  () => compactSign(header, evidencePayload, node.privateKey),
);
await row(
  'agent: ephemeral P-256 recipient key + its JWK',
  async () => jose.exportJWK((await jose.generateKeyPair('ECDH-ES+A256KW', { extractable: true })).publicKey),
  () => pointJwk(generateP256().point),
);

// ---- the crypto floor: what one release cannot avoid, synchronous node:crypto (floor.ts) ------
const floor = await cryptoFloor({ batches: BATCHES, perBatch: PER_BATCH });

// ---- report -----------------------------------------------------------------------------------
console.log(`JOSE micro-benchmark${quick ? ' (quick)' : ''}: median µs of CPU per operation over ${BATCHES} batches of ${PER_BATCH}; Node ${process.version}`);
console.log('| operation | jose (WebCrypto) | src/jose (node:crypto) | jose / src/jose |');
console.log('| --- | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.what} | ${fmt(r.jose, 1)} | ${fmt(r.own, 1)} | ${fmt(r.jose / r.own)}× |`);
console.log('');
console.log('crypto floor of one release (synchronous node:crypto):');
for (const [what, us] of floor.parts) console.log(`  ${what}: ${fmt(us, 1)} µs`);
console.log(`  sum of the parts: ${fmt(floor.sum, 1)} µs; all in one loop: ${fmt(floor.together, 1)} µs (${fmt(floor.perCpuSecond, 0)} per CPU-second)`);
const broker = rows[0]!.own + rows[1]!.own;
const brokerJose = rows[0]!.jose + rows[1]!.jose;
console.log(`broker JOSE per single-key release (encrypt + verify): jose ${fmt(brokerJose, 1)} µs, src/jose ${fmt(broker, 1)} µs, floor ${fmt(floor.together, 1)} µs`);
