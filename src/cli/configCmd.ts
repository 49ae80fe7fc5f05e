/**
 * `keyanchor config check [FILE]`: what the broker would refuse at start, found before a deploy.
 * The config itself (strict schema, every problem with file:line:col) and, unless `--schema-only`,
 * what it points to: the secrets it names, the TLS pair (parses, key matches, within validity),
 * the policy directory, the admin API's JWKS file and client CA, and the PKCS#11 module file. It
 * opens no state and no HSM session (`keyanchor hsm status` does that).
 */
import { statSync } from 'node:fs';
import { Command } from 'commander';
import { createAuthenticator } from '../admin/index.js';
import { policyVars } from '../broker.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { formatProblem, loadPolicyDir, PolicyError } from '../policy/load.js';
import { loadTlsMaterial } from '../server/tls.js';
import { configFrom, EXIT } from './context.js';
import { emit, withOutput } from './output.js';

export interface Check {
  check: string;
  ok: boolean;
  /** What was found, or every problem. */
  details: string[];
}

export interface CheckReport {
  file: string | null;
  schemaOnly: boolean;
  ok: boolean;
  checks: Check[];
}

function attempt(check: string, fn: () => string): Check {
  try {
    return { check, ok: true, details: [fn()] };
  } catch (e) {
    if (e instanceof ConfigError) return { check, ok: false, details: e.problems };
    if (e instanceof PolicyError) return { check, ok: false, details: e.problems.map(formatProblem) };
    return { check, ok: false, details: [(e as Error).message] };
  }
}

/** Every check on what a parsed config refers to. */
export function checkReferences(config: Config, now = new Date()): Check[] {
  const checks: Check[] = [];
  if (config.insecureHttp) checks.push({ check: 'tls', ok: true, details: ['plain HTTP on a loopback address (insecureHttp)'] });
  else if (config.tls) {
    const tls = config.tls;
    checks.push(attempt('tls', () => `${tls.cert}: valid until ${loadTlsMaterial(tls, now).notAfter.toISOString()}, key matches`));
  } else if (config.dev.enabled) checks.push({ check: 'tls', ok: true, details: ['dev mode: a dev CA and server certificate in the state dir'] });
  else checks.push({ check: 'tls', ok: false, details: ['no tls.cert and tls.key, and dev mode is off: the broker would not start'] });

  checks.push(attempt('policy', () => {
    const p = loadPolicyDir(config.policyDir, { vars: policyVars(config) });
    return `${config.policyDir}: ${p.sources.length} file(s), ${p.software.length} software entr${p.software.length === 1 ? 'y' : 'ies'}`;
  }));
  if (config.admin.enabled) {
    checks.push(attempt('admin', () => {
      createAuthenticator(config.admin);
      return [config.admin.jwt ? `jwt (${config.admin.jwt.jwksFile ?? config.admin.jwt.jwksUrl})` : '', config.admin.mtls ? `mtls (${config.admin.mtls.ca})` : ''].filter(Boolean).join(', ');
    }));
  }
  if (config.custody.kind === 'pkcs11') {
    const module = config.custody.module;
    checks.push(attempt('custody', () => {
      if (!statSync(module, { throwIfNoEntry: false })?.isFile()) throw new Error(`custody.module: ${module} is not a file`);
      return `pkcs11 module ${module} (run \`keyanchor hsm status\` to reach the token)`;
    }));
  }
  checks.push({
    check: 'stateDir',
    ok: true,
    details: [statSync(config.stateDir, { throwIfNoEntry: false })?.isDirectory() ? `${config.stateDir} exists` : `${config.stateDir} does not exist yet`],
  });
  return checks;
}

export function runConfigCheck(load: () => Config, opts: { file: string | null; schemaOnly: boolean }): CheckReport {
  let config: Config | undefined;
  const parsed = attempt('config', () => {
    config = load();
    return opts.schemaOnly ? 'schema: every key known and valid (secrets not read)' : 'schema: every key known and valid; secrets readable';
  });
  const checks = [parsed, ...(config && !opts.schemaOnly ? checkReferences(config) : [])];
  return { file: opts.file, schemaOnly: opts.schemaOnly, ok: checks.every((c) => c.ok), checks };
}

function formatReport(r: CheckReport): string {
  const lines = [`${r.file ?? 'embedded defaults'}${r.schemaOnly ? ' (schema only)' : ''}`];
  for (const c of r.checks) for (const [i, d] of c.details.entries()) lines.push(`${i === 0 ? `${c.ok ? 'ok     ' : 'PROBLEM'} ${c.check.padEnd(8)}` : ' '.repeat(16)} ${d}`);
  lines.push(r.ok ? 'config OK' : `${r.checks.filter((c) => !c.ok).length} check(s) failed`);
  return lines.join('\n');
}

export function configCommand(): Command {
  const config = new Command('config').description('check a configuration file');
  withOutput(
    config
      .command('check')
      .description('validate a config file and what it refers to (TLS pair, policy, JWKS, PKCS#11 module), as the broker would at start')
      .argument('[file]', 'config file (default: --config, KEYANCHOR_CONFIG, then /etc/keyanchor/config.yaml)')
      .option('--schema-only', 'check the file alone: do not read the secrets, certificates or policies it names'),
  ).action((file: string | undefined, o: { schemaOnly?: boolean }, cmd: Command) => {
    const secrets = { resolveSecrets: !o.schemaOnly };
    const load = file ? () => loadConfig(file, process.env, {}, secrets) : () => configFrom(cmd, {}, secrets);
    const named = file ?? (cmd.optsWithGlobals() as { config?: string }).config ?? process.env.KEYANCHOR_CONFIG ?? null;
    const report = runConfigCheck(load, { file: named, schemaOnly: Boolean(o.schemaOnly) });
    emit(cmd, report, formatReport);
    if (!report.ok) process.exitCode = EXIT.invalid;
  });
  return config;
}
