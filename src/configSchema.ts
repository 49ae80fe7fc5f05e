/**
 * The configuration file's schema: every section, its defaults and bounds (strict: unknown keys
 * are refused). config.ts parses a file with it, applies the environment and resolves secrets.
 */
import { z } from 'zod';
import { SecretRef } from './secretRef.js';
import { WebhookTarget } from './webhook/config.js';

export const Port = z.number().int().min(0).max(65535);

export const SoftwareCustody = z.strictObject({ kind: z.literal('software') });
export const Pkcs11Custody = z.strictObject({
  kind: z.literal('pkcs11'),
  module: z.string().min(1),
  token: z.union([z.strictObject({ label: z.string().min(1) }), z.strictObject({ slot: z.number().int().nonnegative() })]),
  /** Where the user PIN comes from: an environment variable or a file. Never the config itself. */
  pin: SecretRef,
  kekLabel: z.string().min(1).default('keyanchor-kek'),
  /** The EC P-256 key pair that signs audit checkpoints (made on the token at the first start). */
  auditKeyLabel: z.string().min(1).default('keyanchor-audit'),
  /** Mechanism that wraps data keys under the KEK. */
  wrapMechanism: z.enum(['AES_KEY_WRAP_PAD', 'AES_KEY_WRAP']).default('AES_KEY_WRAP_PAD'),
  /** Hash for RSA-OAEP wrapping to the agent. SoftHSM 2.6 supports SHA-1 only. */
  oaepHash: z.enum(['SHA-1', 'SHA-256']).default('SHA-256'),
  sessions: z.number().int().min(1).max(64).default(4),
  /** Seconds between readiness probes (a full generate-and-release round in the HSM); also run at start. */
  probeIntervalSeconds: z.number().int().min(1).max(86_400).default(60),
});

/** The state store (nonces, keystore, audit, limits, suspensions): SQLite by default, PostgreSQL for replicas. */
export const ChangePollMs = z.number().int().min(50).max(10_000).default(500);
export const SqliteStore = z.strictObject({
  kind: z.literal('sqlite'),
  /** The database file; relative paths are under stateDir. */
  file: z.string().min(1).default('keyanchor.db'),
  /** `full`: one flush per (group) commit, survives power loss; `normal`: survives a crash of the broker only. */
  synchronous: z.enum(['full', 'normal']).default('full'),
  /** How long a writer waits for another process's write lock. */
  busyTimeoutMs: z.number().int().min(0).max(60_000).default(5000),
  changePollMs: ChangePollMs,
});
export const PostgresStore = z.strictObject({
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
export const Admin = z
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
export const PolicyOptions = z
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

/** Signed audit checkpoints (docs/operations.md, "The audit trail"). */
export const CHECKPOINT_DEFAULTS = { everyRecords: 1000, everySeconds: 60, sweepSeconds: 300 };
export const AuditCheckpoints = z.strictObject({
  /** A writer chain is checkpointed once it has this many records past its last checkpoint… */
  everyRecords: z.number().int().min(1).max(1_000_000).default(CHECKPOINT_DEFAULTS.everyRecords),
  /** …or its oldest record past the last checkpoint is this old. */
  everySeconds: z.number().int().min(1).max(86_400).default(CHECKPOINT_DEFAULTS.everySeconds),
  /** How often chains whose writer stopped without a final checkpoint are swept (0: never). */
  sweepSeconds: z.number().int().min(0).max(86_400).default(CHECKPOINT_DEFAULTS.sweepSeconds),
});
export const Witness = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('file'), path: z.string().min(1) }),
  WebhookTarget.extend({ kind: z.literal('webhook') }),
  z.strictObject({ kind: z.literal('log') }),
]);

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
      /** Attestations decided at once by this process at most; beyond it `503 overloaded` with Retry-After. */
      maxAttestationsInFlight: z.number().int().min(1).max(100_000).default(256),
      /**
       * Broker processes behind the one listening socket (`serve --workers`, server/workers.ts).
       * `auto`: one per core with a production config (TLS, not dev), 1 in dev or on plain HTTP.
       */
      workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
    })
    .default({ maxConnections: 4096, maxConnectionsPerSource: 128, shutdownGraceSeconds: 20, maxAttestationsInFlight: 256, workers: 'auto' }),
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
      checkpoint: AuditCheckpoints.default(CHECKPOINT_DEFAULTS),
      /** Where every checkpoint is also sent: files on other mounts, webhooks, the log. */
      witnesses: z.array(Witness).max(16).default([]),
    })
    .default({ unauthenticatedWindowSeconds: 60, unauthenticatedMaxSources: 10_000, checkpoint: CHECKPOINT_DEFAULTS, witnesses: [] }),
  /** Alarms are declared in the policy; where they are announced besides the log, the metrics and the audit trail. */
  alarms: z.strictObject({ webhook: WebhookTarget.optional() }).default({}),
  /** `GET /metrics` (Prometheus text format): on the broker's listener, or on a separate plain-HTTP one. */
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      listen: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: Port }).optional(),
    })
    .default({ enabled: true }),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
  /**
   * Development conveniences: dev TLS CA, demo node/publisher credentials and a demo key. Off unless
   * asked for (`dev: { enabled: true }`, or `keyanchor serve --dev`): a production config never gets them.
   */
  dev: z.strictObject({ enabled: z.boolean().default(false) }).default({ enabled: false }),
});

