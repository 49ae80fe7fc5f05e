/**
 * Signed policy bundles: every refusal with its code, and the rollback, freeze, threshold and
 * root-rotation cases of python-tuf (tests/test_updater_key_rotations.py), go-tuf
 * (metadata/updater/updater_top_level_update_test.go) and the TUF conformance suite
 * (tuf_conformance/test_*.py), ported to keyanchor's one-role bundles and named after them.
 * Keys are made with node:crypto at test time; the high-water mark is the file backend on disk.
 */
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_FILE, parseEnvelope, serializeEnvelope } from '../../../src/policy/bundle/dsse.js';
import { PolicyRefusal, type RefusalCode } from '../../../src/policy/bundle/refusals.js';
import { addSignature } from '../../../src/policy/bundle/sign.js';
import { rootFromPems, RootError, trustRoot } from '../../../src/policy/bundle/trustRoot.js';
import { verifyBundle } from '../../../src/policy/bundle/verifyBundle.js';
import { readPolicyTree } from '../../../src/policy/files.js';
import { closeHighWaters, SqliteHighWater } from '../../helpers/highWater.js';
import { formatProblem } from '../../../src/policy/problems.js';
import { accept, rootOf, signDir, SMALL_POLICY, testKey, writePolicy, type TestKey } from '../../helpers/policyBundles.js';

let root: string;
let n = 0;
const K: TestKey[] = [];

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'keyanchor-bundle-'));
  for (let i = 0; i < 10; i++) K.push(testKey());
});
afterAll(async () => {
  await closeHighWaters();
  rmSync(root, { recursive: true, force: true });
});

function world() {
  const dir = path.join(root, `w${++n}`);
  writePolicy(path.join(dir, 'policy'));
  return { dir: path.join(dir, 'policy'), hw: new SqliteHighWater(dir) };
}
const keys = (ids: number[]) => ids.map((i) => K[i]!);

async function refusal(p: Promise<unknown> | (() => unknown)): Promise<{ code: RefusalCode; lines: string[] }> {
  let e: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    e = err;
  }
  expect(e, 'expected a PolicyRefusal').toBeInstanceOf(PolicyRefusal);
  return { code: (e as PolicyRefusal).code, lines: (e as PolicyRefusal).problems.map(formatProblem) };
}

describe('signatures and the threshold', () => {
  it('a bundle signed by the pinned root is accepted (tuf-conformance test_basic_init_and_refresh)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]) });
    const facts = await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    expect({ version: facts.version, signers: facts.signers, rotated: facts.rotated }).toEqual({ version: 1, signers: [K[0]!.id], rotated: false });
    // The mark orders by root version, then bundle version: root 1, bundle 1.
    expect(await w.hw.get()).toEqual({ version: 2 ** 32 + 1, manifestSha256: facts.manifestSha256 });
  });

  it('no envelope with a pinned root: policy_unsigned (go-tuf TestTrustedRootUnsigned)', async () => {
    const w = world();
    const r = await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw));
    expect(r).toEqual({ code: 'policy_unsigned', lines: [`${w.dir}/policy.dsse:1:1 (bundle): policy_unsigned: no policy.dsse: a trust root is pinned, so the policy must be a signed bundle (keyanchor policy sign)`] });
    expect(await w.hw.get()).toBeUndefined();
  });

  it('an envelope without signatures: policy_below_threshold (python-tuf "2-of-5, one key signature mising: threshold not reached")', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: [], cosigners: keys([0]) });
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).code).toBe('policy_below_threshold');
  });

  it('3-of-5 short by one: policy_below_threshold (tuf-conformance test_snapshot_threshold)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0, 4]), cosigners: keys([1, 2, 3]) });
    const r = await refusal(accept(w.dir, rootOf(keys([0, 1, 2, 3, 4]), 3), w.hw));
    expect(r.code).toBe('policy_below_threshold');
    expect(r.lines[0]).toMatch(/policy_below_threshold: 2 valid signature\(s\) by trusted keys, the root requires 3$/);
  });

  for (const [name, sigs] of [
    ['first', [0, 2, 4]],
    ['second', [0, 4, 1]],
    ['third', [0, 1, 3]],
    ['fourth', [1, 2, 3]],
    ['fifth', [2, 3, 4]],
  ] as const) {
    it(`3-of-5, sign ${name} combo (python-tuf test_non_root_rotations)`, async () => {
      const w = world();
      signDir(w.dir, { version: 1, keys: keys([...sigs]), cosigners: keys([0, 1, 2, 3, 4]) });
      expect((await accept(w.dir, rootOf(keys([0, 1, 2, 3, 4]), 3), w.hw)).signers.sort()).toEqual(keys([...sigs]).map((k) => k.id).sort());
    });
  }

  it('signed only by keys the root does not trust: policy_unknown_signer (python-tuf "1-of-1 key rotation fail: not signed with new key")', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([1, 3, 4]) });
    const r = await refusal(accept(w.dir, rootOf(keys([2]), 1), w.hw));
    expect(r.code).toBe('policy_unknown_signer');
    expect(r.lines[0]).toContain(`signatures by keys the root does not trust or the manifest does not list: ${K[1]!.id.slice(0, 16)}`);
  });

  it('signatures by unknown keys beside a trusted one are ignored (python-tuf "1-of-1 key rotation, unused signatures")', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([3, 1, 4]) });
    expect((await accept(w.dir, rootOf(keys([1]), 1), w.hw)).signers).toEqual([K[1]!.id]);
  });

  it('a trusted key over an altered manifest: policy_signature_invalid (tuf-conformance test_unsigned_initial_root)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]) });
    const env = JSON.parse(readFileSync(path.join(w.dir, BUNDLE_FILE), 'utf8')) as { payload: string };
    env.payload = Buffer.from(Buffer.from(env.payload, 'base64').toString().replace('"version":1', '"version":9')).toString('base64');
    writeFileSync(path.join(w.dir, BUNDLE_FILE), JSON.stringify(env));
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).code).toBe('policy_signature_invalid');
  });

  it('one key signing twice counts once (tuf-conformance test_duplicate_keys_root)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]), cosigners: keys([1]) });
    const file = path.join(w.dir, BUNDLE_FILE);
    const env = parseEnvelope(readFileSync(file));
    env.signatures.push(env.signatures[0]!, env.signatures[0]!);
    writeFileSync(file, serializeEnvelope(env));
    expect((await refusal(accept(w.dir, rootOf(keys([0, 1]), 2), w.hw))).code).toBe('policy_below_threshold');
  });

  it('a root that lists one key twice, or a threshold its keys cannot reach, is refused (tuf-conformance test_duplicate_keys_root, test_snapshot_threshold)', () => {
    const dup = rootFromPems([K[0]!.publicPem], 1);
    expect(() => trustRoot({ version: 1, keys: [dup.keys[0]!, dup.keys[0]!], threshold: 2 })).toThrow(new RootError('root keys: the same key is listed twice (it would count twice toward the threshold)'));
    expect(() => rootOf(keys([0, 1]), 3)).toThrow(new RootError('root keys: threshold 3 is more than its 2 key(s)'));
  });

  it('a trusted key the manifest does not list as a signer does not count', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]) });
    const file = path.join(w.dir, BUNDLE_FILE);
    const other = path.join(root, `other-${++n}`);
    writePolicy(other);
    signDir(other, { version: 1, keys: keys([1]) });
    const env = parseEnvelope(readFileSync(file));
    env.signatures.push(parseEnvelope(readFileSync(path.join(other, BUNDLE_FILE))).signatures[0]!);
    writeFileSync(file, serializeEnvelope(env));
    // Key 1's signature is over another manifest, and key 1 is not a declared signer of this one.
    expect((await refusal(accept(w.dir, rootOf(keys([0, 1]), 2), w.hw))).code).toBe('policy_unknown_signer');
  });

  it('signatures added later with --add reach the threshold; an undeclared key cannot be added', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]), cosigners: keys([1]) });
    const file = path.join(w.dir, BUNDLE_FILE);
    expect((await refusal(accept(w.dir, rootOf(keys([0, 1]), 2), w.hw))).code).toBe('policy_below_threshold');
    expect(() => addSignature(readFileSync(file), { privateKey: K[2]!.privateKey })).toThrow(/is not among the manifest's signers/);
    writeFileSync(file, addSignature(readFileSync(file), { privateKey: K[1]!.privateKey }));
    expect((await accept(w.dir, rootOf(keys([0, 1]), 2), w.hw)).signers.sort()).toEqual([K[0]!.id, K[1]!.id].sort());
  });

  it('a malformed envelope: policy_bundle_malformed', async () => {
    const w = world();
    writeFileSync(path.join(w.dir, BUNDLE_FILE), '{"payloadType": "application/vnd.keyanchor.policy-manifest+json", "payload": "e30=", "signatures": [], "payload": "x"}');
    const r = await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw));
    expect(r).toEqual({ code: 'policy_bundle_malformed', lines: [`${w.dir}/policy.dsse:1:1 (bundle): policy_bundle_malformed: the envelope has duplicate keys (case-insensitively) "payload"`] });
  });

  it('a manifest that is not canonical JSON: policy_bundle_malformed', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]) });
    const file = path.join(w.dir, BUNDLE_FILE);
    const env = parseEnvelope(readFileSync(file));
    env.payload = Buffer.from(JSON.stringify(JSON.parse(env.payload.toString()), null, 1));
    writeFileSync(file, serializeEnvelope(env));
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).lines[0]).toMatch(/policy_bundle_malformed: the manifest is not in canonical form/);
  });

  it('every key type signs and verifies: Ed25519, ECDSA P-256 and P-384, RSA-PSS', async () => {
    const mixed = [testKey('ed25519'), testKey('p256'), testKey('p384'), testKey('rsa-pss')];
    const w = world();
    signDir(w.dir, { version: 1, keys: mixed });
    expect((await accept(w.dir, rootOf(mixed, 4), w.hw)).signers).toHaveLength(4);
  });
});

describe('mix and match: the directory must hold exactly the signed files', () => {
  const signed = () => {
    const w = world();
    writePolicy(w.dir, { 'certs/ca.pem': 'not really a cert\n', 'tests/cases.yaml': 'cases: []\n' });
    signDir(w.dir, { version: 1, keys: keys([0]) });
    return w;
  };

  it('a file changed after signing: policy_file_altered (tuf-conformance test_new_targets_hash_mismatch)', async () => {
    const w = signed();
    writeFileSync(path.join(w.dir, 'policy.yaml'), SMALL_POLICY.replace('team/a', 'team/b'));
    expect(await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).toEqual({
      code: 'policy_file_altered',
      lines: [`${w.dir}/policy.yaml:1:1 (bundle): policy_file_altered: policy.yaml differs from the content signed in the manifest`],
    });
  });

  it('a file added after signing, in a subdirectory too: policy_file_added', async () => {
    const w = signed();
    writeFileSync(path.join(w.dir, 'extra.yaml'), 'teams: []\n');
    writeFileSync(path.join(w.dir, 'certs', 'rogue.pem'), 'x');
    const r = await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw));
    expect(r.code).toBe('policy_file_added');
    expect(r.lines).toEqual([
      `${w.dir}/certs/rogue.pem:1:1 (bundle): policy_file_added: certs/rogue.pem is in the directory but not in the signed manifest`,
      `${w.dir}/extra.yaml:1:1 (bundle): policy_file_added: extra.yaml is in the directory but not in the signed manifest`,
    ]);
  });

  it('a signed file removed: policy_file_removed', async () => {
    const w = signed();
    unlinkSync(path.join(w.dir, 'certs', 'ca.pem'));
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).lines).toEqual([
      `${w.dir}/certs/ca.pem:1:1 (bundle): policy_file_removed: certs/ca.pem is in the signed manifest but not in the directory`,
    ]);
  });

  it('hidden files are outside the bundle and change nothing', async () => {
    const w = signed();
    writeFileSync(path.join(w.dir, '.notes.yaml'), 'anything');
    expect((await accept(w.dir, rootOf(keys([0]), 1), w.hw)).version).toBe(1);
  });
});

describe('freeze: expiry', () => {
  it('an expired bundle: policy_expired (go-tuf TestFinalRootExpired, tuf-conformance test_timestamp_expired)', async () => {
    const w = world();
    const now = Date.parse('2030-01-01T00:00:00Z');
    signDir(w.dir, { version: 1, keys: keys([0]), expires: now });
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw, now))).lines).toEqual([
      `${w.dir}/policy.dsse:1:1 (bundle): policy_expired: the bundle expired at 2030-01-01T00:00:00Z`,
    ]);
    expect((await accept(w.dir, rootOf(keys([0]), 1), w.hw, now - 1000)).version).toBe(1);
  });

  it('a fresh bundle replaces one that expired (tuf-conformance test_expired_metadata)', async () => {
    const w = world();
    const day = 86_400_000;
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    signDir(w.dir, { version: 1, keys: keys([0]), expires: t0 + 7 * day });
    await accept(w.dir, rootOf(keys([0]), 1), w.hw, t0);
    signDir(w.dir, { version: 2, keys: keys([0]), expires: t0 + 21 * day });
    expect((await accept(w.dir, rootOf(keys([0]), 1), w.hw, t0 + 18 * day)).version).toBe(2);
  });
});

describe('rollback', () => {
  it('a lower version than accepted before: policy_rollback, the mark unchanged (tuf-conformance test_new_timestamp_version_rollback)', async () => {
    const w = world();
    signDir(w.dir, { version: 2, keys: keys([0]) });
    const v2 = await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    signDir(w.dir, { version: 1, keys: keys([0]) });
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).lines).toEqual([
      `${w.dir}/policy.dsse:1:1 (bundle): policy_rollback: version 1 (root version 1) is below version 2 (root version 1), the highest accepted before`,
    ]);
    expect(await w.hw.get()).toEqual({ version: 2 ** 32 + 2, manifestSha256: v2.manifestSha256 });
  });

  it('the same version with other content: policy_version_conflict (tuf-conformance test_timestamp_eq_versions_check, go-tuf TestNewRootSameVersion)', async () => {
    const w = world();
    signDir(w.dir, { version: 3, keys: keys([0]) });
    await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    writeFileSync(path.join(w.dir, 'policy.yaml'), SMALL_POLICY.replace('team/a', 'team/b'));
    signDir(w.dir, { version: 3, keys: keys([0]) });
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), w.hw))).code).toBe('policy_version_conflict');
  });

  it('the same bundle again is accepted: a restart or a reload without change', async () => {
    const w = world();
    signDir(w.dir, { version: 3, keys: keys([0]) });
    const first = await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    expect((await accept(w.dir, rootOf(keys([0]), 1), new SqliteHighWater(path.dirname(w.dir)))).manifestSha256).toBe(first.manifestSha256);
  });

  it('after a restart the mark still refuses the older bundle (tuf-conformance test_snapshot_rollback)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]) });
    const old = readFileSync(path.join(w.dir, BUNDLE_FILE));
    await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    signDir(w.dir, { version: 2, keys: keys([0]) });
    await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    writeFileSync(path.join(w.dir, BUNDLE_FILE), old);
    expect((await refusal(accept(w.dir, rootOf(keys([0]), 1), new SqliteHighWater(path.dirname(w.dir))))).code).toBe('policy_rollback');
  });

  it('versions need not be consecutive, unlike TUF roots (go-tuf TestNewRootNonconsecutiveVersion does not apply)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]) });
    await accept(w.dir, rootOf(keys([0]), 1), w.hw);
    signDir(w.dir, { version: 20260101, keys: keys([0]) });
    expect((await accept(w.dir, rootOf(keys([0]), 1), w.hw)).version).toBe(20260101);
  });

  it('a version at or above 2^32 is malformed (the mark orders root version × 2^32 + version)', async () => {
    const w = world();
    expect(() => signDir(w.dir, { version: 2 ** 32, keys: keys([0]) })).toThrow(/manifest version/);
  });
});

interface Step {
  keys: number[];
  threshold: number;
  sigs: number[];
  expect?: RefusalCode;
}

/** python-tuf test_updater_key_rotations.py root_rotation_cases; the codes are keyanchor's. */
const ROTATIONS: Record<string, Step[]> = {
  '1-of-1 key rotation': [
    { keys: [1], threshold: 1, sigs: [1] },
    { keys: [2], threshold: 1, sigs: [2, 1] },
    { keys: [2], threshold: 1, sigs: [2] },
  ],
  '1-of-1 key rotation, unused signatures': [
    { keys: [1], threshold: 1, sigs: [3, 1, 4] },
    { keys: [2], threshold: 1, sigs: [3, 2, 1, 4] },
    { keys: [2], threshold: 1, sigs: [3, 2, 4] },
  ],
  '1-of-1 key rotation fail: not signed with old key': [
    { keys: [1], threshold: 1, sigs: [1] },
    { keys: [2], threshold: 1, sigs: [2, 3, 4], expect: 'policy_unknown_signer' },
  ],
  '1-of-1 key rotation fail: not signed with new key': [
    { keys: [1], threshold: 1, sigs: [1] },
    { keys: [2], threshold: 1, sigs: [1, 3, 4], expect: 'policy_rotation_invalid' },
  ],
  '3-of-5, sign with different keycombos': [
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 2, 4] },
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 4, 1] },
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 1, 3] },
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 1, 3] },
  ],
  '3-of-5, one key rotated': [
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 2, 4] },
    { keys: [0, 1, 3, 4, 5], threshold: 3, sigs: [0, 4, 1] },
  ],
  '3-of-5, one key rotate fails: not signed with 3 new keys': [
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 2, 4] },
    { keys: [0, 1, 3, 4, 5], threshold: 3, sigs: [0, 2, 4], expect: 'policy_rotation_invalid' },
  ],
  '3-of-5, one key rotate fails: not signed with 3 old keys': [
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 2, 4] },
    { keys: [0, 1, 3, 4, 5], threshold: 3, sigs: [0, 4, 5], expect: 'policy_unknown_signer' },
  ],
  '3-of-5, one key rotated, with intermediate step': [
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 2, 4] },
    { keys: [0, 1, 3, 4, 5], threshold: 3, sigs: [0, 2, 4, 5] },
    { keys: [0, 1, 3, 4, 5], threshold: 3, sigs: [0, 4, 5] },
  ],
  '3-of-5, all keys rotated, with intermediate step': [
    { keys: [0, 1, 2, 3, 4], threshold: 3, sigs: [0, 2, 4] },
    { keys: [5, 6, 7, 8, 9], threshold: 3, sigs: [0, 2, 4, 5, 6, 7] },
    { keys: [5, 6, 7, 8, 9], threshold: 3, sigs: [5, 6, 7] },
  ],
  '1-of-3 threshold increase to 2-of-3': [
    { keys: [1, 2, 3], threshold: 1, sigs: [1] },
    { keys: [1, 2, 3], threshold: 2, sigs: [1, 2] },
  ],
  '1-of-3 threshold bump to 2-of-3 fails: new threshold not reached': [
    { keys: [1, 2, 3], threshold: 1, sigs: [1] },
    { keys: [1, 2, 3], threshold: 2, sigs: [2], expect: 'policy_rotation_invalid' },
  ],
  '2-of-3 threshold decrease to 1-of-3': [
    { keys: [1, 2, 3], threshold: 2, sigs: [1, 2] },
    { keys: [1, 2, 3], threshold: 1, sigs: [1, 2] },
    { keys: [1, 2, 3], threshold: 1, sigs: [1] },
  ],
  '2-of-3 threshold decr. to 1-of-3 fails: old threshold not reached': [
    { keys: [1, 2, 3], threshold: 2, sigs: [1, 2] },
    { keys: [1, 2, 3], threshold: 1, sigs: [1], expect: 'policy_below_threshold' },
  ],
  '1-of-2 threshold increase to 2-of-2': [
    { keys: [1], threshold: 1, sigs: [1] },
    { keys: [1, 2], threshold: 2, sigs: [1, 2] },
  ],
};

describe('root rotation (python-tuf test_root_rotation cases)', () => {
  for (const [name, steps] of Object.entries(ROTATIONS)) {
    it(name, async () => {
      const w = world();
      const pinned = rootOf(keys(steps[0]!.keys), steps[0]!.threshold);
      let accepted = 0;
      let rootVersion = 1;
      let previous = steps[0]!;
      for (const [i, s] of steps.entries()) {
        // Every change of the root raises its version by one, as TUF root versions do.
        if (s.threshold !== previous.threshold || s.keys.join() !== previous.keys.join()) rootVersion++;
        previous = s;
        const all = [...new Set([...s.sigs, ...s.keys])];
        signDir(w.dir, { version: i + 1, keys: keys(s.sigs), cosigners: keys(all), root: rootFromPems(keys(s.keys).map((k) => k.publicPem), s.threshold, { version: rootVersion }) });
        if (s.expect) {
          expect((await refusal(accept(w.dir, pinned, w.hw))).code).toBe(s.expect);
          expect((await w.hw.get())?.version ?? 0).toBe(accepted);
        } else {
          const f = await accept(w.dir, pinned, w.hw);
          accepted = f.sequence;
          expect(f.root.version).toBe(rootVersion);
        }
      }
    });
  }

  it('after a rotation the old keys alone are refused, across a restart too', async () => {
    const w = world();
    const pinned = rootOf(keys([1]), 1);
    signDir(w.dir, { version: 1, keys: keys([1, 2]), root: rootFromPems([K[2]!.publicPem], 1, { version: 2 }) });
    expect((await accept(w.dir, pinned, w.hw)).rotated).toBe(true);
    signDir(w.dir, { version: 2, keys: keys([1]) });
    expect((await refusal(accept(w.dir, pinned, new SqliteHighWater(path.dirname(w.dir))))).code).toBe('policy_unknown_signer');
    signDir(w.dir, { version: 2, keys: keys([2]) });
    expect((await accept(w.dir, pinned, new SqliteHighWater(path.dirname(w.dir)))).rotated).toBe(false);
  });

  it('a new root that is unusable: policy_rotation_invalid', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([1]), root: { version: 2, keys: rootFromPems([K[2]!.publicPem], 1).keys, threshold: 2 } });
    expect((await refusal(accept(w.dir, rootOf(keys([1]), 1), w.hw))).lines[0]).toMatch(/policy_rotation_invalid: the new root is unusable: root keys: threshold 2 is more than its 1 key\(s\)$/);
  });

  it('a config pin the stored rotation does not descend from stops loads until resolved (policy_state_unavailable)', async () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([1, 2]), root: rootFromPems([K[2]!.publicPem], 1, { version: 2 }) });
    await accept(w.dir, rootOf(keys([1]), 1), w.hw);
    signDir(w.dir, { version: 2, keys: keys([3]) });
    expect((await refusal(accept(w.dir, rootOf(keys([3]), 1), w.hw))).code).toBe('policy_state_unavailable');
  });
});

describe('offline root, online signers', () => {
  // Root keys 0 and 1 (offline, 2 of 2); online signers 5, then 6 after a revocation.
  const withSigners = (version: number, signers: number[]) =>
    rootFromPems([K[0]!.publicPem, K[1]!.publicPem], 2, { version, signers: { pems: signers.map((i) => K[i]!.publicPem), threshold: 1 } });
  const pinned = () => rootOf(keys([0, 1]), 2);

  async function certified() {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0, 1]), root: withSigners(2, [5]) });
    expect((await accept(w.dir, pinned(), w.hw)).rotated).toBe(true);
    return w;
  }

  it('the root certifies an online signer, which then signs bundles alone (the root keys stay offline)', async () => {
    const w = await certified();
    signDir(w.dir, { version: 2, keys: keys([5]), root: withSigners(2, [5]) });
    expect((await accept(w.dir, pinned(), w.hw)).signers).toEqual([K[5]!.id]);
    signDir(w.dir, { version: 3, keys: keys([5]) }); // the root need not be carried
    expect((await accept(w.dir, pinned(), w.hw)).version).toBe(3);
  });

  it('the online signer cannot change the root (python-tuf "1-of-1 key rotation fail: not signed with old key")', async () => {
    const w = await certified();
    signDir(w.dir, { version: 2, keys: keys([5, 6]), root: withSigners(3, [5, 6]) });
    expect((await refusal(accept(w.dir, pinned(), w.hw))).code).toBe('policy_unknown_signer');
  });

  it('root keys alone do not sign ordinary bundles once signers are named', async () => {
    const w = await certified();
    signDir(w.dir, { version: 2, keys: keys([0, 1]) });
    expect((await refusal(accept(w.dir, pinned(), w.hw))).code).toBe('policy_unknown_signer');
  });

  it('emergency revocation: the root replaces a compromised signer, whose bundles are refused from then on', async () => {
    const w = await certified();
    signDir(w.dir, { version: 2, keys: keys([0, 1]), root: withSigners(3, [6]) });
    await accept(w.dir, pinned(), w.hw);
    signDir(w.dir, { version: 3, keys: keys([5]) });
    expect((await refusal(accept(w.dir, pinned(), new SqliteHighWater(path.dirname(w.dir))))).code).toBe('policy_unknown_signer');
    signDir(w.dir, { version: 3, keys: keys([6]) });
    expect((await accept(w.dir, pinned(), w.hw)).signers).toEqual([K[6]!.id]);
  });

  it('fast-forward recovery (tuf-conformance test_new_targets_fast_forward_recovery): a new root starts bundle versions over', async () => {
    const w = await certified();
    signDir(w.dir, { version: 2 ** 32 - 1, keys: keys([5]) }); // a compromised signer jumps to the last version
    await accept(w.dir, pinned(), w.hw);
    signDir(w.dir, { version: 1, keys: keys([0, 1]), root: withSigners(3, [6]) });
    expect((await accept(w.dir, pinned(), w.hw)).version).toBe(1);
    signDir(w.dir, { version: 2, keys: keys([6]) });
    expect((await accept(w.dir, pinned(), w.hw)).version).toBe(2);
  });

  it('an old root-changing bundle replayed is a rollback (its root version is below the one in force)', async () => {
    const w = await certified();
    const revoke = () => signDir(w.dir, { version: 5, keys: keys([0, 1]), root: withSigners(3, [6]) });
    signDir(w.dir, { version: 4, keys: keys([0, 1]), root: withSigners(2, [5]) });
    const old = readFileSync(path.join(w.dir, BUNDLE_FILE));
    revoke();
    await accept(w.dir, pinned(), w.hw);
    writeFileSync(path.join(w.dir, BUNDLE_FILE), old);
    const r = await refusal(accept(w.dir, pinned(), w.hw));
    expect(r.lines[0]).toMatch(/policy_rollback: the bundle carries root version 2; root version 3 is in force$/);
  });

  it('a root version must go up by exactly one (go-tuf TestNewRootNonconsecutiveVersion, TestNewRootSameVersion)', async () => {
    const w = await certified();
    signDir(w.dir, { version: 2, keys: keys([0, 1]), root: withSigners(4, [6]) });
    expect((await refusal(accept(w.dir, pinned(), w.hw))).lines[0]).toMatch(/policy_rotation_invalid: the new root must be version 3, it is 4$/);
    signDir(w.dir, { version: 2, keys: keys([0, 1]), root: withSigners(2, [6]) });
    expect((await refusal(accept(w.dir, pinned(), w.hw))).lines[0]).toMatch(/policy_rollback: the bundle carries root version 2; root version 2 is in force$/);
  });
});

describe('verifyBundle alone', () => {
  it('reports every problem of a bundle at once, the first one giving the code', () => {
    const w = world();
    signDir(w.dir, { version: 1, keys: keys([0]), expires: Date.parse('2030-01-01T00:00:00Z') });
    writeFileSync(path.join(w.dir, 'policy.yaml'), 'teams: []\n');
    let e: PolicyRefusal | undefined;
    try {
      verifyBundle(readPolicyTree(w.dir), rootOf(keys([1]), 1), Date.parse('2031-01-01T00:00:00Z'));
    } catch (err) {
      e = err as PolicyRefusal;
    }
    expect(e?.code).toBe('policy_unknown_signer');
    expect(e?.problems.map((p) => p.message.split(':')[0])).toEqual(['policy_unknown_signer', 'policy_file_altered', 'policy_expired']);
  });
});
