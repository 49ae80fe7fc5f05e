/**
 * Wires the broker from a Config: state store, custody, keys, policy, nonces, HTTP server. The
 * only place that turns configuration into running parts.
 */
import { randomBytes } from 'node:crypto';
import type { RequestListener } from 'node:http';
import type { Socket } from 'node:net';
import { adminTlsOptions, createAuthenticator } from './admin/index.js';
import { alarmAnnouncer } from './alarms/announce.js';
import { createApp } from './app.js';
import { NonceService } from './attestation/nonces.js';
import { SourceLimiter } from './attestation/sourceLimiter.js';
import { policyEvent } from './audit/events.js';
import { AuditRecorder } from './audit/recorder.js';
import { ensureDemoKey, prepareFiles, purgeEvery, startPolicy, warnMissingKeys } from './brokerSetup.js';
import { RefusalTally } from './audit/unauthenticated.js';
import { startBrokerAudit, type BrokerAudit } from './audit/wiring.js';
import { systemClock, type Clock } from './clock.js';
import { ConfigError, type Config } from './config.js';
import type { KeyCustodian } from './custody/custodian.js';
import { KeyService } from './keys/keyService.js';
import type { BrokerError } from './errors.js';
import { openKeys, type OpenMode } from './keys/openKeys.js';
import { InFlight } from './limits/inFlight.js';
import { SuspensionService } from './limits/suspensionService.js';
import { SuspensionSet } from './limits/suspensionSet.js';
import { createLogger, type Logger } from './log.js';
import { BrokerMetrics } from './metrics/brokerMetrics.js';
import { listenMetrics } from './metrics/server.js';
import { controlsOf } from './limits/controls.js';
import type { PolicyHighWater } from './policy/highWater.js';
import type { PolicyRuntime, ReloadOutcome } from './policy/runtime.js';
import { Readiness } from './readiness.js';
import { listen } from './server/listen.js';
import { StoreHighWater } from './store/highWater.js';
import { META, metaOnce } from './store/meta.js';
import type { Channel } from './store/remote/protocol.js';
import type { StateStore } from './store/stateStore.js';
import { WebhookSender } from './webhook/sender.js';

export { DEMO_KEY, policyVars } from './brokerSetup.js';

export interface Broker {
  url: string;
  /** Paths of the TLS CA the agent should trust, when the broker made a dev CA. */
  tlsCa?: string;
  /** Where `GET /metrics` is served when `metrics.listen` gives it a listener of its own. */
  metricsUrl?: string;
  reloadPolicy(): Promise<ReloadOutcome>;
  /** What SIGHUP does: reload the policy, the TLS certificate and key, and the admin JWKS file. Each keeps its old version on failure. */
  reload(): Promise<{ policy: boolean; tls: boolean; jwks: boolean }>;
  /** Stops accepting, drains requests in flight for up to `graceMs` (default: server.shutdownGraceSeconds), then closes custody and store. */
  close(graceMs?: number): Promise<void>;
  /** Serves a connection another process accepted (a worker of `serve --workers`). */
  accept(socket: Socket): void;
  /** The state store (the primary of `serve --workers` runs its workers' transactions on it). */
  readonly store: StateStore;
  /** The metrics (under `serve --workers`, their `gather` makes every scrape show the whole broker). */
  readonly metrics: BrokerMetrics;
}

export interface BrokerOptions {
  clock?: Clock;
  log?: Logger;
  /** Where the policy high-water mark lives; default: the state store (shared by every broker on it). */
  highWater?: PolicyHighWater;
  /**
   * This broker is a worker of `serve --workers` (server/workers.ts): the primary prepared the
   * state before it started, accepts its connections (handed to `accept`), and with SQLite owns
   * the store's writer, reached over `writer`.
   */
  worker?: { writer?: Channel };
  /**
   * This broker is the primary of `serve --workers`: it listens and offers every connection to
   * `handOff` first; on close it waits for `workersGone` before it closes its store.
   */
  primary?: { handOff: (socket: Socket) => boolean; workersGone: () => Promise<void> };
}


/** Opens the store and custody for CLI commands and the server alike (see keys/openKeys.ts for the modes). */
export { openKeys, type OpenMode };

/** How often readiness is re-checked in the background. */
const READINESS_INTERVAL_MS = 5_000;
/** How long a stopping broker waits for the alarm webhook's queue to empty. */
const WEBHOOK_DRAIN_MS = 2000;

export interface Assembled {
  app: RequestListener;
  store: StateStore;
  keys: KeyService;
  custodian: KeyCustodian;
  readiness: Readiness;
  /** Unauthenticated refusals, counted per source and window. */
  refusals: RefusalTally;
  /** The checkpointer and the other audit parts; `recorder` writes standalone records. */
  audit: BrokerAudit & { recorder: AuditRecorder };
  tls?: { cert: string; key: string };
  tlsCa?: string;
  policy: PolicyRuntime;
  metrics: BrokerMetrics;
  suspensions: SuspensionService;
  /** Attestations being decided now (the cap of server.maxAttestationsInFlight). */
  inFlight: InFlight;
  reloadPolicy(): Promise<ReloadOutcome>;
  /** Re-reads the admin API's JWKS file; throws ConfigError and keeps the keys in force when it is bad. */
  reloadJwks(): void;
  close(): Promise<void>;
}

/** Builds every part of the broker except the listening socket (what supertest drives). */
export async function assembleBroker(config: Config, opts: BrokerOptions = {}): Promise<Assembled> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger(config.log.level);
  const { tls, tlsCa } = await prepareFiles(config, log);

  // Before any state is opened, so that a bad JWKS or CA file fails first.
  const adminAuth = config.admin.enabled ? createAuthenticator(config.admin, { clock }) : undefined;
  const onStoreError = (e: unknown) => log.warn({ err: String(e) }, 'store connection error');
  const writer = opts.worker?.writer;
  const { store, keys, custodian, close: closeKeys } = await openKeys(config, clock, 'serve', { onError: onStoreError, ...(writer ? { writer } : {}) });
  const custody = custodian!;
  const stop: Array<() => Promise<void> | void> = [closeKeys];
  // Any audit write that fails makes readiness probe again at once (a write, and a record rolled back).
  let readiness: Readiness | undefined;
  const auditFailed = (what: string, e: unknown) => {
    log.error({ what, err: String(e) }, 'an audit write failed');
    readiness?.recheck();
  };
  const recorder = new AuditRecorder(store, clock, auditFailed);
  try {
    await ensureDemoKey(config, keys, log);

    let inForce: { version: number | null; manifestSha256: string } | undefined;
    const policy = await startPolicy(config, clock, log, (s) => void warnMissingKeys(s.policy, keys, log), opts.highWater ?? new StoreHighWater(store), (trigger, outcome, tried) => {
      const e = policyEvent(trigger, outcome, tried, inForce);
      if (outcome.outcome === 'loaded') inForce = { version: outcome.version, manifestSha256: outcome.manifestSha256 };
      if (e) void recorder.record(e).catch(() => undefined);
    });
    stop.unshift(() => policy.close());
    const audit = await startBrokerAudit({ config, store, custodian: custody, clock, log, policy: () => policy.latest() }, auditFailed);
    stop.unshift(() => audit.close());

    // The nonce key is made once per store and shared by every broker on it.
    const nonceKey = Buffer.from(await store.transaction((tx) => metaOnce(tx, META.nonceKey, randomKey())), 'base64');
    const nonces = new NonceService(nonceKey, clock, config.nonce.ttlSeconds * 1000);
    nonceKey.fill(0);
    const refusals = new RefusalTally(store, clock, { windowMs: config.audit.unauthenticatedWindowSeconds * 1000, maxSources: config.audit.unauthenticatedMaxSources }, (e) =>
      auditFailed('recording unauthenticated refusals', e));
    stop.unshift(() => refusals.close());
    const ready = (readiness = new Readiness(store, custody, clock, log, audit.check));
    await ready.start(READINESS_INTERVAL_MS);
    stop.unshift(() => ready.stop());

    // The crypto-anchor controls: suspensions in memory (kept current by the change feed), the
    // alarms' webhook, the cap on attestations in flight, and the metrics that count it all.
    const suspended = new SuspensionSet(store, (e) => log.error({ err: String(e) }, 'could not re-read the suspensions; the set in force stays'));
    await suspended.start();
    stop.unshift(() => suspended.close());
    const webhook = config.alarms.webhook ? new WebhookSender(config.alarms.webhook, clock, (level, fields, msg) => log[level](fields, msg)) : undefined;
    if (webhook) stop.unshift(() => webhook.close(WEBHOOK_DRAIN_MS));
    const inFlight = new InFlight(config.server.maxAttestationsInFlight);
    const metrics = new BrokerMetrics(
      { policy: () => [...policy.metrics(), ...audit.checkpointer.metrics(), ...audit.indexer.metrics()], webhooks: () => (webhook ? [{ target: 'alarms', stats: webhook.stats() }] : []), suspensions: () => suspended.countsByKind(), inFlight: () => inFlight.count },
      { nonceTtlMs: config.nonce.ttlSeconds * 1000, now: () => clock.now() },
    );
    store.observe = (committed, seconds) => metrics.storeTransaction(committed, seconds);
    const announce = alarmAnnouncer({ log, ...(webhook ? { webhook } : {}), metric: (f) => metrics.alarm(f), suspended: (s) => suspended.changed(s, true) });
    const suspensions = new SuspensionService(store, clock, (s, active) => suspended.changed(s, active));
    // A worker whose store writer is the primary leaves purging to it (server/workers.ts).
    if (!writer) stop.unshift(purgeEvery(store, clock, onStoreError));

    const app = createApp({
      nonces,
      challengeLimiter: new SourceLimiter(config.nonce.perSource, clock),
      custodian: custody,
      readiness: ready,
      log,
      inFlight,
      metrics,
      serveMetrics: config.metrics.enabled && !config.metrics.listen,
      policyStatus: () => policy.status(),
      controlsStatus: () => ({ ...controlsOf(policy.latest().policy).counts, suspensions: suspended.size }),
      release: {
        store, nonces, policy: () => policy.latest(), custodian: custody, refusals, suspensions: suspended, announce, observe: metrics, clock,
        maxClockSkewMs: config.evidence.maxClockSkewSeconds * 1000,
        auditFailed: (e) => auditFailed('recording a release decision', e),
      },
      ...(adminAuth
        ? { admin: { keys, policy: () => policy.latest().policy, policyRuntime: policy, auth: adminAuth, log, suspensions, audit: { recorder, read: store.read, unauthenticated: audit.adminUnauthenticated, checkpointer: audit.checkpointer, indexer: audit.indexer } } }
        : {}),
    });
    return {
      app,
      store,
      keys,
      custodian: custody,
      readiness: ready,
      refusals,
      audit: { ...audit, recorder },
      ...(tls ? { tls } : {}),
      ...(tlsCa ? { tlsCa } : {}),
      policy,
      metrics,
      suspensions,
      inFlight,
      reloadPolicy: () => policy.reload('sighup'),
      reloadJwks: () => adminAuth?.reload(),
      close: () => closeAll(stop),
    };
  } catch (e) {
    await closeAll(stop);
    throw e;
  }
}

async function closeAll(stop: Array<() => Promise<void> | void>): Promise<void> {
  for (const f of stop.splice(0)) await f();
}

const randomKey = () => randomBytes(32).toString('base64');

export async function startBroker(config: Config, opts: BrokerOptions = {}): Promise<Broker> {
  const log = opts.log ?? createLogger(config.log.level);
  const b = await assembleBroker(config, { ...opts, log });
  let server;
  try {
    server = await listen(config, b.app, log, {
      ...(b.tls ? { tls: b.tls } : {}),
      tlsExtra: adminTlsOptions(config.admin),
      ...(opts.worker ? { handed: true } : {}),
      ...(opts.primary ? { handOff: opts.primary.handOff } : {}),
    });
  } catch (e) {
    await b.close();
    throw e;
  }
  let metricsServer: Awaited<ReturnType<typeof listenMetrics>> | undefined;
  // A worker of `serve --workers` leaves the metrics listener to its primary (one port).
  if (config.metrics.enabled && config.metrics.listen && !opts.worker) {
    try {
      metricsServer = await listenMetrics(b.metrics, config.metrics.listen.host, config.metrics.listen.port);
    } catch (e) {
      await server.drain(0);
      await b.close();
      throw e;
    }
    log.info({ url: metricsServer.url }, 'metrics listening');
  }
  const where = { custody: b.custodian.kind, tlsCa: b.tlsCa, configDir: config.configDir, stateDir: config.stateDir };
  if (opts.worker) log.info(where, 'keyanchor worker ready: serving the connections the primary hands it');
  else log.info({ url: server.url, ...where }, 'keyanchor broker listening');
  void b.custodian.health().then(
    () => log.info({ custody: b.custodian.kind }, 'ready: custody answers'),
    (e: unknown) => log.error({ custody: b.custodian.kind, code: (e as BrokerError).code, reason: (e as BrokerError).reason ?? String(e) }, 'NOT READY: custody cannot release (see /readyz)'),
  );
  const reloadJwks = (): boolean => {
    try {
      b.reloadJwks();
      if (config.admin.jwt?.jwksFile) log.info({ jwksFile: config.admin.jwt.jwksFile }, 'admin JWKS reloaded');
      return true;
    } catch (e) {
      log.error({ problems: e instanceof ConfigError ? e.problems : [String(e)] }, 'admin JWKS reload refused; the keys in force stay');
      return false;
    }
  };
  let closing: Promise<void> | undefined;
  return {
    url: server.url,
    ...(b.tlsCa ? { tlsCa: b.tlsCa } : {}),
    ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
    reloadPolicy: b.reloadPolicy,
    reload: async () => {
      const tls = server.reloadTls();
      const jwks = reloadJwks();
      return { policy: (await b.reloadPolicy()).outcome !== 'refused', tls, jwks };
    },
    accept: (socket) => server.accept(socket),
    store: b.store,
    metrics: b.metrics,
    close: (graceMs = config.server.shutdownGraceSeconds * 1000) =>
      (closing ??= (async () => {
        await server.drain(graceMs);
        await opts.primary?.workersGone();
        await metricsServer?.close();
        log.info('shutdown: closing the state store, the policy runtime and custody');
        await b.close();
        log.info('shutdown: complete');
      })()),
  };
}
