import type { Command } from 'commander';
import { ConfigError, loadConfig, type Config, type ConfigOverrides } from '../config.js';

/** Reads --config (or KEYANCHOR_CONFIG) once; the embedded defaults apply when neither is given. */
export function configFrom(cmd: Command, overrides: ConfigOverrides = {}): Config {
  const file = (cmd.optsWithGlobals() as { config?: string }).config ?? process.env.KEYANCHOR_CONFIG;
  return loadConfig(file, process.env, overrides);
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
