/**
 * What a broker makes or starts beside its parts (broker.ts wires those): the files it needs
 * before it opens its state, the demo key in dev mode, the purge of expired state, the policy
 * runtime and its warning about keys the policy grants but the store lacks.
 */
import { mkdirSync } from 'node:fs';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { devPaths, ensureDevIdentities, ensureDevTls, signDemoApp } from './dev/bootstrap.js';
import type { KeyService } from './keys/keyService.js';
import type { Logger } from './log.js';
import { MAX_ALARM_SPAN_MS } from './policy/compileControls.js';
import type { PolicyHighWater } from './policy/highWater.js';
import { PolicyRuntime, type RuntimeOptions } from './policy/runtime.js';
import type { Policy } from './policy/types.js';
import type { StateStore } from './store/stateStore.js';

export const DEMO_KEY = 'demo/app-key';

export const policyVars = (config: Pick<Config, 'stateDir'>) => ({ stateDir: config.stateDir });

/** How often expired state is purged in the background. */
const PURGE_INTERVAL_MS = 60_000;
/** Alarm-window counters are kept this long (policy/compileControls.ts bounds an alarm's span by it). */
const COUNTER_RETENTION_MS = MAX_ALARM_SPAN_MS;

/**
 * The files a broker needs before it opens its state: the state directory, and in dev mode the
 * demo credentials and a dev TLS pair. Returns the TLS pair to serve. The primary of
 * `serve --workers` runs it before its workers start, so they find everything made.
 */
export async function prepareFiles(config: Config, log: Logger): Promise<{ tls?: { cert: string; key: string }; tlsCa?: string }> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const dev = devPaths(config.stateDir);
  if (config.dev.enabled) {
    if (await ensureDevIdentities(dev)) log.info({ nodeCert: dev.nodeCert, publisherKey: dev.publisherKey }, 'generated demo node and publisher credentials');
    signDemoApp(dev);
  }
  if (config.insecureHttp || config.tls) return config.tls ? { tls: config.tls } : {};
  if (!config.dev.enabled) throw new Error('no TLS certificate configured: set tls.cert and tls.key (or, on a laptop, run with --dev)');
  if (await ensureDevTls(dev, [config.listen.host])) log.info({ ca: dev.tlsCa }, 'generated a dev TLS CA and server certificate');
  return { tls: { cert: dev.tlsCert, key: dev.tlsKey }, tlsCa: dev.tlsCa };
}

/** In dev mode, the demo key, made once per store. */
export async function ensureDemoKey(config: Config, keys: KeyService, log: Logger): Promise<void> {
  if (!config.dev.enabled || (await keys.has(DEMO_KEY))) return;
  await keys.create(DEMO_KEY, 'keyanchor-dev-bootstrap').catch(async (e: unknown) => {
    if (!(await keys.has(DEMO_KEY))) throw e; // another replica made it first
  });
  log.info({ key: DEMO_KEY }, 'created the demo key');
}

/** Purges expired state every PURGE_INTERVAL_MS; returns the function that stops it. */
export function purgeEvery(store: StateStore, clock: Clock, onError: (e: unknown) => void): () => void {
  const purge = setInterval(() => void store.purge(clock.now() - COUNTER_RETENTION_MS).catch(onError), PURGE_INTERVAL_MS);
  purge.unref();
  return () => clearInterval(purge);
}

/** The policy runtime: the first load (fatal on failure), then reloads; watching when configured. */
export async function startPolicy(config: Config, clock: Clock, log: Logger, onLoaded: (s: { policy: Policy }) => void, highWater: PolicyHighWater, onOutcome: RuntimeOptions['onOutcome']): Promise<PolicyRuntime> {
  const rt = await PolicyRuntime.start({
    dir: config.policyDir,
    vars: policyVars(config),
    root: config.policy.root,
    requireSigned: config.policy.requireSignedPolicy,
    highWater,
    clock,
    log,
    onLoaded,
    onOutcome,
  });
  if (config.policy.watch) rt.watch(config.policy.watchDebounceMs);
  return rt;
}

/** One warning for every grant of a key the store does not hold (a summary, for large policies). */
export async function warnMissingKeys(policy: Policy, keys: KeyService, log: Logger): Promise<void> {
  const granted = new Set<string>();
  for (const sw of policy.software) for (const g of sw.grants) for (const k of g.keys) granted.add(k.name);
  const missing: string[] = [];
  for (const name of granted) if (!(await keys.has(name).catch(() => true))) missing.push(name);
  if (missing.length) log.warn({ keys: missing.slice(0, 20), count: missing.length }, 'the policy grants keys that do not exist yet');
}

