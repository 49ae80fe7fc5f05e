import { userInfo } from 'node:os';
import { Command } from 'commander';
import { openKeys } from '../broker.js';
import { BrokerError } from '../errors.js';
import type { KeyService } from '../keys/keyService.js';
import { KeyName } from '../protocol.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

const actor = () => `cli:${userInfo().username}`;

function withKeys(fn: (keys: KeyService, cmd: Command, ...args: string[]) => Promise<unknown>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const positional = args.slice(0, -2).filter((a): a is string => typeof a === 'string');
    let config;
    try {
      config = configFrom(cmd);
    } catch (e) {
      reportConfigError(e);
    }
    let opened: Awaited<ReturnType<typeof openKeys>> | undefined;
    try {
      opened = await openKeys(config);
      const out = await fn(opened.keys, cmd, ...positional);
      if (out !== undefined) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    } catch (e) {
      // Custody, keystore and audit failures get one line with their code and reason, no stack.
      const code = (e as { code?: unknown }).code;
      if (e instanceof BrokerError) fail(`${e.code}: ${e.reason}`, EXIT.failure);
      if (typeof code === 'string' && e instanceof Error) fail(`${code}: ${e.message}`, EXIT.failure);
      throw e;
    } finally {
      await opened?.close();
    }
  };
}

function checkName(name: string): string {
  if (!KeyName.safeParse(name).success) fail(`invalid key name "${name}": use owner/purpose (lowercase letters, digits, . _ -)`, EXIT.usage);
  return name;
}

function checkVersion(v: string): number {
  if (!/^[1-9]\d{0,6}$/.test(v)) fail(`invalid version "${v}"`, EXIT.usage);
  return Number(v);
}

export function keysCommand(): Command {
  const keys = new Command('keys').description('manage keys (metadata only is ever printed)');
  keys.command('create').argument('<name>').description('create a key (version 1)').action(withKeys((k, _c, name) => k.create(checkName(name!), actor())));
  keys.command('list').description('list keys and their versions').action(withKeys(async (k) => k.list()));
  keys.command('show').argument('<name>').action(withKeys(async (k, _c, name) => k.show(checkName(name!))));
  keys
    .command('export')
    .description('print the keystore as stored (wrapped blobs only), for backup; useless without the KEK')
    .action(withKeys((k) => k.exportWrapped(actor())));
  keys.command('rotate').argument('<name>').description('add a new version').action(withKeys((k, _c, name) => k.rotate(checkName(name!), actor())));
  for (const [verb, state] of [['disable', 'disabled'], ['enable', 'enabled'], ['destroy', 'destroyed']] as const) {
    keys
      .command(verb)
      .argument('<name>')
      .argument('<version>')
      .description(verb === 'destroy' ? 'crypto-shred a version: its wrapped blob is erased for good' : `${verb} a version`)
      .action(withKeys((k, _c, name, version) => k.setState(checkName(name!), checkVersion(version!), state, actor())));
  }
  return keys;
}
