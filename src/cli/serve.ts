import { Command } from 'commander';
import { DEMO_KEY, startBroker } from '../broker.js';
import { BrokerError } from '../errors.js';
import { PolicyRefusal } from '../policy/bundle/refusals.js';
import { formatProblem } from '../policy/problems.js';
import { PolicyStartError } from '../policy/runtime.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

export const devBanner = (stateDir: string) =>
  `keyanchor: DEV MODE (--dev or dev.enabled): a dev TLS CA, demo node and publisher credentials and the demo key ${DEMO_KEY} ` +
  `live in ${stateDir}; anyone with that directory can attest as the demo node. Never run a broker in dev mode in production.\n`;

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the broker (HTTPS; TLS from the config, or a dev CA with --dev)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8443; 0 picks a free one, printed on start)', (v) => Number.parseInt(v, 10))
    .option('--insecure-http', 'plain HTTP, only on a loopback address, for tests')
    .option('--dev', 'dev mode: dev TLS CA, demo credentials and the demo key in the state dir (never in production)')
    .option('--require-signed-policy', 'refuse to run without a pinned policy trust root (policy.root)')
    .action(async (o: { host?: string; port?: number; insecureHttp?: boolean; dev?: boolean; requireSignedPolicy?: boolean }, cmd: Command) => {
      let config;
      try {
        config = configFrom(cmd, { host: o.host, port: o.port, insecureHttp: o.insecureHttp, dev: o.dev, requireSignedPolicy: o.requireSignedPolicy });
      } catch (e) {
        reportConfigError(e);
      }
      if (config.dev.enabled) process.stderr.write(devBanner(config.stateDir));
      let broker;
      try {
        broker = await startBroker(config);
      } catch (e) {
        if (e instanceof PolicyRefusal) fail(`refusing to start: policy refused (${e.code})\n  ${e.problems.map(formatProblem).join('\n  ')}`, EXIT.invalid);
        if (e instanceof PolicyStartError) fail(`refusing to start: ${e.message}`, EXIT.invalid);
        // The reason (which file, which CKR_*) is what the operator needs; it never holds a secret.
        const code = (e as { code?: unknown }).code;
        fail(`refusing to start: ${e instanceof BrokerError ? `${e.code}: ${e.reason}` : `${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}`}`);
      }
      process.on('SIGHUP', () => void broker.reload());
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) {
          process.stderr.write(`keyanchor: ${signal} again: stopping now, without waiting for requests in flight\n`);
          process.exit(EXIT.failure);
        }
        stopping = true;
        broker.close().then(
          () => process.exit(EXIT.ok),
          (e: unknown) => fail(`shutdown failed: ${e instanceof BrokerError ? `${e.code}: ${e.reason}` : String(e)}`),
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      // Only now say so: a supervisor may signal the moment it reads this line, and a signal that
      // arrived before the handlers above would kill the process without the drain.
      process.stdout.write(`keyanchor listening on ${broker.url}\n`);
      if (broker.tlsCa) process.stdout.write(`dev TLS CA (give it to agents with --ca): ${broker.tlsCa}\n`);
    });
}
