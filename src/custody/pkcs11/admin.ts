/**
 * Operator tasks behind `keyanchor hsm`: create the KEK, and report on the token and the KEK.
 * Each opens the library, one logged-in session, does its job and releases everything.
 */
import type { Pkcs11CustodyConfig } from '../../config.js';
import { BrokerError } from '../../errors.js';
import { CKF, CKM } from './constants.js';
import { Pkcs11Custodian } from './custodian.js';
import { custodyError } from './errors.js';
import { assessKek, findSecretKeys, generateKek, kekId, kekRemedy, readKekAttributes, type KekAttributes } from './kek.js';
import { Pkcs11Library, slotIdOf, type Handle, type Pkcs11Internals } from './library.js';
import { SessionPool } from './sessions.js';

export interface HsmStatus {
  module: { path: string; manufacturer: string; description: string; version: string };
  token: { slot: string; label: string; serial: string; model: string; manufacturer: string; flags: string[] };
  /** Mechanisms keyanchor uses, and whether the token lists them. */
  mechanisms: Record<string, boolean>;
  kek: { label: string; found: number; kekId?: string; attributes?: KekAttributes; problems: string[]; warnings: string[] };
  /** The readiness probe (probe.ts) with the configured mechanisms; run only when the KEK is acceptable. */
  probe: { ran: false } | { ran: true; mechanisms: string; ok: boolean; problem?: string };
  /** True when the custodian would accept this token and KEK and a release goes through. */
  ok: boolean;
}

export interface HsmInitResult {
  slot: string;
  tokenLabel: string;
  kekLabel: string;
  kekId: string;
}

type AdminConfig = Pick<Pkcs11CustodyConfig, 'module' | 'token' | 'pin' | 'kekLabel'>;
type StatusConfig = AdminConfig & Pick<Pkcs11CustodyConfig, 'wrapMechanism' | 'oaepHash'>;

const MECHANISMS = {
  AES_KEY_GEN: CKM.AES_KEY_GEN,
  AES_KEY_WRAP_PAD: CKM.AES_KEY_WRAP_PAD,
  AES_KEY_WRAP: CKM.AES_KEY_WRAP,
  AES_CMAC: CKM.AES_CMAC,
  AES_GCM: CKM.AES_GCM,
  RSA_PKCS_OAEP: CKM.RSA_PKCS_OAEP,
} as const;

const TOKEN_FLAGS = [
  ['TOKEN_INITIALIZED', CKF.TOKEN_INITIALIZED],
  ['USER_PIN_INITIALIZED', CKF.USER_PIN_INITIALIZED],
  ['LOGIN_REQUIRED', CKF.LOGIN_REQUIRED],
  ['WRITE_PROTECTED', CKF.WRITE_PROTECTED],
  ['USER_PIN_COUNT_LOW', CKF.USER_PIN_COUNT_LOW],
  ['USER_PIN_FINAL_TRY', CKF.USER_PIN_FINAL_TRY],
  ['USER_PIN_LOCKED', CKF.USER_PIN_LOCKED],
  ['USER_PIN_TO_BE_CHANGED', CKF.USER_PIN_TO_BE_CHANGED],
] as const;

/** Creates the KEK on the configured token; refuses when a secret key with its label exists. */
export async function hsmInit(config: AdminConfig, internals?: Pkcs11Internals): Promise<HsmInitResult> {
  return withUserSession('hsm init', config, internals, async (lib, slot, session) => {
    const mod = lib.mod;
    const info = mod.C_GetTokenInfo(slot);
    if (findSecretKeys(mod, session, config.kekLabel).length > 0) {
      throw new BrokerError('key_exists', `pkcs11: a secret key labelled "${config.kekLabel}" already exists on token "${info.label.trimEnd()}"; not creating another`);
    }
    const handle = await generateKek(mod, session, config.kekLabel);
    const attributes = readKekAttributes(mod, session, handle);
    return {
      slot: slotIdOf(slot).toString(),
      tokenLabel: info.label.trimEnd(),
      kekLabel: config.kekLabel,
      kekId: kekId(config.kekLabel, attributes.id, info.serialNumber.trimEnd()),
    };
  });
}

/**
 * Token facts and the KEK's attributes (never its value), with what is wrong or loose about it, and
 * the result of one release round through the configured mechanisms (what `/readyz` reports too).
 */
export async function hsmStatus(config: StatusConfig, internals?: Pkcs11Internals): Promise<HsmStatus> {
  const status = await tokenStatus(config, internals);
  if (!status.ok) return status;
  const mechanisms = `${config.wrapMechanism}, AES_CMAC, RSA-OAEP/${config.oaepHash}, AES_GCM`;
  const failure = await probeToken(config, internals);
  status.probe = { ran: true, mechanisms, ok: !failure, ...(failure ? { problem: failure.reason.replace(/^pkcs11: readiness probe: /, '') } : {}) };
  status.ok = !failure;
  return status;
}

async function probeToken(config: StatusConfig, internals: Pkcs11Internals | undefined): Promise<BrokerError | undefined> {
  const full = { ...config, sessions: 1, probeIntervalSeconds: 60 } as Pkcs11CustodyConfig;
  const custodian = new Pkcs11Custodian(await SessionPool.open(full, internals), full);
  try {
    return await custodian.probe();
  } finally {
    await custodian.close();
  }
}

async function tokenStatus(config: AdminConfig, internals?: Pkcs11Internals): Promise<HsmStatus> {
  return withUserSession('hsm status', config, internals, async (lib, slot, session) => {
    const mod = lib.mod;
    const m = mod.C_GetInfo();
    const t = mod.C_GetTokenInfo(slot);
    const listed = new Set(mod.C_GetMechanismList(slot));
    const mechanisms = Object.fromEntries(Object.entries(MECHANISMS).map(([name, id]) => [name, listed.has(id)]));
    const handles = findSecretKeys(mod, session, config.kekLabel);
    const kek: HsmStatus['kek'] = { label: config.kekLabel, found: handles.length, problems: [], warnings: [] };
    if (handles.length === 1) {
      kek.attributes = readKekAttributes(mod, session, handles[0]!);
      kek.kekId = kekId(config.kekLabel, kek.attributes.id, t.serialNumber.trimEnd());
      Object.assign(kek, assessKek(kek.attributes));
    } else {
      kek.problems.push(handles.length === 0 ? `no secret key labelled "${config.kekLabel}"` : `${handles.length} secret keys share the label; keep one`);
    }
    if (kek.problems.length) kek.problems.push(kekRemedy(config.module, config.kekLabel));
    const missing = Object.entries(mechanisms).filter(([name, ok]) => !ok && name !== 'AES_KEY_WRAP').map(([name]) => name);
    if (missing.length) kek.problems.push(`the token does not list CKM_${missing.join(', CKM_')}`);
    return {
      module: {
        path: config.module,
        manufacturer: m.manufacturerID.trimEnd(),
        description: m.libraryDescription.trimEnd(),
        version: `${m.libraryVersion.major}.${m.libraryVersion.minor}`,
      },
      token: {
        slot: slotIdOf(slot).toString(),
        label: t.label.trimEnd(),
        serial: t.serialNumber.trimEnd(),
        model: t.model.trimEnd(),
        manufacturer: t.manufacturerID.trimEnd(),
        flags: TOKEN_FLAGS.filter(([, f]) => (t.flags & f) !== 0).map(([name]) => name),
      },
      mechanisms,
      kek,
      probe: { ran: false },
      ok: kek.problems.length === 0,
    };
  });
}

async function withUserSession<T>(
  what: string,
  config: AdminConfig,
  internals: Pkcs11Internals | undefined,
  work: (lib: Pkcs11Library, slot: Handle, session: Handle) => Promise<T>,
): Promise<T> {
  const lib = await Pkcs11Library.open(config.module, internals);
  try {
    const slot = lib.findSlot(config.token);
    const session = lib.openSession(slot);
    try {
      lib.login(session, config.pin);
      return await work(lib, slot, session);
    } catch (e) {
      throw custodyError(what, e);
    } finally {
      lib.closeSession(session);
    }
  } finally {
    lib.release();
  }
}
