/**
 * The broker's HTTP(S) server: TLS settings (tls.ts), connection caps, parser errors as problems,
 * timeouts, the request gate for the shutdown drain, and TLS reload. Nothing here knows the routes:
 * it serves whatever request listener it is given.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
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
  /** Serves a connection accepted by another process (`handed`). */
  accept(socket: Socket): void;
}

export interface ListenOptions {
  /** The pair to serve; plain HTTP without it (`insecureHttp`). */
  tls?: TlsFiles;
  /** Extra TLS settings kept across reloads (the admin API's client-certificate CA). */
  tlsExtra?: SecureContextOptions;
  /**
   * `serve --workers` (workers.ts). With `handOff`, every connection accepted (before any byte is
   * read from it) is first offered to it: it sends it to another process and returns true, or
   * returns false to have it served here. With `handed`, nothing is accepted here: connections
   * come from the process that listens, through `accept`. Either way connection caps count this
   * process's connections.
   */
  handOff?: (socket: Socket) => boolean;
  handed?: boolean;
}

export async function listen(config: Config, app: http.RequestListener, log: Logger, opts: ListenOptions): Promise<Listening> {
  const tls = opts.tls;
  // Request handlers are attached below, behind the gate; the server starts without one.
  const server: http.Server = tls ? https.createServer(secureContextOptions(tls, opts.tlsExtra).options) : http.createServer();
  const gate = gateRequests(server, app, log);
  server.on('request', gate.listener);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const spread = opts.handOff !== undefined || opts.handed === true;
  limitConnections(server, { max: config.server.maxConnections, perSource: config.server.maxConnectionsPerSource }, log, undefined, spread);
  answerParserErrors(server, log);
  // The HTTP(S) server itself listens only without handOff/handed. Node starts its tracking of
  // connections (the headers and request timeouts, closeAllConnections in the drain) on 'listening':
  // a server that is only handed connections starts it here.
  if (spread) server.emit('listening');
  const accept = (socket: Socket) => {
    server.emit('connection', socket);
    socket.resume(); // accepted paused (handOff), or read by nobody yet (handed)
  };

  // With handOff, a plain TCP acceptor listens: connections are handed on before TLS or HTTP sees them.
  const handOff = opts.handOff;
  const acceptor: net.Server | undefined = opts.handed ? undefined : handOff ? net.createServer({ pauseOnConnect: true }, (s) => handOff(s) || accept(s)) : server;
  let url = '';
  if (acceptor) {
    await new Promise<void>((resolve, reject) => {
      acceptor.once('error', reject);
      acceptor.listen(config.listen.port, config.listen.host, () => {
        acceptor.off('error', reject);
        resolve();
      });
    });
    const addr = acceptor.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    url = `${tls ? 'https' : 'http'}://${host}:${addr.port}`;
  }

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
  const drain = (graceMs: number) => {
    if (acceptor && acceptor !== server) acceptor.close();
    return gate.drain(graceMs);
  };
  return { url, server, reloadTls, drain, accept };
}
