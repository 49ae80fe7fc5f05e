/**
 * Minimal HTTP(S) JSON client for the broker, on node:http/node:https so that a private CA
 * (`--ca`) can be given without extra dependencies. Every request has a deadline; answers are
 * size-capped and schema-checked. Failures become AgentErrors marked retryable when trying again
 * could help (network errors, timeouts, 5xx), never for 4xx.
 */
import http from 'node:http';
import https from 'node:https';
import type { z } from 'zod';
import { ProblemSchema } from '../../src/protocol.js';
import { AgentError, oneLine } from './errors.js';
import { describeCode } from './exitCodes.js';

const MAX_RESPONSE_BYTES = 1 << 20;
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface ClientOptions {
  /** Broker base URL, http: or https:. */
  broker: string;
  /** PEM CA bundle to trust for https (the broker's CA). */
  ca?: string | Buffer;
  timeoutMs?: number;
  /**
   * A keep-alive connection pool for one exchange (challenge then attest on one TLS connection);
   * without it every request opens and closes its own connection.
   */
  connection?: http.Agent;
}

/** TLS verification failures: retrying will not help, and they deserve their own message. */
const TLS_CODES = /^(?:ERR_TLS_|ERR_SSL_|UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/;

function endpoint(broker: string, path: string): URL {
  let base: URL;
  try {
    base = new URL(broker.endsWith('/') ? broker : `${broker}/`);
  } catch (err) {
    throw new AgentError('config', `--broker ${JSON.stringify(broker)} is not a URL`, { cause: err });
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new AgentError('config', '--broker must be an http(s) URL');
  return new URL(path, base);
}

/** POSTs JSON and returns the parsed 2xx body, checked against `schema`. */
export async function postJson<T>(options: ClientOptions, path: string, body: unknown, schema: z.ZodType<T>): Promise<T> {
  const url = endpoint(options.broker, path);
  const { status, contentType, retryAfter, text } = await send(url, JSON.stringify(body), options);
  if (status >= 200 && status < 300) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new AgentError('broker_response_invalid', `${url.pathname}: ${status} answer is not JSON`, { cause: err, status });
    }
    const parsed = schema.safeParse(json);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new AgentError('broker_response_invalid', `${url.pathname}: answer does not match the protocol at ${issue?.path.join('.') || 'top'}`, { status });
  }
  throw problemError(url, status, contentType, text, parseRetryAfter(retryAfter));
}

/** Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d{1,9}$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

function problemError(url: URL, status: number, contentType: string, text: string, retryAfterSeconds: number | undefined): AgentError {
  const retryable = status >= 500;
  const after = retryAfterSeconds === undefined ? {} : { retryAfterSeconds };
  if (contentType.startsWith('application/problem+json')) {
    const problem = (() => { try { return ProblemSchema.safeParse(JSON.parse(text)); } catch { return undefined; } })();
    if (problem?.success) {
      const { code, requestId, detail } = problem.data;
      const message = detail ? `${describeCode(code)}: ${oneLine(detail, 200)}` : describeCode(code);
      return new AgentError(code, message, { requestId, retryable, status, ...after });
    }
  }
  return new AgentError('broker_response_invalid', `${url.pathname}: HTTP ${status} without a protocol problem`, { retryable, status, ...after });
}

interface RawResponse { status: number; contentType: string; retryAfter: string | undefined; text: string }

function send(url: URL, body: string, options: ClientOptions): Promise<RawResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise<RawResponse>((resolve, reject) => {
    const req = lib.request(url, {
      method: 'POST',
      // One connection per request unless the caller holds a pool for one exchange (attest.ts),
      // which it destroys when done: nothing lingers after the agent is done.
      agent: options.connection ?? false,
      ...(options.ca !== undefined && url.protocol === 'https:' ? { ca: options.ca } : {}),
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, application/problem+json',
        'content-length': Buffer.byteLength(body),
      },
    });
    const timer = setTimeout(() => {
      req.destroy(new AgentError('timeout', `${url.origin} did not answer ${url.pathname} within ${timeoutMs} ms`, { retryable: true }));
    }, timeoutMs);
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(transportError(url, err));
    };
    req.on('error', fail);
    req.on('close', () => fail(new Error('connection closed before the answer was complete')));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE_BYTES) req.destroy(new AgentError('broker_response_invalid', `${url.pathname}: answer larger than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          retryAfter: res.headers['retry-after'],
          text: Buffer.concat(chunks).toString('utf8'),
        });
      });
    });
    req.end(body);
  });
}

function transportError(url: URL, err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  if (TLS_CODES.test(code)) return new AgentError('tls_failed', `${url.origin}: ${code}`, { cause: err });
  return new AgentError('network_unreachable', `${url.origin}: ${code || (err as Error)?.message || 'connection failed'}`, { cause: err, retryable: true });
}
