/**
 * First-start conveniences for the embedded defaults: a dev TLS CA and server certificate, demo
 * node and publisher credentials, and a publisher signature over the demo app. Everything goes
 * into the state directory; nothing is regenerated once it exists.
 */
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../fsAtomic.js';
import { demoAppPath } from '../paths.js';
import { issueCertificate, SERVER_AUTH, x509 } from '../pki.js';

export interface DevPaths {
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  nodeCa: string;
  nodeCert: string;
  nodeKey: string;
  publisherPub: string;
  publisherKey: string;
  demoApp: string;
  demoAppSig: string;
}

export function devPaths(stateDir: string): DevPaths {
  const tls = path.join(stateDir, 'tls');
  const dev = path.join(stateDir, 'dev');
  return {
    tlsCa: path.join(tls, 'ca.pem'),
    tlsCert: path.join(tls, 'server.pem'),
    tlsKey: path.join(tls, 'server.key'),
    nodeCa: path.join(dev, 'node-ca.pem'),
    nodeCert: path.join(dev, 'node.pem'),
    nodeKey: path.join(dev, 'node.key'),
    publisherPub: path.join(dev, 'publisher.pub'),
    publisherKey: path.join(dev, 'publisher.key'),
    demoApp: demoAppPath(),
    demoAppSig: path.join(dev, 'demo-app.sig'),
  };
}

const write = (file: string, data: string | Buffer, mode = 0o644) => {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, data, mode);
};

/** Dev CA and a server certificate for localhost / 127.0.0.1 / ::1. */
export async function ensureDevTls(p: DevPaths, extraHosts: string[] = []): Promise<boolean> {
  if (existsSync(p.tlsCert) && existsSync(p.tlsKey) && existsSync(p.tlsCa)) return false;
  const ca = await issueCertificate({ subject: 'CN=keyanchor dev CA', ca: true, pathLength: 0 });
  const hosts = [...new Set(['localhost', ...extraHosts.filter((h) => !/^[\d.:]+$/.test(h))])];
  const ips = [...new Set(['127.0.0.1', '::1', ...extraHosts.filter((h) => /^[\d.:]+$/.test(h))])];
  const server = await issueCertificate(
    { subject: 'CN=keyanchor broker', dns: hosts, ips, eku: [SERVER_AUTH], usages: x509.KeyUsageFlags.digitalSignature },
    ca,
  );
  write(p.tlsKey, server.keyPem, 0o600);
  write(p.tlsCert, server.certPem + ca.certPem);
  write(p.tlsCa, ca.certPem);
  return true;
}

/** Demo node CA and node certificate, and a demo publisher key pair. */
export async function ensureDevIdentities(p: DevPaths): Promise<boolean> {
  if (existsSync(p.nodeCert) && existsSync(p.publisherKey)) return false;
  const nodeCa = await issueCertificate({ subject: 'CN=keyanchor dev node CA', ca: true, pathLength: 0 });
  const node = await issueCertificate({ subject: 'CN=demo-node', uris: ['spiffe://keyanchor.dev/node/demo-node'] }, nodeCa);
  const publisher = await issueCertificate({ subject: 'CN=keyanchor dev publisher' });
  write(p.nodeCa, nodeCa.certPem);
  write(p.nodeCert, node.certPem);
  write(p.nodeKey, node.keyPem, 0o600);
  write(p.publisherKey, publisher.keyPem, 0o600);
  write(p.publisherPub, publisher.cert.publicKey.toString('pem') + '\n');
  return true;
}

/**
 * Signs the demo app the way a release pipeline would with
 * `openssl dgst -sha256 -sign publisher.key -out demo-app.sig demo-app` (DER ECDSA over SHA-256).
 */
export function signDemoApp(p: DevPaths): void {
  const app = readFileSync(p.demoApp);
  const stamp = createHash('sha256').update(app).digest('hex');
  const stampFile = p.demoAppSig + '.sha256';
  if (existsSync(p.demoAppSig) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;
  const sig = sign('sha256', app, createPrivateKey(readFileSync(p.publisherKey)));
  write(p.demoAppSig, sig);
  writeFileSync(stampFile, stamp);
}
