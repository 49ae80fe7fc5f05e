/**
 * A test world (world.ts) made ready for real processes: a TLS CA and a broker certificate for
 * 127.0.0.1, the node certificate and key and the publisher key as files, and a broker config
 * using them (HTTPS, a free port, dev mode off, one broker process). Everything is generated at
 * test time.
 */
import { sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { issueCertificate, SERVER_AUTH } from '../../src/pki.js';
import type { World } from './world.js';

export interface TlsWorldFiles {
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  nodeCert: string;
  nodeKey: string;
  publisherKey: string;
  config: string;
}

/** Writes the files into `dir` (default the world's dir); `config` merges into the broker config. */
export async function writeTlsWorld(w: World, opts: { dir?: string; config?: Record<string, unknown> } = {}): Promise<TlsWorldFiles> {
  const f = (n: string) => path.join(opts.dir ?? w.dir, n);
  const files: TlsWorldFiles = {
    tlsCa: f('tls-ca.pem'), tlsCert: f('tls.pem'), tlsKey: f('tls.key'),
    nodeCert: f('node.pem'), nodeKey: f('node.key'), publisherKey: f('publisher.key'), config: f('broker.json'),
  };
  const tlsCa = await issueCertificate({ subject: 'CN=e2e TLS CA', ca: true });
  const tls = await issueCertificate({ subject: 'CN=broker', ips: ['127.0.0.1'], dns: ['localhost'], eku: [SERVER_AUTH] }, tlsCa);
  writeFileSync(files.tlsCa, tlsCa.certPem);
  writeFileSync(files.tlsCert, tls.certPem);
  writeFileSync(files.tlsKey, tls.keyPem, { mode: 0o600 });
  writeFileSync(files.nodeCert, w.node.certPem);
  writeFileSync(files.nodeKey, w.node.keyPem, { mode: 0o600 });
  writeFileSync(files.publisherKey, w.publisher.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(
    files.config,
    JSON.stringify({
      stateDir: w.stateDir, policyDir: w.policyDir, tls: { cert: files.tlsCert, key: files.tlsKey },
      listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'info' },
      // One process unless a test asks for workers (`serve --workers`, test/e2e/workers.e2e.test.ts).
      server: { workers: 1 }, ...opts.config,
    }),
  );
  return files;
}

/** Writes `program` (a shell script) and its publisher signature `program.sig`, as `openssl dgst -sha256 -sign` makes it. */
export function writeSignedProgram(w: World, program: string, script: string, mode = 0o755): void {
  writeFileSync(program, script, { mode });
  writeFileSync(`${program}.sig`, sign('sha256', Buffer.from(script), w.publisher.privateKey));
}
