/**
 * `keyanchor hsm init|status`: create and inspect the PKCS#11 key-encryption key. Thin: the
 * PKCS#11 work lives in custody/pkcs11 (imported lazily, so the default install needs no
 * pkcs11js). Attributes are printed, never values, never the PIN.
 */
import { Command, Option } from 'commander';
import { ConfigError, type Config, type Pkcs11CustodyConfig } from '../config.js';
import type { HsmStatus } from '../custody/pkcs11/index.js';
import { BrokerError } from '../errors.js';
import { EXIT, fail } from './context.js';
import { render, withOutput, type OutputFormat } from './output.js';

export interface HsmCommandIo {
  out: (text: string) => void;
  fail: (message: string, code: number) => never;
}

const processIo: HsmCommandIo = { out: (text) => process.stdout.write(text), fail };

export function hsmCommand(loadConfig: () => Config, io: HsmCommandIo = processIo): Command {
  const hsm = new Command('hsm').description('manage the PKCS#11 key-encryption key (custody.kind: pkcs11)');
  const run = (fn: (config: Pkcs11CustodyConfig, opts: { json?: boolean; output?: OutputFormat }) => Promise<void>) => async (opts: { json?: boolean; output?: OutputFormat }) => {
    try {
      await fn(pkcs11Config(loadConfig()), opts);
    } catch (e) {
      if (e instanceof ConfigError) io.fail(e.message, EXIT.invalid);
      if (e instanceof BrokerError) io.fail(`${e.code}: ${e.reason}`, EXIT.failure);
      throw e;
    }
  };

  hsm
    .command('init')
    .description('create the KEK on the configured token (AES-256, non-extractable, wrap/unwrap only)')
    .action(
      run(async (config) => {
        const { hsmInit } = await import('../custody/pkcs11/index.js');
        const r = await hsmInit(config);
        io.out(`created KEK "${r.kekLabel}" on token "${r.tokenLabel}" (slot ${r.slot})\nkekId: ${r.kekId}\n`);
      }),
    );

  withOutput(
    hsm
      .command('status')
      .description('show the token, the mechanisms keyanchor needs and the KEK attributes, and run one release through the configured mechanisms; exit 1 if a release would fail')
      .addOption(new Option('--json', 'same as -o json').hideHelp()),
  ).action(
    run(async (config, opts) => {
      const { hsmStatus } = await import('../custody/pkcs11/index.js');
      const s = await hsmStatus(config);
      io.out(render(opts.json ? 'json' : (opts.output ?? 'text'), s, formatStatus));
      if (!s.ok) process.exitCode = EXIT.failure;
    }),
  );

  return hsm;
}

function formatStatus(s: HsmStatus): string {
  const lines = [
    `module:     ${s.module.path} (${s.module.manufacturer} ${s.module.description} ${s.module.version})`,
    `token:      "${s.token.label}" serial ${s.token.serial}, slot ${s.token.slot}, ${s.token.manufacturer} ${s.token.model}`,
    `            ${s.token.flags.join(' ')}`,
    `mechanisms: ${Object.entries(s.mechanisms).map(([m, ok]) => `${m}${ok ? '' : ' (missing)'}`).join(', ')}`,
    `KEK:        "${s.kek.label}" ${s.kek.found === 1 ? `found, ${s.kek.kekId}` : `found ${s.kek.found}`}`,
  ];
  if (s.kek.attributes) {
    const a = s.kek.attributes;
    const flags = (v: boolean) => Object.entries(a).filter(([, x]) => x === v).map(([k]) => k).join(' ');
    lines.push(`            AES-${a.valueLen * 8}, CKA_ID ${a.id || '(none)'}`, `            true:  ${flags(true)}`, `            false: ${flags(false)}`);
  }
  for (const p of s.kek.problems) lines.push(`problem:    ${p}`);
  for (const w of s.kek.warnings) lines.push(`warning:    ${w}`);
  if (s.probe.ran) lines.push(`release:    ${s.probe.mechanisms}: ${s.probe.ok ? 'a probe release went through' : `FAILED: ${s.probe.problem}`}`);
  lines.push(s.ok ? 'ok' : 'NOT USABLE');
  return lines.join('\n') + '\n';
}

function pkcs11Config(config: Config): Pkcs11CustodyConfig {
  if (config.custody.kind !== 'pkcs11') {
    throw new ConfigError([`custody.kind is "${config.custody.kind}"; keyanchor hsm needs custody.kind: pkcs11`]);
  }
  return config.custody;
}
