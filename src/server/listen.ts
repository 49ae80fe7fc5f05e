/**
 * The broker's HTTP(S) server: TLS settings (tls.ts), connection caps, parser errors as problems,
 * timeouts, the request gate for the shutdown drain, and TLS reload. Nothing here knows the routes:
 * it serves whatever request listener it is given.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { limitConnections } from './connections.js';
import { gateRequests, type DrainResult } from './drain.js';
import { answerParserErrors } from './parserErrors.js';
import { secureContextOptions, type TlsFiles } from './tls.js';

export interface Listening {
  url: string;
  server: http.Server;
  /** Re-reads the certificate and key; on any problem logs it, keeps the pair in force, and returns false. */
  reloadTls(): boolean;
  /** Stops accepting and drains (drain.ts). */
  drain(graceMs: number): Promise<DrainResult>;
}

export interface ListenOptions {
  /** The pair to serve; plain HTTP without it (`insecureHttp`). */
  tls?: TlsFiles;
  /** Extra TLS settings kept across reloads (the admin API's client-certificate CA). */
  tlsExtra?: SecureContextOptions;
}

export async function listen(config: Config, app: http.RequestListener, log: Logger, opts: ListenOptions): Promise<Listening> {
  const tls = opts.tls;
  // Request handlers are attached below, behind the gate; the server starts without one.
  const server: http.Server = tls ? https.createServer(secureContextOptions(tls, opts.tlsExtra).options) : http.createServer();
  const gate = gateRequests(server, app, log);
  server.on('request', gate.listener);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  limitConnections(server, { max: config.server.maxConnections, perSource: config.server.maxConnectionsPerSource }, log);
  answerParserErrors(server, log);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${tls ? 'https' : 'http'}://${host}:${addr.port}`;

  const reloadTls = (): boolean => {
    if (!tls) return true;
    try {
      const { options, notAfter } = secureContextOptions(tls, opts.tlsExtra);
      (server as https.Server).setSecureContext(options);
      log.info({ cert: tls.cert, notAfter: notAfter.toISOString() }, 'TLS certificate reloaded');
      return true;
    } catch (e) {
      log.error({ cert: tls.cert, key: tls.key, problem: (e as Error).message }, 'TLS reload refused; the certificate in force stays');
      return false;
    }
  };
  return { url, server, reloadTls, drain: (graceMs) => gate.drain(graceMs) };
}
