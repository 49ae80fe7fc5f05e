/**
 * Wires the broker from a Config: state store, custody, keys, policy, nonces, HTTP server. The
 * only place that turns configuration into running parts.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { adminTlsOptions, createAuthenticator } from './admin/index.js';
import { createApp } from './app.js';
import { NonceService } from './attestation/nonces.js';
import { SourceLimiter } from './attestation/sourceLimiter.js';
import { RefusalTally } from './audit/unauthenticated.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import type { KeyCustodian } from './custody/custodian.js';
import { devPaths, ensureDevIdentities, ensureDevTls, signDemoApp } from './dev/bootstrap.js';
import { KeyService } from './keys/keyService.js';
import { openKeys, type OpenMode } from './keys/openKeys.js';
import { createLogger, type Logger } from './log.js';
import { formatProblem, loadPolicyDir, PolicyError } from './policy/load.js';
import type { Policy } from './policy/types.js';
import { Readiness } from './readiness.js';
import { META, metaOnce } from './store/meta.js';
import type { StateStore } from './store/stateStore.js';

export const DEMO_KEY = 'demo/app-key';

export interface Broker {
  url: string;
  /** Paths of the TLS CA the agent should trust, when the broker made a dev CA. */
  tlsCa?: string;
  reloadPolicy(): boolean;
  close(): Promise<void>;
}

export interface BrokerOptions {
  clock?: Clock;
  log?: Logger;
}

export const policyVars = (config: Pick<Config, 'stateDir'>) => ({ stateDir: config.stateDir });

/** Opens the store and custody for CLI commands and the server alike (see keys/openKeys.ts for the modes). */
export { openKeys, type OpenMode };

/** How often readiness is re-checked, and expired state purged, in the background. */
const READINESS_INTERVAL_MS = 5_000;
const PURGE_INTERVAL_MS = 60_000;
/** Alarm-window counters are kept this long. */
const COUNTER_RETENTION_MS = 7 * 86_400_000;

export interface Assembled {
  app: Express;
  store: StateStore;
  keys: KeyService;
  custodian: KeyCustodian;
  readiness: Readiness;
  /** Unauthenticated refusals, counted per source and window. */
  refusals: RefusalTally;
  tls?: { cert: string; key: string };
  tlsCa?: string;
  reloadPolicy(): boolean;
  close(): Promise<void>;
}

/** Builds every part of the broker except the listening socket (what supertest drives). */
export async function assembleBroker(config: Config, opts: BrokerOptions = {}): Promise<Assembled> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger(config.log.level);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const dev = devPaths(config.stateDir);
  let tlsCa: string | undefined;
  if (config.dev.enabled) {
    if (await ensureDevIdentities(dev)) log.info({ nodeCert: dev.nodeCert, publisherKey: dev.publisherKey }, 'generated demo node and publisher credentials');
    signDemoApp(dev);
  }
  let tls = config.tls;
  if (!config.insecureHttp && !tls) {
    if (!config.dev.enabled) throw new Error('no TLS certificate configured (set tls.cert and tls.key, or enable dev mode)');
    if (await ensureDevTls(dev, [config.listen.host])) log.info({ ca: dev.tlsCa }, 'generated a dev TLS CA and server certificate');
    tls = { cert: dev.tlsCert, key: dev.tlsKey };
    tlsCa = dev.tlsCa;
  }

  // Before any state is opened, so that a bad JWKS or CA file fails first.
  const adminAuth = config.admin.enabled ? createAuthenticator(config.admin, { clock }) : undefined;
  let policy: Policy = loadPolicyDir(config.policyDir, { vars: policyVars(config) });
  const onStoreError = (e: unknown) => log.warn({ err: String(e) }, 'store connection error');
  const { store, keys, custodian, close: closeKeys } = await openKeys(config, clock, 'serve', { onError: onStoreError });
  const custody = custodian!;
  const stop: Array<() => Promise<void> | void> = [closeKeys];
  try {
    if (config.dev.enabled && !(await keys.has(DEMO_KEY))) {
      await keys.create(DEMO_KEY, 'keyanchor-dev-bootstrap').catch(async (e: unknown) => {
        if (!(await keys.has(DEMO_KEY))) throw e; // another replica made it first
      });
      log.info({ key: DEMO_KEY }, 'created the demo key');
    }
    const logPolicy = async (p: Policy) => {
      log.info({ policyDir: config.policyDir, files: p.sources, software: p.software.length, nodeCAs: p.nodeCAs.size }, 'policy loaded');
      for (const sw of p.software) for (const g of sw.grants) for (const k of g.keys) {
        if (!(await keys.has(k.name).catch(() => true))) log.warn({ software: sw.name, key: k.name }, 'policy grants a key that does not exist yet');
      }
    };
    await logPolicy(policy);
    const reloadPolicy = (): boolean => {
      try {
        policy = loadPolicyDir(config.policyDir, { vars: policyVars(config) });
        void logPolicy(policy);
        return true;
      } catch (e) {
        const problems = e instanceof PolicyError ? e.problems.map(formatProblem) : [String(e)];
        log.error({ problems }, 'policy reload refused; the previous policy stays in force');
        return false;
      }
    };

    // The nonce key is made once per store and shared by every broker on it.
    const nonceKey = Buffer.from(await store.transaction((tx) => metaOnce(tx, META.nonceKey, randomKey())), 'base64');
    const nonces = new NonceService(nonceKey, clock, config.nonce.ttlSeconds * 1000);
    nonceKey.fill(0);
    const refusals = new RefusalTally(store, clock, { windowMs: config.audit.unauthenticatedWindowSeconds * 1000, maxSources: config.audit.unauthenticatedMaxSources }, (e) =>
      log.error({ err: String(e) }, 'could not record unauthenticated refusals'));
    stop.unshift(() => refusals.close());
    const readiness = new Readiness(store, custody, clock, log);
    await readiness.start(READINESS_INTERVAL_MS);
    stop.unshift(() => readiness.stop());
    const purge = setInterval(() => void store.purge(clock.now() - COUNTER_RETENTION_MS).catch(onStoreError), PURGE_INTERVAL_MS);
    purge.unref();
    stop.unshift(() => clearInterval(purge));

    const app = createApp({
      nonces,
      challengeLimiter: new SourceLimiter(config.nonce.perSource, clock),
      custodian: custody,
      readiness,
      log,
      release: { store, nonces, policy: () => policy, custodian: custody, refusals, clock, maxClockSkewMs: config.evidence.maxClockSkewSeconds * 1000 },
      ...(adminAuth ? { admin: { keys, policy: () => policy, auth: adminAuth, log } } : {}),
    });
    return {
      app,
      store,
      keys,
      custodian: custody,
      readiness,
      refusals,
      ...(tls ? { tls } : {}),
      ...(tlsCa ? { tlsCa } : {}),
      reloadPolicy,
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
  const server = b.tls
    ? https.createServer({ cert: readFileSync(b.tls.cert), key: readFileSync(b.tls.key), minVersion: 'TLSv1.2', ...adminTlsOptions(config.admin) }, b.app)
    : http.createServer(b.app);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${b.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  log.info({ url, custody: b.custodian.kind, tlsCa: b.tlsCa }, 'keyanchor broker listening');
  return {
    url,
    ...(b.tlsCa ? { tlsCa: b.tlsCa } : {}),
    reloadPolicy: b.reloadPolicy,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
      await b.close();
    },
  };
}
