import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, loadConfig, type Config, type ConfigOverrides } from '../config.js';

/** Where an installed broker keeps its config (the Debian-style default; deploy/ uses it). */
export const SYSTEM_CONFIG = '/etc/keyanchor/config.yaml';

export interface ConfigSource {
  /** The file to read, or undefined for the embedded defaults. */
  file: string | undefined;
  /** How it was found: `--config`, `KEYANCHOR_CONFIG`, the system path, or nothing found. */
  from: 'flag' | 'env' | 'system' | 'defaults';
}

/** `--config`, else `KEYANCHOR_CONFIG`, else /etc/keyanchor/config.yaml when it exists, else the embedded defaults. */
export function locateConfig(flag: string | undefined, env: NodeJS.ProcessEnv, exists: (p: string) => boolean = existsSync, system = SYSTEM_CONFIG): ConfigSource {
  if (flag) return { file: flag, from: 'flag' };
  if (env.KEYANCHOR_CONFIG) return { file: env.KEYANCHOR_CONFIG, from: 'env' };
  if (exists(system)) return { file: system, from: 'system' };
  return { file: undefined, from: 'defaults' };
}

/** The line on stderr that says which config and state dir a command uses when `--config` did not say. */
export function describeSource(src: ConfigSource, config: Pick<Config, 'stateDir'>): string {
  const what =
    src.from === 'env' ? `config ${src.file} (from KEYANCHOR_CONFIG)`
    : src.from === 'system' ? `config ${src.file}`
    : `the embedded defaults (no --config, KEYANCHOR_CONFIG or ${SYSTEM_CONFIG})`;
  return `keyanchor: using ${what}, state dir ${config.stateDir}`;
}

/**
 * Reads the config once. Unless it was named with `--config`, says on stderr which one it used and
 * where the state dir is, so that a command run in the wrong place is noticed, not silent.
 * Commands that act on files named on their command line, not on the state (`policy …`), pass
 * `announce: false`.
 */
export function configFrom(cmd: Command, overrides: ConfigOverrides = {}, opts: { resolveSecrets?: boolean; announce?: boolean } = {}): Config {
  const src = locateConfig((cmd.optsWithGlobals() as { config?: string }).config, process.env);
  const config = loadConfig(src.file, process.env, overrides, { resolveSecrets: opts.resolveSecrets });
  if (src.from !== 'flag' && opts.announce !== false) process.stderr.write(`${describeSource(src, config)}\n`);
  return config;
}

/** Exit codes shared by every subcommand. */
export const EXIT = { ok: 0, failure: 1, usage: 2, invalid: 3 } as const;

export function fail(message: string, code: number = EXIT.failure): never {
  process.stderr.write(`keyanchor: ${message}\n`);
  process.exit(code);
}

export function reportConfigError(e: unknown): never {
  if (e instanceof ConfigError) fail(e.message, EXIT.invalid);
  throw e;
}
