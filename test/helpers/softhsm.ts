/**
 * A throwaway SoftHSM2 token for a test file: a temp token directory, a softhsm2.conf pointing at
 * it (exported as SOFTHSM2_CONF before any PKCS#11 library is initialised: SoftHSM reads it in
 * C_Initialize, and its state is per process, so use one SoftHSM per test file) and a token
 * initialised with `softhsm2-util --init-token --free`.
 *
 * Missing tools: with KEYANCHOR_REQUIRE_DEPS=1 the check throws (CI must not skip silently);
 * otherwise it warns loudly and the caller skips its suite with describe.skipIf.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Pkcs11CustodyConfig } from '../../src/config.js';
import { Secret } from '../../src/secret.js';

const MODULE_CANDIDATES = [
  process.env.KEYANCHOR_SOFTHSM_MODULE,
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

export interface SoftHsm {
  /** Path of libsofthsm2.so. */
  module: string;
  label: string;
  pin: string;
  soPin: string;
  /** The softhsm2.conf in use (also in process.env.SOFTHSM2_CONF). */
  conf: string;
  dir: string;
  /** Moves the token directory away, as if the device were unplugged. */
  unplug(): void;
  replug(): void;
  /** Runs OpenSC pkcs11-tool against this token, logged in. */
  pkcs11Tool(args: string[]): string;
  cleanup(): void;
}

export const softhsmModule = (): string | undefined => MODULE_CANDIDATES.find((p): p is string => !!p && existsSync(p));

const onPath = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/**
 * True when SoftHSM2 (and, if asked, pkcs11-tool) is usable. Otherwise throws under
 * KEYANCHOR_REQUIRE_DEPS=1, or warns and returns false so the suite is skipped.
 */
export function softhsmAvailable(opts: { pkcs11Tool?: boolean } = {}): boolean {
  const missing: string[] = [];
  if (!softhsmModule()) missing.push('libsofthsm2.so (set KEYANCHOR_SOFTHSM_MODULE)');
  if (!onPath('softhsm2-util')) missing.push('softhsm2-util');
  if (opts.pkcs11Tool && !onPath('pkcs11-tool')) missing.push('pkcs11-tool (OpenSC)');
  if (missing.length === 0) return true;
  const msg = `SoftHSM tests need ${missing.join(', ')}`;
  if (process.env.KEYANCHOR_REQUIRE_DEPS === '1') throw new Error(`${msg} (KEYANCHOR_REQUIRE_DEPS=1)`);
  console.warn(`\n!!!!!!!!!! SKIPPING: ${msg}. Install softhsm2 and opensc, or set KEYANCHOR_REQUIRE_DEPS=1 to fail. !!!!!!!!!!\n`);
  return false;
}

export function createSoftHsm(opts: { label?: string } = {}): SoftHsm {
  const module = softhsmModule();
  if (!module) throw new Error('libsofthsm2.so not found');
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-softhsm-'));
  const tokens = path.join(dir, 'tokens');
  const away = path.join(dir, 'unplugged');
  const conf = path.join(dir, 'softhsm2.conf');
  mkdirSync(tokens, { mode: 0o700 });
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = conf;

  const label = opts.label ?? 'keyanchor-test';
  const pin = `pin-${randomBytes(6).toString('hex')}`;
  const soPin = `so-${randomBytes(6).toString('hex')}`;
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { env, stdio: 'pipe' });

  return {
    module,
    label,
    pin,
    soPin,
    conf,
    dir,
    unplug: () => renameSync(tokens, away),
    replug: () => renameSync(away, tokens),
    pkcs11Tool: (args) =>
      execFileSync('pkcs11-tool', ['--module', module, '--token-label', label, '--login', '--pin', pin, ...args], { env, stdio: 'pipe' }).toString(),
    cleanup: () => {
      if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previousConf;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A pkcs11 custody config for `hsm` (SHA-1 OAEP: SoftHSM 2.6 has no SHA-256 OAEP). */
export function softhsmCustodyConfig(hsm: SoftHsm, overrides: Partial<Pkcs11CustodyConfig> = {}): Pkcs11CustodyConfig {
  return {
    kind: 'pkcs11',
    module: hsm.module,
    token: { label: hsm.label },
    pin: new Secret(hsm.pin),
    kekLabel: 'keyanchor-kek',
    auditKeyLabel: 'keyanchor-audit',
    wrapMechanism: 'AES_KEY_WRAP_PAD',
    oaepHash: 'SHA-1',
    sessions: 4,
    probeIntervalSeconds: 60,
    ...overrides,
  };
}
