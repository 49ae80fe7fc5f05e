/**
 * `keyanchor hsm init|status`: create and inspect the PKCS#11 key-encryption key. Thin: the
 * PKCS#11 work lives in custody/pkcs11 (imported lazily, so the default install needs no
 * pkcs11js). Values are never printed, only attributes.
 */
import { Command } from 'commander';
import { ConfigError, type Config, type Pkcs11CustodyConfig } from '../config.js';

export interface HsmCommandIo {
  out: (text: string) => void;
}

const stdout: HsmCommandIo = { out: (text) => process.stdout.write(text) };

export function hsmCommand(loadConfig: () => Config, io: HsmCommandIo = stdout): Command {
  const hsm = new Command('hsm').description('manage the PKCS#11 key-encryption key (custody.kind: pkcs11)');

  hsm
    .command('init')
    .description('create the KEK on the configured token (AES-256, non-extractable, wrap/unwrap only)')
    .action(async () => {
      const { hsmInit } = await import('../custody/pkcs11/index.js');
      const r = await hsmInit(pkcs11Config(loadConfig()));
      io.out(`created KEK "${r.kekLabel}" on token "${r.tokenLabel}" (slot ${r.slot})\nkekId: ${r.kekId}\n`);
    });

  hsm
    .command('status')
    .description('show the token, the mechanisms keyanchor needs, and the KEK attributes; exit 1 on a problem')
    .option('--json', 'print the status as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { hsmStatus } = await import('../custody/pkcs11/index.js');
      const s = await hsmStatus(pkcs11Config(loadConfig()));
      if (opts.json) io.out(JSON.stringify(s, null, 2) + '\n');
      else {
        const lines = [
          `module:     ${s.module.path} (${s.module.manufacturer} ${s.module.description} ${s.module.version})`,
          `token:      "${s.token.label}" serial ${s.token.serial}, slot ${s.token.slot}, ${s.token.manufacturer} ${s.token.model}`,
          `            ${s.token.flags.join(' ')}`,
          `mechanisms: ${Object.entries(s.mechanisms).map(([m, ok]) => `${m}${ok ? '' : ' (missing)'}`).join(', ')}`,
          `KEK:        "${s.kek.label}" ${s.kek.found === 1 ? `found, ${s.kek.kekId}` : `found ${s.kek.found}`}`,
        ];
        if (s.kek.attributes) {
          const a = s.kek.attributes;
          const on = Object.entries(a).filter(([, v]) => v === true).map(([k]) => k);
          const off = Object.entries(a).filter(([, v]) => v === false).map(([k]) => k);
          lines.push(`            AES-${a.valueLen * 8}, CKA_ID ${a.id || '(none)'}`, `            true:  ${on.join(' ')}`, `            false: ${off.join(' ')}`);
        }
        for (const p of s.kek.problems) lines.push(`problem:    ${p}`);
        for (const w of s.kek.warnings) lines.push(`warning:    ${w}`);
        lines.push(s.ok ? 'ok' : 'NOT USABLE');
        io.out(lines.join('\n') + '\n');
      }
      if (!s.ok) process.exitCode = 1;
    });

  return hsm;
}

function pkcs11Config(config: Config): Pkcs11CustodyConfig {
  if (config.custody.kind !== 'pkcs11') {
    throw new ConfigError([`custody.kind is "${config.custody.kind}"; keyanchor hsm needs custody.kind: pkcs11`]);
  }
  return config.custody;
}
