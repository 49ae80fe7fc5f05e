/**
 * A complete, real test world generated at test time: a trusted node CA and node certificate, an
 * untrusted CA, an expired node certificate, a publisher key that signs a real executable the way
 * `openssl dgst -sha256 -sign` does, a policy directory and a broker config. Nothing is mocked.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CompactSign, compactDecrypt, exportJWK, generateKeyPair, type JWK } from 'jose';
import { parseConfig, type Config } from '../../src/config.js';
import { issueCertificate, toX5c, type Issued } from '../../src/pki.js';
import { EVIDENCE_TYP, PROTOCOL_VERSION, type EvidencePayloadInput } from '../../src/protocol.js';

export const APP_KEY = 'team/app-key';
export const IMG_KEY = 'team/img-key';
export const UNGRANTED_KEY = 'team/other-key';
export const MISSING_KEY = 'team/missing-key';

export interface World {
  dir: string;
  stateDir: string;
  policyDir: string;
  nodeCa: Issued;
  node: Issued;
  expiredNode: Issued;
  rogueCa: Issued;
  rogueNode: Issued;
  publisher: { privateKey: KeyObject; publicPem: string };
  otherPublisher: { privateKey: KeyObject };
  app: { path: string; sha256: string; sig: Buffer };
  pinnedSha256: string;
  imageDigest: string;
  config: Config;
  cleanup(): void;
}

export const sha256hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function ecKeyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export async function makeWorld(opts: { configExtra?: Record<string, unknown> } = {}): Promise<World> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-world-'));
  const stateDir = path.join(dir, 'state');
  const policyDir = path.join(dir, 'policies');
  mkdirSync(stateDir, { mode: 0o700 });
  mkdirSync(policyDir);
  const nodeCa = await issueCertificate({ subject: 'CN=test node CA', ca: true });
  const node = await issueCertificate({ subject: 'CN=node-1', uris: ['spiffe://test/zone/z1/node-1'] }, nodeCa);
  const expiredNode = await issueCertificate(
    { subject: 'CN=node-old', uris: ['spiffe://test/zone/z1/node-old'], notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) },
    nodeCa,
  );
  const rogueCa = await issueCertificate({ subject: 'CN=test node CA', ca: true });
  const rogueNode = await issueCertificate({ subject: 'CN=node-1', uris: ['spiffe://test/zone/z1/node-1'] }, rogueCa);
  const publisher = ecKeyPair();
  const otherPublisher = ecKeyPair();

  const appPath = path.join(dir, 'app');
  const appBody = `#!/bin/sh\n# test workload ${randomBytes(8).toString('hex')}\necho "app ran: key bytes $(printf %s "$APP_KEY" | base64 -d | wc -c)"\n`;
  writeFileSync(appPath, appBody);
  chmodSync(appPath, 0o755);
  const app = { path: appPath, sha256: sha256hex(appBody), sig: sign('sha256', Buffer.from(appBody), publisher.privateKey) };
  const pinnedSha256 = sha256hex('a pinned binary');
  const imageDigest = 'sha256:' + sha256hex('an image manifest');

  writeFileSync(path.join(policyDir, 'node-ca.pem'), nodeCa.certPem);
  writeFileSync(path.join(policyDir, 'publisher.pub'), publisher.publicPem);
  writeFileSync(
    path.join(policyDir, 'test.yaml'),
    `version: 1
nodeCAs:
  - name: test-nodes
    certificate: { file: node-ca.pem }
zones:
  - name: z1
    match: { nodeCA: test-nodes, sanUriPrefix: "spiffe://test/zone/z1/" }
publishers:
  - name: test-publisher
    publicKey: { file: publisher.pub }
software:
  - name: app
    binary: { publishers: [test-publisher] }
    grants:
      - keys: [${APP_KEY}, ${MISSING_KEY}]
        zones: [z1]
  - name: pinned-in-image
    binary: { digests: ["${pinnedSha256}"] }
    image: { digests: ["${imageDigest}"] }
    grants:
      - keys: [${IMG_KEY}]
        zones: [z1]
`,
  );
  const config = parseConfig(
    JSON.stringify({ stateDir, policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'silent' }, ...opts.configExtra }),
    { file: path.join(dir, 'config.json') },
  );
  return {
    dir, stateDir, policyDir, nodeCa, node, expiredNode, rogueCa, rogueNode, publisher, otherPublisher,
    app, pinnedSha256, imageDigest, config,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Recipient {
  jwk: JWK;
  privateKey: Parameters<typeof compactDecrypt>[1];
}

export async function makeRecipient(kty: 'EC' | 'RSA' = 'EC'): Promise<Recipient> {
  const { publicKey, privateKey } = kty === 'EC'
    ? await generateKeyPair('ECDH-ES+A256KW', { extractable: true })
    : await generateKeyPair('RSA-OAEP-256', { extractable: true, modulusLength: 2048 });
  return { jwk: await exportJWK(publicKey), privateKey };
}

export interface EvidenceOptions {
  nonce: string;
  keys?: Array<{ name: string; version?: number }>;
  signer?: Issued;
  chain?: string[];
  iat?: number;
  binary?: { sha256?: string; sigs?: Buffer[] };
  image?: { digest: string };
  recipient?: Recipient;
  /** Changes the payload after it is built (to make it malformed). */
  mutate?: (p: Record<string, unknown>) => void;
  header?: Record<string, unknown>;
}

export async function makeEvidence(w: World, o: EvidenceOptions): Promise<{ compact: string; recipient: Recipient }> {
  const recipient = o.recipient ?? (await makeRecipient());
  const signer = o.signer ?? w.node;
  const payload: EvidencePayloadInput & Record<string, unknown> = {
    ver: PROTOCOL_VERSION,
    nonce: o.nonce,
    iat: o.iat ?? Math.floor(Date.now() / 1000),
    workload: {
      binary: {
        path: w.app.path,
        sha256: o.binary?.sha256 ?? w.app.sha256,
        signatures: (o.binary?.sigs ?? [w.app.sig]).map((s) => ({ sig: s.toString('base64url') })),
      },
      ...(o.image ? { image: { digest: o.image.digest, signatures: [] } } : {}),
    },
    keys: o.keys ?? [{ name: APP_KEY }],
    cnf: { jwk: recipient.jwk as never },
  };
  o.mutate?.(payload);
  const compact = await new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: o.chain ?? toX5c(signer), ...o.header } as never)
    .sign(createPrivateKey(signer.keyPem));
  return { compact, recipient };
}

/**
 * Evidence over exactly these header and payload texts (to put duplicate members in them), ES256
 * by `signer`, the way any JWS library would sign the bytes it was given.
 */
export function signEvidenceText(headerText: string, payloadText: string, signer: Issued): string {
  const input = `${Buffer.from(headerText).toString('base64url')}.${Buffer.from(payloadText).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: createPrivateKey(signer.keyPem), dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

export async function openReleased(jwe: string, r: Recipient): Promise<{ key: Buffer; kid: string | undefined }> {
  const { plaintext, protectedHeader } = await compactDecrypt(jwe, r.privateKey);
  return { key: Buffer.from(plaintext), kid: protectedHeader.kid };
}
