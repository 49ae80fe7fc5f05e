/**
 * Configuration: one file (YAML or JSON), a strict schema, environment overrides for secrets and
 * ports, every problem reported at once, then frozen. Nothing else in the broker reads env vars.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Secret } from './secret.js';
import { resolveSecret } from './secretRef.js';
import { webhookOptions } from './webhook/config.js';
import type { WebhookOptions } from './webhook/sender.js';
import { locateIssues } from './schemaProblems.js';
import { formatPath, parseYamlSource } from './yamlSource.js';
import { ConfigSchema, type Pkcs11Custody, type PostgresStore, type SqliteStore } from './configSchema.js';

export { ConfigSchema };

type Parsed = z.infer<typeof ConfigSchema>;
export type Pkcs11CustodyConfig = Omit<z.infer<typeof Pkcs11Custody>, 'pin'> & { pin: Secret };
export type CustodyConfig = { kind: 'software' } | Pkcs11CustodyConfig;
export type SqliteStoreConfig = z.infer<typeof SqliteStore>;
export type PostgresStoreConfig = Omit<z.infer<typeof PostgresStore>, 'password'> & { password?: Secret };
export type StoreConfig = SqliteStoreConfig | PostgresStoreConfig;
export type WitnessConfig = { kind: 'file'; path: string } | { kind: 'webhook'; webhook: WebhookOptions } | { kind: 'log' };
export type AuditConfig = Omit<Parsed['audit'], 'witnesses'> & { witnesses: WitnessConfig[] };
export type Config = Readonly<Omit<Parsed, 'custody' | 'store' | 'alarms' | 'audit'> & { custody: CustodyConfig; store: StoreConfig; alarms: { webhook?: WebhookOptions }; audit: AuditConfig; configDir: string }>;

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Environment variables that override the file. Secrets (the HSM PIN) never come from the file. */
export const ENV_OVERRIDES = {
  KEYANCHOR_HOST: 'listen.host',
  KEYANCHOR_PORT: 'listen.port',
  KEYANCHOR_STATE_DIR: 'stateDir',
  KEYANCHOR_POLICY_DIR: 'policyDir',
  KEYANCHOR_LOG_LEVEL: 'log.level',
} as const;

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [name, dotted] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    const keys = dotted.split('.');
    let target = raw;
    for (const k of keys.slice(0, -1)) {
      const next = target[k];
      if (next !== undefined && (typeof next !== 'object' || next === null || Array.isArray(next))) {
        problems.push(`${name}: cannot override ${dotted}: the file sets ${k} to a non-object`);
        return;
      }
      target = (target[k] ??= {}) as Record<string, unknown>;
    }
    const leaf = keys[keys.length - 1]!;
    if (name === 'KEYANCHOR_PORT') {
      if (!/^\d{1,5}$/.test(v)) problems.push(`${name}: not a port number`);
      else target[leaf] = Number(v);
    } else target[leaf] = v;
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
/** `config check --schema-only` does not read secrets: a well-formed stand-in for the webhook's. */
const UNRESOLVED_WEBHOOK_SECRET = `whsec_${Buffer.alloc(24).toString('base64')}`;

/**
 * Parses and validates a configuration. `text` is the file's content (YAML or JSON), or undefined
 * for the embedded defaults. Throws ConfigError listing every problem.
 */
/** Command-line flags that override the file and the environment. */
export interface ConfigOverrides {
  insecureHttp?: boolean;
  host?: string;
  port?: number;
  stateDir?: string;
  policyDir?: string;
  /** `--dev`: dev mode on whatever the file says. */
  dev?: boolean;
  requireSignedPolicy?: boolean;
  /** `--workers N`. */
  workers?: number;
}

export interface ParseOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: ConfigOverrides;
  /** False: check the file alone, without reading the secrets it refers to (`config check --schema-only`). */
  resolveSecrets?: boolean;
}

export function parseConfig(text: string | undefined, opts: ParseOptions = {}): Config {
  const env = opts.env ?? {};
  const where = opts.file ?? 'config';
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  let locate: (p: ReadonlyArray<PropertyKey>, o?: { atKey?: boolean }) => { line: number; col: number } = () => ({ line: 1, col: 1 });
  if (text !== undefined) {
    const src = parseYamlSource(text);
    for (const e of src.errors) problems.push(`${where}:${e.pos.line}:${e.pos.col}: ${e.message}`);
    if (src.errors.length === 0) {
      if (src.value === null || src.value === undefined) raw = {};
      else if (typeof src.value !== 'object' || Array.isArray(src.value)) problems.push(`${where}: must be a mapping`);
      else raw = src.value as Record<string, unknown>;
    }
    locate = src.locate;
  }
  if (problems.length) throw new ConfigError(problems);
  applyEnv(raw, env, problems);
  const o = opts.overrides ?? {};
  if (o.host !== undefined || o.port !== undefined) {
    const listen = (raw.listen ??= {}) as Record<string, unknown>;
    if (o.host !== undefined) listen.host = o.host;
    if (o.port !== undefined) listen.port = o.port;
  }
  if (o.insecureHttp) raw.insecureHttp = true;
  if (o.stateDir !== undefined) raw.stateDir = o.stateDir;
  if (o.policyDir !== undefined) raw.policyDir = o.policyDir;
  if (o.dev) raw.dev = { enabled: true };
  if (o.workers !== undefined) {
    const server = (raw.server ??= {}) as Record<string, unknown>;
    if (typeof server === 'object' && server !== null && !Array.isArray(server)) server.workers = o.workers;
  }
  if (o.requireSignedPolicy) {
    const policy = (raw.policy ??= {}) as Record<string, unknown>;
    if (typeof policy === 'object' && policy !== null && !Array.isArray(policy)) policy.requireSignedPolicy = true;
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    for (const p of locateIssues(result.error, locate)) {
      problems.push(`${where}:${p.pos.line}:${p.pos.col} ${formatPath(p.path)}: ${p.message}`);
    }
    throw new ConfigError(problems);
  }
  const c = result.data;
  const configDir = opts.file ? path.dirname(path.resolve(opts.file)) : process.cwd();
  if (c.admin.enabled && c.admin.mtls && c.insecureHttp) problems.push(`${where}: admin.mtls needs TLS; it cannot work with insecureHttp`);
  if (c.insecureHttp && !LOOPBACK.test(c.listen.host)) {
    problems.push(`${where}: insecureHttp is allowed only on a loopback address, not ${c.listen.host}`);
  }
  let custody: CustodyConfig = { kind: 'software' };
  if (c.custody.kind === 'pkcs11') {
    const pin = opts.resolveSecrets === false ? new Secret('') : resolveSecret(c.custody.pin, env, `${where} custody.pin`, configDir, problems);
    custody = { ...c.custody, pin };
  }
  const abs = (p: string) => path.resolve(configDir, p);
  let store: StoreConfig;
  if (c.store.kind === 'postgres') {
    if (/^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(c.store.url)) problems.push(`${where} store.url: put the password in store.password ({ env } or { file }), not in the URL`);
    const { password, tls, ...rest } = c.store;
    store = {
      ...rest,
      ...(password ? { password: opts.resolveSecrets === false ? new Secret('') : resolveSecret(password, env, `${where} store.password`, configDir, problems) } : {}),
      ...(tls ? { tls: Object.fromEntries(Object.entries(tls).map(([k, v]) => [k, abs(v)])) } : {}),
    };
  } else store = { ...c.store, file: path.resolve(abs(c.stateDir), c.store.file) };
  const hook = c.alarms.webhook;
  const alarms = hook
    ? { webhook: opts.resolveSecrets === false ? webhookOptions({ ...hook, secret: { env: 'unresolved' } }, { unresolved: UNRESOLVED_WEBHOOK_SECRET }, `${where} alarms.webhook`, configDir, []) : webhookOptions(hook, env, `${where} alarms.webhook`, configDir, problems) }
    : {};
  const witnesses = c.audit.witnesses.map((w, i): WitnessConfig => {
    if (w.kind === 'file') return { kind: 'file', path: abs(w.path) };
    if (w.kind === 'log') return w;
    const { kind: _, ...target } = w;
    // Without secrets (`config check --schema-only`) the webhook's secret and CA are not checked.
    return { kind: 'webhook', webhook: webhookOptions(target, env, `${where} audit.witnesses[${i}]`, configDir, opts.resolveSecrets === false ? [] : problems) };
  });
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze({
    ...c,
    custody,
    store,
    alarms,
    audit: { ...c.audit, witnesses },
    configDir,
    stateDir: abs(c.stateDir),
    policyDir: abs(c.policyDir),
    policy: { ...c.policy, ...(c.policy.root ? { root: { ...c.policy.root, keys: c.policy.root.keys.map(abs) } } : {}) },
    tls: c.tls ? { cert: abs(c.tls.cert), key: abs(c.tls.key) } : undefined,
    admin: {
      ...c.admin,
      ...(c.admin.jwt ? { jwt: { ...c.admin.jwt, ...(c.admin.jwt.jwksFile ? { jwksFile: abs(c.admin.jwt.jwksFile) } : {}) } } : {}),
      ...(c.admin.mtls ? { mtls: { ca: abs(c.admin.mtls.ca) } } : {}),
    },
  });
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}, opts: Pick<ParseOptions, 'resolveSecrets'> = {}): Config {
  if (!file) return parseConfig(undefined, { env, overrides, ...opts });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  return parseConfig(text, { file, env, overrides, ...opts });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Secret) && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
