/**
 * `keyanchor keys …`: the key lifecycle, on the local store (the broker host), or through a running
 * broker's admin API with `--broker` (remote.ts). Both print the same metadata, as JSON by
 * default (scripts rely on it) or as text with `-o text`; never a key or a blob (except `export`,
 * whose blobs are wrapped).
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { Command } from 'commander';
import { systemClock } from '../clock.js';
import { fromKeystoreFile } from '../keys/keystoreFile.js';
import type { KeyInfo, KeyService } from '../keys/keyService.js';
import { openKeys, type OpenMode } from '../keys/openKeys.js';
import { KeyName } from '../protocol.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';
import { runEither } from './dispatch.js';
import { withOutput } from './output.js';
import { adminCall, keyPath, RemoteUsageError, type RemoteOptions } from './remote.js';
import { keysText, keyText } from './views.js';

const actor = () => `cli:${userInfo().username}`;

type Local = (keys: KeyService, cmd: Command, ...args: string[]) => Promise<unknown>;
type Remote = (r: RemoteOptions, cmd: Command, ...args: string[]) => Promise<unknown>;

/**
 * A key command: through the admin API with `--broker` (dispatch.ts), else on the local store
 * opened in `mode` (see keys/openKeys.ts). `remote: undefined`: on the broker host only.
 */
function keyAction(mode: OpenMode | ((cmd: Command) => OpenMode), local: Local, remote: Remote | undefined, text: (data: never) => string, opts: { legacyImport?: boolean } = {}) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const positional = args.slice(0, -2).filter((a): a is string => typeof a === 'string');
    await runEither(cmd, {
      remote: remote && ((r) => remote(r, cmd, ...positional)),
      local: async () => {
        let config;
        try {
          config = configFrom(cmd);
        } catch (e) {
          reportConfigError(e);
        }
        const opened = await openKeys(config, systemClock, typeof mode === 'function' ? mode(cmd) : mode, opts);
        try {
          return await local(opened.keys, cmd, ...positional);
        } finally {
          await opened.close();
        }
      },
    }, text as (d: unknown) => string);
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

const one = (k: KeyInfo) => keyText(k);
const versionPath = (name: string, version: string, verb: string) => `${keyPath(name)}/versions/${version}/${verb}`;

export function keysCommand(): Command {
  const keys = new Command('keys').description('manage keys (metadata only is ever printed); on this host, or on a running broker with --broker');
  const sub = (name: string) => withOutput(keys.command(name), 'json');
  sub('create')
    .argument('<name>')
    .option('--init', 'initialise a new state store (and a software KEK) if there is none yet (local only)')
    .description('create a key (version 1)')
    .action(keyAction(
      (c) => ((c.opts() as { init?: boolean }).init ? 'init' : 'use'),
      (k, _c, name) => k.create(checkName(name!), actor()),
      (r, c, name) => {
        if ((c.opts() as { init?: boolean }).init) throw new RemoteUsageError('--init initialises a local store; a running broker has one');
        return adminCall(r, 'POST', '/keys', { name: checkName(name!) });
      },
      one,
    ));
  sub('list')
    .description('list keys and their versions (never needs the HSM; through --broker, only the keys your teams may see)')
    .action(keyAction('read', async (k) => k.list(), async (r) => ((await adminCall(r, 'GET', '/keys')) as { keys: KeyInfo[] }).keys, keysText));
  sub('show').argument('<name>').action(keyAction('read', async (k, _c, name) => k.show(checkName(name!)), (r, _c, name) => adminCall(r, 'GET', keyPath(checkName(name!))), one));
  sub('export')
    .description('print the keystore as stored (wrapped blobs only), for backup; useless without the KEK')
    .action(keyAction('use', (k) => k.exportWrapped(actor()), (r) => adminCall(r, 'GET', '/keystore'), (d: unknown) => JSON.stringify(d, null, 2)));
  sub('import')
    .argument('<file>', 'a keystore file: `keys export` output, or stateDir/keystore.json of an earlier version')
    .description('add the keys of a keystore file to the store (all or none); its blobs must be wrapped by the configured KEK (on the broker host)')
    .action(
      keyAction('init', async (k, _c, file) => {
        const data = readKeystoreFile(file!);
        const n = await k.import(data.keys, actor(), file!);
        return { imported: n, keys: data.keys.map((x) => x.name) };
      }, undefined, (d: { imported: number; keys: string[] }) => `imported ${d.imported} key(s): ${d.keys.join(', ')}`, { legacyImport: true }),
    );
  sub('rotate').argument('<name>').description('add a new version')
    .action(keyAction('use', (k, _c, name) => k.rotate(checkName(name!), actor()), (r, _c, name) => adminCall(r, 'POST', `${keyPath(checkName(name!))}/rotate`), one));
  for (const [verb, state] of [['disable', 'disabled'], ['enable', 'enabled'], ['destroy', 'destroyed']] as const) {
    sub(verb)
      .argument('<name>')
      .argument('<version>')
      .description(verb === 'destroy' ? 'crypto-shred a version: its wrapped blob is erased for good' : `${verb} a version`)
      .action(keyAction(
        'use',
        (k, _c, name, version) => k.setState(checkName(name!), checkVersion(version!), state, actor()),
        (r, _c, name, version) => adminCall(r, 'POST', versionPath(checkName(name!), String(checkVersion(version!)), verb)),
        one,
      ));
  }
  return keys;
}
