/** The files the bench's processes share: a bench TLS CA and server certificate, the node identity, the program's signature. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { issueCertificate, SERVER_AUTH } from '../../src/pki.js';
import type { World } from '../helpers/world.js';

export interface BenchFiles {
  ca: string;
  tls: { cert: string; key: string };
  nodeCert: string;
  nodeKey: string;
  sig: string;
}

export async function writeBenchFiles(w: World): Promise<BenchFiles> {
  const f = (n: string) => path.join(w.dir, n);
  const files: BenchFiles = { ca: f('bench-ca.pem'), tls: { cert: f('tls.pem'), key: f('tls.key') }, nodeCert: f('node.pem'), nodeKey: f('node.key'), sig: `${w.app.path}.sig` };
  const ca = await issueCertificate({ subject: 'CN=bench CA', ca: true });
  const tls = await issueCertificate({ subject: 'CN=broker', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, ca);
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.tls.cert, tls.certPem);
  writeFileSync(files.tls.key, tls.keyPem, { mode: 0o600 });
  writeFileSync(files.nodeCert, w.node.certPem);
  writeFileSync(files.nodeKey, w.node.keyPem, { mode: 0o600 });
  writeFileSync(files.sig, w.app.sig);
  return files;
}
