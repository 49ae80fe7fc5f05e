/**
 * `npm run bench`: the figures in docs/benchmarks.md. Everything runs on this machine, on
 * loopback, with real parts: the broker over HTTPS in this process (so the event-loop monitor
 * sees its loop), the load generator in a child process, SoftHSM2 for PKCS#11 custody.
 * Reports medians and p99s measured in one run; the machine is noisy, compare ratios.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { generateKeyPairSync, randomBytes, randomFillSync } from 'node:crypto';
import type { KeyCustodian } from '../../src/custody/custodian.js';
import { createPkcs11Custodian } from '../../src/custody/pkcs11/index.js';
import { SoftwareCustodian } from '../../src/custody/software.js';
import type { RecipientJwk } from '../../src/protocol.js';
import { measureFile } from '../../attest-agent/src/index.js';
import { openKeys, startBroker } from '../../src/broker.js';
import { systemClock } from '../../src/clock.js';
import { parseConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { issueCertificate, SERVER_AUTH } from '../../src/pki.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';
import { AGENT_CLI, ROOT } from '../helpers/processes.js';
import { fmt, median, quantile } from './stats.js';
import { pkcs11Setup } from './pkcs11Setup.js';

const quick = process.argv.includes('--quick');
const N_SEQ = quick ? 60 : 300;
const LOAD_SECONDS = quick ? 3 : 10;
const CONCURRENCY = 8;

interface Files { ca: string; tlsCert: string; tlsKey: string; nodeCert: string; nodeKey: string; sig: string }

async function writeFiles(w: World): Promise<Files> {
  const f = (n: string) => path.join(w.dir, n);
  const files: Files = { ca: f('ca.pem'), tlsCert: f('tls.pem'), tlsKey: f('tls.key'), nodeCert: f('node.pem'), nodeKey: f('node.key'), sig: `${w.app.path}.sig` };
  const ca = await issueCertificate({ subject: 'CN=bench CA', ca: true });
  const tls = await issueCertificate({ subject: 'CN=broker', ips: ['127.0.0.1'], eku: [SERVER_AUTH] }, ca);
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.tlsCert, tls.certPem);
  writeFileSync(files.tlsKey, tls.keyPem, { mode: 0o600 });
  writeFileSync(files.nodeCert, w.node.certPem);
  writeFileSync(files.nodeKey, w.node.keyPem, { mode: 0o600 });
  writeFileSync(files.sig, w.app.sig);
  return files;
}

function load(args: Record<string, unknown>): Promise<{ lat: number[]; errors?: number; elapsedMs?: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/test/bench/load.js'), JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exited ${code}`))));
  });
}

interface CustodyFigures { p50: number; p99: number; warmP50: number; warmP99: number; rate: number; loadP50: number; loadP99: number; errors: number; eldP50: number; eldP99: number; eldMax: number }

async function benchCustody(w: World, files: Files, custody: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<CustodyFigures> {
  const config: Config = parseConfig(
    JSON.stringify({ stateDir: path.join(w.dir, `state-${String(custody.kind)}`), policyDir: w.policyDir, tls: { cert: files.tlsCert, key: files.tlsKey }, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'info' }, custody, nonce: { perSource: { ratePerSecond: 1_000_000, burst: 1_000_000 } } }),
    { file: path.join(w.dir, 'bench.json'), env: { ...process.env, ...env } },
  );
  const k = await openKeys(config, systemClock, 'serve');
  if (!k.keys.has(APP_KEY)) await k.keys.create(APP_KEY, 'bench');
  await k.close();
  const broker = await startBroker(config, { log: createLogger('info', createWriteStream('/dev/null')) });
  const common = { url: broker.url, ca: files.ca, nodeCert: files.nodeCert, nodeKey: files.nodeKey, program: { path: w.app.path, sha256: w.app.sha256 }, sig: files.sig, key: APP_KEY };
  try {
    const seq = await load({ ...common, mode: 'seq', n: N_SEQ, warmup: 30 });
    const warm = await load({ ...common, mode: 'seq', n: N_SEQ, warmup: 30, warm: true });
    const eld = monitorEventLoopDelay({ resolution: 5 });
    eld.enable();
    const sustained = await load({ ...common, mode: 'load', seconds: LOAD_SECONDS, concurrency: CONCURRENCY });
    eld.disable();
    return {
      p50: median(seq.lat), p99: quantile(seq.lat, 0.99), warmP50: median(warm.lat), warmP99: quantile(warm.lat, 0.99),
      rate: sustained.lat.length / ((sustained.elapsedMs ?? 1) / 1000), loadP50: median(sustained.lat), loadP99: quantile(sustained.lat, 0.99), errors: sustained.errors ?? 0,
      eldP50: eld.percentile(50) / 1e6, eldP99: eld.percentile(99) / 1e6, eldMax: eld.max / 1e6,
    };
  } finally {
    await broker.close();
  }
}

/** Custody alone, in process: one release of one key to the same RSA-3072 recipient, p50/p99. */
async function benchRelease(custodian: KeyCustodian, n: number): Promise<{ p50: number; p99: number }> {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const jwk = publicKey.export({ format: 'jwk' }) as RecipientJwk;
  const ref = { name: APP_KEY, version: 1 };
  const wrapped = await custodian.generate(ref);
  for (let i = 0; i < 50; i++) await custodian.releaseTo(ref, wrapped, jwk);
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await custodian.releaseTo(ref, wrapped, jwk);
    xs.push(performance.now() - t);
  }
  return { p50: median(xs), p99: quantile(xs, 0.99) };
}

async function benchHashing(): Promise<{ mbps: number; sha256sumMbps: number; sizeMiB: number }> {
  const sizeMiB = quick ? 128 : 512;
  const file = path.join(os.tmpdir(), `keyanchor-bench-${process.pid}.bin`);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  try {
    await measureFile(file); // warm the page cache
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await measureFile(file);
      runs.push(performance.now() - t);
    }
    const sums: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      execFileSync('sha256sum', [file], { stdio: 'ignore' });
      sums.push(performance.now() - t);
    }
    return { mbps: (sizeMiB * 1.048576) / (median(runs) / 1000), sha256sumMbps: (sizeMiB * 1.048576) / (median(sums) / 1000), sizeMiB };
  } finally {
    rmSync(file, { force: true });
  }
}

async function benchAgentOverhead(w: World, files: Files): Promise<{ execMs: number; nodeMs: number; hashMs: number }> {
  const config = parseConfig(
    JSON.stringify({ stateDir: path.join(w.dir, 'state-software'), policyDir: w.policyDir, tls: { cert: files.tlsCert, key: files.tlsKey }, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'warn' } }),
    { file: path.join(w.dir, 'bench.json') },
  );
  const broker = await startBroker(config, { log: createLogger('warn', createWriteStream('/dev/null')) });
  const wall = (cmd: string, args: string[]) => {
    const t = performance.now();
    execFileSync(cmd, args, { stdio: 'ignore' });
    return performance.now() - t;
  };
  try {
    const args = ['exec', '--broker', broker.url, '--ca', files.ca, '--node-cert', files.nodeCert, '--node-key', files.nodeKey, '--key', `${APP_KEY}=APP_KEY`, '--', w.app.path];
    const execRuns: number[] = [];
    const nodeRuns: number[] = [];
    for (let i = 0; i < (quick ? 5 : 15); i++) {
      execRuns.push(await new Promise<number>((resolve, reject) => {
        const t = performance.now();
        const c = spawn(process.execPath, [AGENT_CLI, ...args], { stdio: 'ignore' });
        c.on('exit', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`agent exit ${code}`))));
      }));
      nodeRuns.push(wall(process.execPath, ['-e', '0']));
    }
    const t = performance.now();
    await measureFile(w.app.path);
    return { execMs: median(execRuns), nodeMs: median(nodeRuns), hashMs: performance.now() - t };
  } finally {
    await broker.close();
  }
}

const w = await makeWorld();
const files = await writeFiles(w);
const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  process.stdout.write(s + '\n');
};
try {
  say(`# keyanchor bench ${new Date().toISOString()} — ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}${quick ? ' (quick)' : ''}`);
  const sw = await benchCustody(w, files, { kind: 'software' });
  say(`software custody: full round trip (challenge + attest + decrypt) p50 ${fmt(sw.p50)} ms, p99 ${fmt(sw.p99)} ms with a new TLS connection per attestation; p50 ${fmt(sw.warmP50)} ms, p99 ${fmt(sw.warmP99)} ms on a warm connection (n=${N_SEQ} each, sequential)`);
  say(`software custody: sustained ${fmt(sw.rate, 0)} attestations/s at concurrency ${CONCURRENCY} for ${LOAD_SECONDS} s (p50 ${fmt(sw.loadP50)} ms, p99 ${fmt(sw.loadP99)} ms, errors ${sw.errors}); broker event-loop delay p50 ${fmt(sw.eldP50)} ms, p99 ${fmt(sw.eldP99)} ms, max ${fmt(sw.eldMax)} ms`);
  const hsm = await pkcs11Setup(w);
  if (hsm) {
    try {
      const n = quick ? 300 : 2000;
      const soft = new SoftwareCustodian(randomBytes(32));
      const hard = await createPkcs11Custodian(hsm.config);
      const rs = await benchRelease(soft, n);
      const rh = await benchRelease(hard, n);
      await soft.close();
      await hard.close();
      say(`custody release alone (unwrap + re-encrypt to an RSA-3072 recipient, n=${n}): software p50 ${fmt(rs.p50, 3)} ms, p99 ${fmt(rs.p99, 3)} ms; pkcs11/SoftHSM2 p50 ${fmt(rh.p50, 3)} ms, p99 ${fmt(rh.p99, 3)} ms; the HSM adds ${fmt(rh.p50 - rs.p50, 3)} ms at p50, ${fmt(rh.p99 - rs.p99, 3)} ms at p99`);
      const hw = await benchCustody(w, files, hsm.custody, hsm.env);
      say(`pkcs11 custody (SoftHSM2): full round trip p50 ${fmt(hw.p50)} ms, p99 ${fmt(hw.p99)} ms (new connection); warm p50 ${fmt(hw.warmP50)} ms, p99 ${fmt(hw.warmP99)} ms; over software custody (warm): +${fmt(hw.warmP50 - sw.warmP50)} ms at p50 (${fmt(hw.warmP50 / sw.warmP50)}×), +${fmt(hw.warmP99 - sw.warmP99)} ms at p99`);
      say(`pkcs11 custody (SoftHSM2): sustained ${fmt(hw.rate, 0)} attestations/s (p50 ${fmt(hw.loadP50)} ms, p99 ${fmt(hw.loadP99)} ms, errors ${hw.errors}); broker event-loop delay p50 ${fmt(hw.eldP50)} ms, p99 ${fmt(hw.eldP99)} ms, max ${fmt(hw.eldMax)} ms`);
    } finally {
      hsm.cleanup();
    }
  } else say('pkcs11 custody: skipped (SoftHSM2 not installed)');
  const h = await benchHashing();
  say(`agent hashing: ${fmt(h.mbps, 0)} MB/s streamed sha256 over a ${h.sizeMiB} MiB file (median of 5, page cache warm); sha256sum: ${fmt(h.sha256sumMbps, 0)} MB/s`);
  const o = await benchAgentOverhead(w, files);
  say(`agent exec, whole command for a small program: ${fmt(o.execMs, 0)} ms median (of which node start ${fmt(o.nodeMs, 0)} ms, hashing ${fmt(o.hashMs, 1)} ms); overhead beyond hashing ${fmt(o.execMs - o.hashMs, 0)} ms`);
} finally {
  w.cleanup();
}
