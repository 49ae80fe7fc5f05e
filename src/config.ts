/**
 * Configuration: one file (YAML or JSON), a strict schema, environment overrides for secrets and
 * ports, every problem reported at once, then frozen. Nothing else in the broker reads env vars.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Secret } from './secret.js';
import { resolveSecret, SecretRef } from './secretRef.js';
import { locateIssues } from './schemaProblems.js';
import { formatPath, parseYamlSource } from './yamlSource.js';

const Port = z.number().int().min(0).max(65535);

const SoftwareCustody = z.strictObject({ kind: z.literal('software') });
const Pkcs11Custody = z.strictObject({
  kind: z.literal('pkcs11'),
  module: z.string().min(1),
  token: z.union([z.strictObject({ label: z.string().min(1) }), z.strictObject({ slot: z.number().int().nonnegative() })]),
  /** Where the user PIN comes from: an environment variable or a file. Never the config itself. */
  pin: SecretRef,
  kekLabel: z.string().min(1).default('keyanchor-kek'),
  /** Mechanism that wraps data keys under the KEK. */
  wrapMechanism: z.enum(['AES_KEY_WRAP_PAD', 'AES_KEY_WRAP']).default('AES_KEY_WRAP_PAD'),
  /** Hash for RSA-OAEP wrapping to the agent. SoftHSM 2.6 supports SHA-1 only. */
  oaepHash: z.enum(['SHA-1', 'SHA-256']).default('SHA-256'),
  sessions: z.number().int().min(1).max(64).default(4),
  /** Seconds between readiness probes (a full generate-and-release round in the HSM); also run at start. */
  probeIntervalSeconds: z.number().int().min(1).max(86_400).default(60),
});

/** The state store (nonces, keystore, audit, limits, suspensions): SQLite by default, PostgreSQL for replicas. */
const ChangePollMs = z.number().int().min(50).max(10_000).default(500);
const SqliteStore = z.strictObject({
  kind: z.literal('sqlite'),
  /** The database file; relative paths are under stateDir. */
  file: z.string().min(1).default('keyanchor.db'),
  /** `full`: one flush per (group) commit, survives power loss; `normal`: survives a crash of the broker only. */
  synchronous: z.enum(['full', 'normal']).default('full'),
  /** How long a writer waits for another process's write lock. */
  busyTimeoutMs: z.number().int().min(0).max(60_000).default(5000),
  changePollMs: ChangePollMs,
});
const PostgresStore = z.strictObject({
  kind: z.literal('postgres'),
  /** postgres://user@host:port/db, without a password: that comes from `password`. */
  url: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL'),
  password: SecretRef.optional(),
  /** TLS to the database: verify the server against `ca` (or the system CAs); optional client certificate. */
  tls: z.strictObject({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }).optional(),
  pool: z
    .strictObject({ max: z.number().int().min(1).max(200).default(10), acquireTimeoutMs: z.number().int().min(100).max(60_000).default(2000) })
    .default({ max: 10, acquireTimeoutMs: 2000 }),
  statementTimeoutMs: z.number().int().min(100).max(60_000).default(2000),
  changePollMs: ChangePollMs,
});

/** The admin API (key lifecycle for service owners). Off unless enabled with an authenticator. */
const Admin = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Bearer JWTs from an OIDC issuer, verified against its JWKS (a file or a URL). */
    jwt: z
      .strictObject({
        issuer: z.string().min(1),
        audience: z.string().min(1),
        jwksFile: z.string().min(1).optional(),
        jwksUrl: z.url().optional(),
        groupsClaim: z.string().min(1).default('groups'),
        algorithms: z.array(z.enum(['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'])).min(1).default(['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA']),
        maxTokenAgeSeconds: z.number().int().min(1).max(86_400).default(3600),
      })
      .refine((j) => (j.jwksFile === undefined) !== (j.jwksUrl === undefined), 'give exactly one of jwksFile or jwksUrl')
      .optional(),
    /** Client certificates chaining to this CA (PEM file) authenticate admin callers. */
    mtls: z.strictObject({ ca: z.string().min(1) }).optional(),
  })
  .refine((a) => !a.enabled || a.jwt || a.mtls, 'an enabled admin API needs jwt or mtls');

/** Signed policy bundles and reloading (docs/policy.md, docs/operations.md). */
const PolicyOptions = z
  .strictObject({
    /** The trust root, pinned out of band: PEM public keys (paths relative to the config) and how many must sign. */
    root: z
      .strictObject({ keys: z.array(z.string().min(1)).min(1).max(64), threshold: z.number().int().min(1).max(64) })
      .refine((r) => r.threshold <= r.keys.length, 'the threshold is more than the number of keys')
      .optional(),
    /** Refuse to run without a pinned root (an unsigned policy is then impossible). */
    requireSignedPolicy: z.boolean().default(false),
    /** Reload when a file of the policy directory changes. */
    watch: z.boolean().default(true),
    /** Quiet time after the last change before that reload. */
    watchDebounceMs: z.number().int().min(50).max(60_000).default(500),
  })
  .refine((p) => !p.requireSignedPolicy || p.root !== undefined, 'requireSignedPolicy needs a pinned root (policy.root)');

export const ConfigSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: Port.default(8443),
    })
    .default({ host: '127.0.0.1', port: 8443 }),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** The HTTP server: connection caps and the shutdown drain. */
  server: z
    .strictObject({
      /** Open connections at most; beyond it new ones are dropped at accept. */
      maxConnections: z.number().int().min(1).max(1_000_000).default(4096),
      /** Open connections per client address at most (0: no per-source cap, e.g. behind a proxy). */
      maxConnectionsPerSource: z.number().int().min(0).max(1_000_000).default(128),
      /** On SIGTERM/SIGINT, how long requests in flight may take to finish before their connections are cut. */
      shutdownGraceSeconds: z.number().int().min(0).max(3600).default(20),
      /**
       * Broker processes behind the one listening socket (`serve --workers`, server/workers.ts).
       * `auto`: one per core with a production config (TLS, not dev), 1 in dev or on plain HTTP.
       */
      workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
    })
    .default({ maxConnections: 4096, maxConnectionsPerSource: 128, shutdownGraceSeconds: 20, workers: 'auto' }),
  /** Plain HTTP, for tests only: allowed only on a loopback address. */
  insecureHttp: z.boolean().default(false),
  stateDir: z.string().min(1).default('state'),
  /** The policy directory (see docs/policy.md); the default is the demo policy of the checkout. */
  policyDir: z.string().min(1).default('policies/demo'),
  policy: PolicyOptions.default({ requireSignedPolicy: false, watch: true, watchDebounceMs: 500 }),
  nonce: z
    .strictObject({
      ttlSeconds: z.number().int().min(1).max(3600).default(60),
      /** Challenges per source address: a token bucket (rate per second, burst) per address, in each broker process. */
      perSource: z
        .strictObject({
          ratePerSecond: z.number().min(0.01).max(1_000_000).default(50),
          burst: z.number().int().min(1).max(1_000_000).default(200),
          maxSources: z.number().int().min(1).max(10_000_000).default(100_000),
        })
        .default({ ratePerSecond: 50, burst: 200, maxSources: 100_000 }),
    })
    .default({ ttlSeconds: 60, perSource: { ratePerSecond: 50, burst: 200, maxSources: 100_000 } }),
  evidence: z
    .strictObject({ maxClockSkewSeconds: z.number().int().min(0).max(3600).default(60) })
    .default({ maxClockSkewSeconds: 60 }),
  custody: z.discriminatedUnion('kind', [SoftwareCustody, Pkcs11Custody]).default({ kind: 'software' }),
  store: z.discriminatedUnion('kind', [SqliteStore, PostgresStore]).default({ kind: 'sqlite', file: 'keyanchor.db', synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 }),
  admin: Admin.default({ enabled: false }),
  audit: z
    .strictObject({
      /** Refusals before the evidence verifies are counted per source and written once per window. */
      unauthenticatedWindowSeconds: z.number().int().min(1).max(3600).default(60),
      /** Sources counted at once; past it the oldest source's count is written early. */
      unauthenticatedMaxSources: z.number().int().min(1).max(1_000_000).default(10_000),
    })
    .default({ unauthenticatedWindowSeconds: 60, unauthenticatedMaxSources: 10_000 }),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
  /**
   * Development conveniences: dev TLS CA, demo node/publisher credentials and a demo key. Off unless
   * asked for (`dev: { enabled: true }`, or `keyanchor serve --dev`): a production config never gets them.
   */
  dev: z.strictObject({ enabled: z.boolean().default(false) }).default({ enabled: false }),
});

type Parsed = z.infer<typeof ConfigSchema>;
export type Pkcs11CustodyConfig = Omit<z.infer<typeof Pkcs11Custody>, 'pin'> & { pin: Secret };
export type CustodyConfig = { kind: 'software' } | Pkcs11CustodyConfig;
export type SqliteStoreConfig = z.infer<typeof SqliteStore>;
export type PostgresStoreConfig = Omit<z.infer<typeof PostgresStore>, 'password'> & { password?: Secret };
export type StoreConfig = SqliteStoreConfig | PostgresStoreConfig;
export type Config = Readonly<Omit<Parsed, 'custody' | 'store'> & { custody: CustodyConfig; store: StoreConfig; configDir: string }>;

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
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze({
    ...c,
    custody,
    store,
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
