/**
 * KEK lookup and policy, `hsm init` / `hsm status` and their CLI, against SoftHSM2 with KEKs made
 * by `hsm init` and by OpenSC pkcs11-tool.
 *
 * What pkcs11-tool makes (OpenSC 0.22, `--keygen --key-type AES:32`): CKA_EXTRACTABLE false but
 * CKA_SENSITIVE false and CKA_PRIVATE false (usable without the PIN), with encrypt, decrypt, sign,
 * verify, wrap and unwrap all on. keyanchor refuses that KEK; `--sensitive --private` makes one
 * it accepts (with a warning about the extra usages, which pkcs11-tool cannot switch off).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config, type Pkcs11CustodyConfig } from '../../../src/config.js';
import { createPkcs11Custodian, hsmInit, hsmStatus } from '../../../src/custody/pkcs11/index.js';
import { hsmCommand } from '../../../src/cli/hsm.js';
import { pkcs11ToolKekFlags } from '../../../src/custody/pkcs11/kek.js';
import { Secret } from '../../../src/secret.js';
import { agentKey, openReleasedKey } from '../../contract/agentSide.js';
import { expectBrokerError } from '../../contract/custodian.contract.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../../helpers/softhsm.js';

describe.skipIf(!softhsmAvailable({ pkcs11Tool: true }))('pkcs11 KEK and `keyanchor hsm`', () => {
  let hsm: SoftHsm;
  const cfg = (kekLabel: string, extra: Partial<Pkcs11CustodyConfig> = {}) => softhsmCustodyConfig(hsm, { kekLabel, ...extra });
  const agent = agentKey('RSA');

  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.pkcs11Tool(['--keygen', '--key-type', 'AES:32', '--label', 'tool-plain']);
    hsm.pkcs11Tool(pkcs11ToolKekFlags('tool-good', '0a0b')); // the command `hsm status` and docs/operations.md give
    hsm.pkcs11Tool(['--keygen', '--key-type', 'AES:32', '--label', 'tool-extractable', '--sensitive', '--private', '--extractable']);
  });
  afterAll(() => hsm?.cleanup());
  afterEach(() => {
    process.exitCode = undefined;
  });

  it('fails closed when no KEK has the label', async () => {
    const e = await expectBrokerError(createPkcs11Custodian(cfg('absent')), 'custody_unavailable', 503);
    expect(e.reason).toContain('no secret key labelled "absent"');
    expect(e.reason).toContain('keyanchor hsm init');
  });

  it('refuses an extractable KEK', async () => {
    const e = await expectBrokerError(createPkcs11Custodian(cfg('tool-extractable')), 'custody_unavailable');
    expect(e.reason).toContain('extractable (CKA_EXTRACTABLE true)');
  });

  it('refuses a plain pkcs11-tool KEK, naming the pkcs11-tool flags that fix it', async () => {
    const e = await expectBrokerError(createPkcs11Custodian(cfg('tool-plain')), 'custody_unavailable');
    expect(e.reason).toContain('CKA_SENSITIVE false');
    expect(e.reason).toContain('CKA_PRIVATE false');
    expect(e.reason).toContain('--sensitive --private');
    const s = await hsmStatus(cfg('tool-plain'));
    expect(s.ok).toBe(false);
    expect(s.kek.attributes).toMatchObject({ extractable: false, sensitive: false, private: false, wrap: true, unwrap: true });
  });

  it('works with a KEK from pkcs11-tool --sensitive --private --usage-wrap', async () => {
    const c = await createPkcs11Custodian(cfg('tool-good'));
    try {
      expect(c.kekId).toBe('pkcs11:tool-good:0a0b');
      const ref = { name: 'team/app', version: 3 };
      const opened = await openReleasedKey(await c.releaseTo(ref, await c.generate(ref), agent.jwk), agent);
      expect(opened.kid).toBe('team/app@3');
    } finally {
      await c.close();
    }
    const s = await hsmStatus(cfg('tool-good'));
    expect(s.ok).toBe(true);
    expect(s.kek.warnings.join('\n')).toContain('also permits encrypt, decrypt, sign, verify');
  });

  it('hsm init makes a wrap-only, non-extractable token KEK the custodian accepts, and refuses to make a second', async () => {
    const init = await hsmInit(cfg('made-by-init'));
    expect(init.kekId).toMatch(/^pkcs11:made-by-init:[0-9a-f]{32}$/);
    const s = await hsmStatus(cfg('made-by-init'));
    expect(s).toMatchObject({ ok: true, token: { label: hsm.label }, kek: { found: 1, kekId: init.kekId, problems: [], warnings: [] } });
    expect(s.kek.attributes).toMatchObject({
      keyType: 0x1f, valueLen: 32, token: true, private: true, sensitive: true, extractable: false, alwaysSensitive: true,
      neverExtractable: true, modifiable: false, wrap: true, unwrap: true, encrypt: false, decrypt: false, sign: false, verify: false, derive: false,
    });
    expect(s.mechanisms).toMatchObject({ AES_KEY_WRAP_PAD: true, AES_CMAC: true, AES_GCM: true, RSA_PKCS_OAEP: true });
    await expectBrokerError(hsmInit(cfg('made-by-init')), 'key_exists');
    const c = await createPkcs11Custodian(cfg('made-by-init'));
    expect(c.kekId).toBe(init.kekId);
    await c.close();
  });

  it('hsm status reports a missing KEK', async () => {
    const s = await hsmStatus(cfg('nothing-here'));
    expect(s.ok).toBe(false);
    expect(s.kek.found).toBe(0);
  });

  describe('the CLI', () => {
    class Exit extends Error {
      constructor(readonly exitCode: number) {
        super(`exit ${exitCode}`);
      }
    }
    const run = async (args: string[], custody: Config['custody']) => {
      const config = { ...parseConfig(undefined), custody } as Config;
      let out = '';
      const io = { out: (t: string) => void (out += t), fail: (m: string, code: number): never => { out += m; throw new Exit(code); } };
      await hsmCommand(() => config, io).parseAsync(args, { from: 'user' });
      return out;
    };

    it('init prints the new kekId; status prints attributes and ok, never values or the PIN', async () => {
      expect(await run(['init'], cfg('cli-kek'))).toMatch(/created KEK "cli-kek" on token "keyanchor-test".*\nkekId: pkcs11:cli-kek:[0-9a-f]{32}\n/);
      const text = await run(['status'], cfg('cli-kek'));
      expect(text).toMatch(/\nok\n$/);
      expect(text).toContain('false: extractable');
      expect(text).not.toContain(hsm.pin);
      expect(process.exitCode).toBeUndefined();
    });

    it('status --json, and exit code 1 for an unusable KEK', async () => {
      const s = JSON.parse(await run(['status', '--json'], cfg('tool-plain')));
      expect(s.ok).toBe(false);
      expect(process.exitCode).toBe(1);
    });

    it('reports a second init, a wrong PIN and software custody as failures, without the PIN', async () => {
      await expect(run(['init'], cfg('cli-kek'))).rejects.toEqual(new Exit(1));
      const wrongPin = { ...cfg('cli-kek'), pin: new Secret('not-the-pin') };
      await expect(run(['status'], wrongPin)).rejects.toEqual(new Exit(1));
      await expect(run(['status'], { kind: 'software' })).rejects.toEqual(new Exit(3));
    });
  });
});
