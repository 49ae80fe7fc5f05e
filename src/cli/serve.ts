import { Command } from 'commander';
import { startBroker } from '../broker.js';
import { BrokerError } from '../errors.js';
import { formatProblem, PolicyError } from '../policy/load.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the broker (HTTPS; embedded defaults when no config is given)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8443; 0 picks a free one)', (v) => Number.parseInt(v, 10))
    .option('--insecure-http', 'plain HTTP, only on a loopback address, for tests')
    .action(async (o: { host?: string; port?: number; insecureHttp?: boolean }, cmd: Command) => {
      let config;
      try {
        config = configFrom(cmd, { host: o.host, port: o.port, insecureHttp: o.insecureHttp });
      } catch (e) {
        reportConfigError(e);
      }
      let broker;
      try {
        broker = await startBroker(config);
      } catch (e) {
        if (e instanceof PolicyError) fail(`refusing to start: invalid policy\n  ${e.problems.map(formatProblem).join('\n  ')}`, EXIT.invalid);
        // The reason (which file, which CKR_*) is what the operator needs; it never holds a secret.
        const code = (e as { code?: unknown }).code;
        fail(`refusing to start: ${e instanceof BrokerError ? `${e.code}: ${e.reason}` : `${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}`}`);
      }
      process.stdout.write(`keyanchor listening on ${broker.url}\n`);
      if (broker.tlsCa) process.stdout.write(`dev TLS CA (give it to agents with --ca): ${broker.tlsCa}\n`);
      process.on('SIGHUP', () => broker.reloadPolicy());
      const stop = () => void broker.close().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
