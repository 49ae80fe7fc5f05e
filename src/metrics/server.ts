/**
 * `metrics.listen`: `GET /metrics` on its own plain-HTTP listener (an internal interface, a port
 * the load balancer does not expose), instead of the broker's listener. Nothing else is served.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrokerMetrics } from './brokerMetrics.js';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function listenMetrics(metrics: Pick<BrokerMetrics, 'render'>, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    metrics.render().then(
      (m) => res.writeHead(200, { 'content-type': m.contentType }).end(req.method === 'HEAD' ? undefined : m.body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
