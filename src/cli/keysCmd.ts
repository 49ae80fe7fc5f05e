import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { Command } from 'commander';
import { systemClock } from '../clock.js';
import { BrokerError } from '../errors.js';
import { fromKeystoreFile } from '../keys/keystoreFile.js';
import type { KeyService } from '../keys/keyService.js';
import { openKeys, type OpenMode } from '../keys/openKeys.js';
import { KeyName } from '../protocol.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

const actor = () => `cli:${userInfo().username}`;

/**
 * Runs `fn` with the keys opened in `mode` (see keys/openKeys.ts) and prints its result as JSON.
 * Store, custody and KEK problems get one line with their code and reason, no stack.
 */
export function withKeys(mode: OpenMode | ((cmd: Command) => OpenMode), fn: (keys: KeyService, cmd: Command, ...args: string[]) => Promise<unknown>, opts: { legacyImport?: boolean } = {}) {
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
      opened = await openKeys(config, systemClock, typeof mode === 'function' ? mode(cmd) : mode, opts);
      const out = await fn(opened.keys, cmd, ...positional);
      if (out !== undefined) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    } catch (e) {
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

function readKeystoreFile(file: string) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return fromKeystoreFile(text, file);
}

export function keysCommand(): Command {
  const keys = new Command('keys').description('manage keys (metadata only is ever printed)');
  keys
    .command('create')
    .argument('<name>')
    .option('--init', 'initialise a new state store (and a software KEK) if there is none yet')
    .description('create a key (version 1)')
    .action(withKeys((c) => ((c.opts() as { init?: boolean }).init ? 'init' : 'use'), (k, _c, name) => k.create(checkName(name!), actor())));
  keys.command('list').description('list keys and their versions (never needs the HSM)').action(withKeys('read', async (k) => k.list()));
  keys.command('show').argument('<name>').action(withKeys('read', async (k, _c, name) => k.show(checkName(name!))));
  keys
    .command('export')
    .description('print the keystore as stored (wrapped blobs only), for backup; useless without the KEK')
    .action(withKeys('use', (k) => k.exportWrapped(actor())));
  keys
    .command('import')
    .argument('<file>', 'a keystore file: `keys export` output, or stateDir/keystore.json of an earlier version')
    .description('add the keys of a keystore file to the store (all or none); its blobs must be wrapped by the configured KEK')
    .action(
      withKeys('init', async (k, _c, file) => {
        const data = readKeystoreFile(file!);
        const n = await k.import(data.keys, actor(), file!);
        return { imported: n, keys: data.keys.map((x) => x.name) };
      }, { legacyImport: true }),
    );
  keys.command('rotate').argument('<name>').description('add a new version').action(withKeys('use', (k, _c, name) => k.rotate(checkName(name!), actor())));
  for (const [verb, state] of [['disable', 'disabled'], ['enable', 'enabled'], ['destroy', 'destroyed']] as const) {
    keys
      .command(verb)
      .argument('<name>')
      .argument('<version>')
      .description(verb === 'destroy' ? 'crypto-shred a version: its wrapped blob is erased for good' : `${verb} a version`)
      .action(withKeys('use', (k, _c, name, version) => k.setState(checkName(name!), checkVersion(version!), state, actor())));
  }
  return keys;
}
