/**
 * `keyanchor demo`: runs attest-agent against the demo app with the dev credentials. Uses the
 * broker at the configured address when one is running (`npm start`), or starts one in-process.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Command } from 'commander';
import { DEMO_KEY, startBroker, type Broker } from '../broker.js';
import { devPaths } from '../dev/bootstrap.js';
import { createLogger } from '../log.js';
import { packageRoot } from '../paths.js';
import { PolicyRefusal } from '../policy/bundle/refusals.js';
import { formatProblem } from '../policy/problems.js';
import { configFrom, fail, reportConfigError } from './context.js';

async function reachable(url: string, ca: string): Promise<boolean> {
  const { request } = await import('node:https');
  const { readFileSync, existsSync } = await import('node:fs');
  if (!existsSync(ca)) return false;
  return new Promise((resolve) => {
    const req = request(`${url}/healthz`, { ca: readFileSync(ca), timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('attest the demo app and start it with its key (dev mode; uses the broker of `npm start` if one runs)')
    .action(async (_o: unknown, cmd: Command) => {
    let config;
    try {
      // The demo is dev mode by definition: its node, publisher and key are the dev ones.
      config = configFrom(cmd, { dev: true });
    } catch (e) {
      reportConfigError(e);
    }
    const dev = devPaths(config.stateDir);
    let url = `https://${config.listen.host}:${config.listen.port}`;
    let own: Broker | undefined;
    if (!(await reachable(url, dev.tlsCa))) {
      try {
        own = await startBroker({ ...config, listen: { host: '127.0.0.1', port: 0 }, insecureHttp: false }, { log: createLogger('warn') });
      } catch (e) {
        if (e instanceof PolicyRefusal) fail(`cannot start a broker for the demo: policy refused (${e.code})\n  ${e.problems.map(formatProblem).join('\n  ')}`);
        fail(`cannot start a broker for the demo: ${(e as Error).message}`);
      }
      url = own.url;
      process.stdout.write(`started a broker for the demo at ${url}\n`);
    } else process.stdout.write(`using the broker at ${url}\n`);
    const agent = path.join(packageRoot(), 'attest-agent', 'bin', 'attest-agent.js');
    const args = [
      'exec', '--broker', url, '--ca', dev.tlsCa, '--node-cert', dev.nodeCert, '--node-key', dev.nodeKey,
      '--key', `${DEMO_KEY}=DEMO_KEY`, '--sig', dev.demoAppSig,
      // The demo runs the app as you, the same user as the agent and its node key: fine on a laptop,
      // never in production, where `--user` runs the workload under a uid that cannot read the key.
      '--allow-shared-uid', '--', dev.demoApp,
    ];
    process.stdout.write(`$ attest-agent ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}\n`);
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [agent, ...args], { stdio: 'inherit' });
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
    });
    await own?.close();
    process.exitCode = code;
  });
}
