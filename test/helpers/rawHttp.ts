/**
 * HTTP/1.1 by hand over one TLS (or TCP) connection, for tests that must control the bytes and the
 * timing: half-sent bodies, malformed framing, oversized headers, several requests on one
 * kept-alive connection. Responses are parsed by Content-Length (the broker always sends one).
 */
import net from 'node:net';
import tls from 'node:tls';

export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
}

export class RawConnection {
  #buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, d]);
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.#ended = true;
      this.#wake?.();
      resolve();
    }));
    socket.on('error', () => undefined); // a reset shows as `closed` with no response
  }

  /** Connects to `url` (https: with `ca`, or http:). */
  static open(url: string, ca?: Buffer, opts: { localAddress?: string } = {}): Promise<RawConnection> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = u.protocol === 'https:'
        ? tls.connect({ host: u.hostname, port: Number(u.port), ca, servername: u.hostname === '127.0.0.1' ? undefined : u.hostname, ...opts }, () => resolve(new RawConnection(socket)))
        : net.connect({ host: u.hostname, port: Number(u.port), ...opts }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** A POST with a JSON body, kept alive unless `close`. */
  post(path: string, body: string, opts: { close?: boolean } = {}): void {
    this.send(`POST ${path} HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: ${opts.close ? 'close' : 'keep-alive'}\r\n\r\n${body}`);
  }

  /** The next complete response, or undefined when the connection closes first. */
  async nextResponse(): Promise<RawResponse | undefined> {
    for (;;) {
      const r = this.#take();
      if (r) return r;
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  #take(): RawResponse | undefined {
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (this.#buffer.length < end + 4 + length) return undefined;
    const body = this.#buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    this.#buffer = this.#buffer.subarray(end + 4 + length);
    return { status: Number(statusLine!.split(' ')[1]), headers, body };
  }
}
