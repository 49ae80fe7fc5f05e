/**
 * The CLI as a client of a running broker's admin API (Vault style): `keyanchor --broker URL`
 * (or `KEYANCHOR_ADDR`) runs the key lifecycle and suspension commands over HTTPS, authenticated
 * by a bearer token (`KEYANCHOR_TOKEN`, or a file: `--token-file` / `KEYANCHOR_TOKEN_FILE`) or a
 * client certificate (`--client-cert` and `--client-key`, or `KEYANCHOR_CLIENT_CERT` /
 * `KEYANCHOR_CLIENT_KEY`), trusting `--ca` (`KEYANCHOR_CACERT`) besides the system CAs. Plain
 * http:// only to a loopback address: a token must not cross a network in the clear. The operator
 * then needs no shell on the broker host, and the broker records the caller's identity.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Command } from 'commander';

export interface RemoteOptions {
  url: URL;
  token?: string;
  cert?: string;
  key?: string;
  ca?: string;
}

/** A refusal from the broker (a problem+json answer), or a failure to reach it. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** A usage problem with the remote options themselves (exit 2). */
export class RemoteUsageError extends Error {}

interface GlobalRemoteFlags {
  broker?: string;
  tokenFile?: string;
  clientCert?: string;
  clientKey?: string;
  ca?: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;
const read = (what: string, file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new RemoteUsageError(`cannot read the ${what} ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
};

/** The broker to talk to, from the global options and the environment; undefined: act on the local store. */
export function remoteFrom(cmd: Command, env: NodeJS.ProcessEnv = process.env): RemoteOptions | undefined {
  const o = cmd.optsWithGlobals() as GlobalRemoteFlags;
  const address = o.broker ?? env.KEYANCHOR_ADDR;
  if (!address) return undefined;
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new RemoteUsageError(`--broker ${address}: not a URL (https://broker.example:8443)`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname))) {
    throw new RemoteUsageError(`--broker ${address}: https:// (plain http:// only to a loopback address)`);
  }
  const tokenFile = o.tokenFile ?? env.KEYANCHOR_TOKEN_FILE;
  const token = tokenFile ? read('token file', tokenFile).trim() : env.KEYANCHOR_TOKEN?.trim();
  const certFile = o.clientCert ?? env.KEYANCHOR_CLIENT_CERT;
  const keyFile = o.clientKey ?? env.KEYANCHOR_CLIENT_KEY;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new RemoteUsageError('a client certificate needs both --client-cert and --client-key');
  const caFile = o.ca ?? env.KEYANCHOR_CACERT;
  if (!token && !certFile) throw new RemoteUsageError('no credentials for the broker: set KEYANCHOR_TOKEN, --token-file, or --client-cert and --client-key');
  return {
    url,
    ...(token ? { token } : {}),
    ...(certFile ? { cert: read('client certificate', certFile), key: read('client key', keyFile!) } : {}),
    ...(caFile ? { ca: read('CA file', caFile) } : {}),
  };
}

/** Calls one admin route; resolves to its JSON answer, or rejects with a RemoteError. */
export function adminCall(r: RemoteOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const url = new URL(`/v1/admin${path}`, r.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        method,
        timeout: 30_000,
        ...(r.ca ? { ca: r.ca } : {}),
        ...(r.cert ? { cert: r.cert, key: r.key } : {}),
        headers: {
          accept: 'application/json',
          ...(r.token ? { authorization: `Bearer ${r.token}` } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            return reject(new RemoteError(`the broker at ${r.url.origin} answered HTTP ${res.statusCode} with something that is not JSON`, 'broker_response_invalid', res.statusCode));
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(json);
          const p = (json ?? {}) as { code?: string; title?: string; requestId?: string };
          reject(new RemoteError(`${p.title ?? `HTTP ${status}`} (HTTP ${status}${p.requestId ? `, request ${p.requestId}` : ''})`, p.code ?? `http_${status}`, status));
        });
        res.on('error', (e) => reject(new RemoteError(`${r.url.origin}: ${e.message}`, 'network_unreachable')));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (e) => reject(new RemoteError(`cannot reach the broker at ${r.url.origin}: ${e.message}`, 'network_unreachable')));
    req.end(payload);
  });
}

/** `payments/db` → `/keys/payments/db`; a subject → its URL-encoded path segment. */
export const keyPath = (name: string) => `/keys/${name.split('/').map(encodeURIComponent).join('/')}`;
export const subjectPath = (subject: string) => `/suspensions/${encodeURIComponent(subject)}`;
