/**
 * Connection caps: at most `max` open connections in all (Node's `server.maxConnections`: beyond it
 * a new connection is closed at accept), and at most `perSource` from one client address (0: no
 * per-source cap). Both act on the TCP connection before any TLS or HTTP, so a refused connection
 * gets no HTTP answer: it is closed. Refusals are logged as a count at most every 10 seconds, so a
 * flood cannot flood the log.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from '../log.js';

export interface ConnectionLimits {
  max: number;
  perSource: number;
}

export interface ConnectionCounts {
  /** Open connections by client address (only addresses with at least one). */
  readonly bySource: ReadonlyMap<string, number>;
  /** Connections refused so far by the per-source cap and by maxConnections. */
  readonly refused: { perSource: number; max: number };
}

const LOG_EVERY_MS = 10_000;

/**
 * `handed`: connections reach `server` as 'connection' events from another acceptor (serve
 * --workers, workers.ts), where Node's own `maxConnections` check does not run: the cap on open
 * connections is kept here instead, for this process's connections.
 */
export function limitConnections(server: Server, limits: ConnectionLimits, log: Logger, now: () => number = Date.now, handed = false): ConnectionCounts {
  server.maxConnections = limits.max;
  let open = 0;
  const bySource = new Map<string, number>();
  const refused = { perSource: 0, max: 0 };
  let logged = { at: -Infinity, perSource: 0, max: 0 };
  const report = (source: string | undefined) => {
    if (now() - logged.at < LOG_EVERY_MS) return;
    log.warn(
      { lastSource: source, refusedPerSource: refused.perSource - logged.perSource, refusedMax: refused.max - logged.max, maxConnections: limits.max, maxConnectionsPerSource: limits.perSource },
      'connections refused: over server.maxConnectionsPerSource or server.maxConnections',
    );
    logged = { at: now(), ...refused };
  };

  server.on('connection', (socket: Socket) => {
    const source = socket.remoteAddress ?? 'unknown';
    if (handed) {
      if (open >= limits.max) {
        refused.max++;
        report(source);
        socket.destroy();
        return;
      }
      open++;
      socket.once('close', () => open--);
    }
    if (limits.perSource === 0) return;
    const fromSource = bySource.get(source) ?? 0;
    if (fromSource >= limits.perSource) {
      refused.perSource++;
      report(source);
      socket.destroy();
      return;
    }
    bySource.set(source, fromSource + 1);
    socket.once('close', () => {
      const left = (bySource.get(source) ?? 1) - 1;
      if (left > 0) bySource.set(source, left);
      else bySource.delete(source);
    });
  });
  server.on('drop', (data?: { remoteAddress?: string }) => {
    refused.max++;
    report(data?.remoteAddress);
  });
  return { bySource, refused };
}
