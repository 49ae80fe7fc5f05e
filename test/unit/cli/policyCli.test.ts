/**
 * `keyanchor policy sign | check | pae | test | explain | schema` as a user runs them: the compiled
 * CLI in a temporary directory, keys made by the openssl command line. Exact exit codes and
 * output lines; hostile directories give located problems and exit 3, never a stack trace.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonSchema } from '../../../src/policy/jsonSchema.js';
import { issueCertificate } from '../../../src/pki.js';
import { SMALL_POLICY } from '../../helpers/policyBundles.js';
import { closeHighWaters, SqliteHighWater } from '../../helpers/highWater.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
let dir: string;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYANCHOR_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: dir, env, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const policyDir = (name: string, files: Record<string, string> = { 'policy.yaml': SMALL_POLICY }) => {
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name, f)), { recursive: true });
    writeFileSync(path.join(dir, name, f), text);
  }
  return name;
};

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-policy-cli-'));
  openssl('genpkey', '-algorithm', 'ed25519', '-out', 'root1.key');
  openssl('pkey', '-in', 'root1.key', '-pubout', '-out', 'root1.pub');
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', 'root2.key');
  openssl('pkey', '-in', 'root2.key', '-pubout', '-out', 'root2.pub');
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('keyanchor policy check on hostile directories: exit 3 and located problems, no stack trace', () => {
  it('an alias bomb, a symlink loop, a dangling symlink, a directory named *.yaml', async () => {
    const d = policyDir('hostile', { 'ok.yaml': SMALL_POLICY, 'bomb.yaml': 'a: &a [x, x, x, x, x, x, x, x, x, x]\n' + Array.from({ length: 9 }, (_, i) => `a${i}: &a${i} [${Array(10).fill(i ? `*a${i - 1}` : '*a').join(', ')}]`).join('\n') + '\n' });
    symlinkSync('loop-b.yaml', path.join(dir, d, 'loop-a.yaml'));
    symlinkSync('loop-a.yaml', path.join(dir, d, 'loop-b.yaml'));
    symlinkSync('gone.yaml', path.join(dir, d, 'dangling.yaml'));
    mkdirSync(path.join(dir, d, 'folder.yaml'));
    const r = await cli(['policy', 'check', d]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 3, stdout: '' });
    expect(r.stderr.split('\n')).toEqual([
      'hostile/dangling.yaml:1:1 (file): a dangling symbolic link',
      'hostile/folder.yaml:1:1 (file): a directory named like a policy file; policy files must be regular files',
      'hostile/loop-a.yaml:1:1 (file): a symbolic link loop',
      'hostile/loop-b.yaml:1:1 (file): a symbolic link loop',
      '4 problem(s)',
      '',
    ]);
    rmSync(path.join(dir, d, 'loop-a.yaml'));
    rmSync(path.join(dir, d, 'loop-b.yaml'));
    rmSync(path.join(dir, d, 'dangling.yaml'));
    rmSync(path.join(dir, d, 'folder.yaml'), { recursive: true });
    const bomb = await cli(['policy', 'check', d]);
    expect(bomb).toEqual({ code: 3, stdout: '', stderr: 'hostile/bomb.yaml:1:1 (aliases): aliases expand to more than 2,000,000 nodes (an alias bomb?)\n1 problem(s)\n' });
  });

  it('Latin-1 and UTF-16 files', async () => {
    const d = policyDir('encodings');
    writeFileSync(path.join(dir, d, 'latin1.yaml'), Buffer.from('zones:\n  - name: caf\xe9\n', 'latin1'));
    writeFileSync(path.join(dir, d, 'utf16.yaml'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('zones: []\n', 'utf16le')]));
    expect(await cli(['policy', 'check', d])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'encodings/latin1.yaml:2:14 (encoding): byte 0xe9 is not UTF-8 (Latin-1?); save the file as UTF-8\nencodings/utf16.yaml:1:1 (encoding): UTF-16 text (byte-order mark FF FE); save the file as UTF-8\n2 problem(s)\n',
    });
  });
});

describe('keyanchor policy sign and check --root-key', () => {
  it('signs, verifies, detects a change, and counts co-signatures toward a threshold', async () => {
    const d = policyDir('signed', { 'policy.yaml': SMALL_POLICY, 'tests/cases.yaml': 'cases: []\n' });
    const signed = await cli(['policy', 'sign', '--key', 'root1.key', '--signer', 'root2.pub', '--version', '3', '--expires', '30d', d]);
    expect(signed).toEqual({ code: 0, stdout: 'signed signed/policy.dsse\n', stderr: '' });
    const ok = await cli(['policy', 'check', '--root-key', 'root1.pub', d]);
    expect(ok.code).toBe(0);
    expect(ok.stdout.split('\n')[1]).toMatch(/^signed bundle: version 3 \(root version 1\), expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z, 1 valid signature\(s\), 1 required, manifest [0-9a-f]{64}$/);
    const two = await cli(['policy', 'check', '--root-key', 'root1.pub', '--root-key', 'root2.pub', '--threshold', '2', d]);
    expect({ code: two.code, stderr: two.stderr }).toEqual({
      code: 3,
      stderr: 'signed/policy.dsse:1:1 (bundle): policy_below_threshold: 1 valid signature(s) by trusted keys, the root requires 2\n1 problem(s)\n',
    });
    expect(await cli(['policy', 'sign', '--add', '--key', 'root2.key', d])).toEqual({ code: 0, stdout: 'added a signature to signed/policy.dsse\n', stderr: '' });
    expect((await cli(['policy', 'check', '--root-key', 'root1.pub', '--root-key', 'root2.pub', '--threshold', '2', d])).code).toBe(0);
    writeFileSync(path.join(dir, d, 'tests', 'cases.yaml'), 'cases: [] # changed\n');
    expect(await cli(['policy', 'check', '--root-key', 'root1.pub', d])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'signed/tests/cases.yaml:1:1 (bundle): policy_file_altered: tests/cases.yaml differs from the content signed in the manifest\n1 problem(s)\n',
    });
  });

  it('an unsigned directory with a root: policy_unsigned', async () => {
    const d = policyDir('plain');
    expect(await cli(['policy', 'check', '--root-key', 'root1.pub', d])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'plain/policy.dsse:1:1 (bundle): policy_unsigned: no policy.dsse: a trust root is pinned, so the policy must be a signed bundle (keyanchor policy sign)\n1 problem(s)\n',
    });
  });

  it('with the config: its root, and the high-water mark of its state directory (a rollback is refused)', async () => {
    const d = policyDir('config-signed');
    writeFileSync(path.join(dir, 'signed.json'), JSON.stringify({ stateDir: 'cfg-state', policyDir: d, dev: { enabled: false }, policy: { root: { keys: ['root1.pub'], threshold: 1 } } }));
    await cli(['policy', 'sign', '--key', 'root1.key', '--version', '1', '--expires', '1d', d]);
    expect((await cli(['--config', 'signed.json', 'policy', 'check'])).code).toBe(0);
    // A broker on that state accepted version 2 (root version 1) since.
    const hw = new SqliteHighWater(path.join(dir, 'cfg-state'));
    expect(await hw.advance({ version: 2 ** 32 + 2, manifestSha256: 'ab'.repeat(32) })).toBe('ok');
    await closeHighWaters();
    expect(await cli(['--config', 'signed.json', 'policy', 'check'])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'config-signed/policy.dsse:1:1 (bundle): policy_rollback: version 1 (root version 1) is below version 2 (root version 1), the highest accepted before\n1 problem(s)\n',
    });
  });

  it('refuses to sign an invalid policy, or one that reads files outside its directory', async () => {
    const d = policyDir('outside', { 'policy.yaml': 'nodeCAs:\n  - name: ca\n    certificate: { file: ../root1.pub }\n' });
    expect(await cli(['policy', 'sign', '--key', 'root1.key', '--version', '1', '--expires', '1d', d])).toEqual({
      code: 3,
      stdout: '',
      stderr: `outside/policy.yaml:3:18 nodeCAs[0].certificate: ${path.join(dir, 'root1.pub')} is outside the policy directory; a signed policy may only use files inside it\n1 problem(s)\n`,
    });
  });

  it('usage errors: missing --version, a key the manifest does not list', async () => {
    const d = policyDir('usage');
    expect(await cli(['policy', 'sign', '--key', 'root1.key', d])).toEqual({ code: 2, stdout: '', stderr: 'keyanchor: give --version and --expires (or --add)\n' });
    await cli(['policy', 'sign', '--key', 'root1.key', '--version', '1', '--expires', '1d', d]);
    const r = await cli(['policy', 'sign', '--add', '--key', 'root2.key', d]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 3, stderr: expect.stringMatching(/^keyanchor: key [0-9a-f]{64} is not among the manifest's signers; sign again with it as --key or --signer\n$/) });
  });

  it('pae prints the DSSE pre-authentication encoding of the manifest', async () => {
    const d = policyDir('pae');
    await cli(['policy', 'sign', '--key', 'root1.key', '--version', '7', '--expires', '2099-01-01T00:00:00Z', d]);
    const r = await cli(['policy', 'pae', d]);
    const env = JSON.parse(readFileSync(path.join(dir, d, 'policy.dsse'), 'utf8')) as { payload: string };
    const payload = Buffer.from(env.payload, 'base64').toString();
    expect(r.stdout).toBe(`DSSEv1 46 application/vnd.keyanchor.policy-manifest+json ${payload.length} ${payload}`);
    expect(payload).toMatch(/^\{"expires":"2099-01-01T00:00:00Z","files":\{"policy.yaml":"[0-9a-f]{64}"\},"signers":\["[0-9a-f]{64}"\],"version":7\}$/);
  });
});

describe('keyanchor policy test', () => {
  it('the example payments policy passes its own tests', async () => {
    const r = await cli(['policy', 'test', path.join(ROOT, 'policies', 'payments')]);
    expect({ code: r.code, last: r.stdout.trimEnd().split('\n').pop() }).toEqual({ code: 0, last: '8 passed, 0 failed' });
  });

  it('a failing case: exit 1 and what was expected against what was decided', async () => {
    const d = 'failing';
    cpSync(path.join(ROOT, 'policies', 'payments'), path.join(dir, d), { recursive: true });
    const file = path.join(dir, d, 'tests', 'payments.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('expect: { allow: false, code: key_not_granted, zones: [payments] }', 'expect: { allow: true }'));
    const r = await cli(['policy', 'test', d]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'FAIL  failing/tests/payments.yaml: the card-data key is not released outside the PCI zone: expected allow, got deny key_not_granted (payments/card-data is not granted to payments-api in zones [payments])\n',
    );
    expect(r.stdout.trimEnd().split('\n').pop()).toBe('7 passed, 1 failed');
  });

  it('an invalid test file: exit 3 with located problems', async () => {
    const d = policyDir('bad-tests', {
      'policy.yaml': SMALL_POLICY,
      'tests/a.yaml': `cases:\n  - name: bad\n    request: { node: {}, binary: { sha256: x }, keys: [team/a] }\n    expect: { allow: maybe }\n`,
    });
    expect(await cli(['policy', 'test', d])).toEqual({
      code: 3,
      stdout: '',
      stderr: [
        'bad-tests/tests/a.yaml:3:44 cases[0].request.binary.sha256: lowercase hex sha256',
        "bad-tests/tests/a.yaml:4:22 cases[0].expect.allow: Invalid discriminator value. Expected 'true' | 'false'",
        '2 problem(s)',
        '',
      ].join('\n'),
    });
  });

  it('a case naming a publisher the policy does not have cannot pass by mistake: exit 3', async () => {
    const d = policyDir('typo-tests', {
      'policy.yaml': SMALL_POLICY,
      'tests/a.yaml': `cases:\n  - name: typo\n    request:\n      node: { subject: "CN=node" }\n      binary: { sha256: "${'ab'.repeat(32)}", signedBy: [nobody] }\n      keys: [team/a]\n    expect: { allow: true }\n`,
    });
    expect(await cli(['policy', 'test', d])).toEqual({ code: 3, stdout: '', stderr: 'typo-tests/tests/a.yaml:5:104 cases[0].request.binary.signedBy[0]: unknown publisher "nobody"\n1 problem(s)\n' });
  });
});

describe('keyanchor policy explain', () => {
  it('a node certificate from the policy\'s node CA puts the node in its zones', async () => {
    const ca = await issueCertificate({ subject: 'CN=explain node CA', ca: true });
    const node = await issueCertificate({ subject: 'CN=node-1', uris: ['spiffe://t/z1/node-1'] }, ca);
    const d = policyDir('explain', {
      'ca.pem': ca.certPem,
      'policy.yaml': `nodeCAs: [{ name: ca1, certificate: { file: ca.pem } }]\nzones: [{ name: z1, match: { nodeCA: ca1, sanUriPrefix: "spiffe://t/z1/" } }]\nsoftware:\n  - name: app\n    binary: { digests: ["${'ab'.repeat(32)}"] }\n    grants: [{ keys: [team/a], zones: [z1] }]\n`,
    });
    writeFileSync(path.join(dir, 'node.pem'), node.certPem);
    const r = await cli(['policy', 'explain', d, '--node-cert', 'node.pem', '--binary-sha256', 'ab'.repeat(32), '--key', 'team/a', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: { allow: true, zones: ['z1'], software: ['app'], keys: [{ name: 'team/a' }] }, keys: [{ key: 'team/a', granted: true }] });
    const other = await issueCertificate({ subject: 'CN=stranger', uris: ['spiffe://t/z1/x'] }, await issueCertificate({ subject: 'CN=other CA', ca: true }));
    writeFileSync(path.join(dir, 'stranger.pem'), other.certPem);
    const s = await cli(['policy', 'explain', d, '--node-cert', 'stranger.pem', '--binary-sha256', 'ab'.repeat(32), '--key', 'team/a']);
    expect({ code: s.code, stdout: s.stdout }).toEqual({ code: 0, stdout: expect.stringMatching(/^decision: DENY node_untrusted — .+\n$/) });
  });

  it('needs a key and a binary', async () => {
    expect((await cli(['policy', 'explain', path.join(ROOT, 'policies', 'payments'), '--binary-sha256', 'ab'.repeat(32)])).stderr).toBe('keyanchor: give at least one --key\n');
    expect(await cli(['policy', 'explain', path.join(ROOT, 'policies', 'payments'), '--key', 'a/b'])).toEqual({ code: 2, stdout: '', stderr: 'keyanchor: give --binary or --binary-sha256\n' });
  });
});

describe('keyanchor serve --require-signed-policy', () => {
  it('without a pinned root the broker does not start: exit 3 and why', async () => {
    writeFileSync(path.join(dir, 'nosig.json'), JSON.stringify({ stateDir: 'nosig-state', policyDir: 'plain', insecureHttp: true, listen: { port: 0 }, dev: { enabled: false } }));
    policyDir('plain');
    expect(await cli(['--config', 'nosig.json', 'serve', '--require-signed-policy'])).toEqual({
      code: 3,
      stdout: '',
      stderr: 'keyanchor: invalid configuration:\n  nosig.json:1:1 policy: requireSignedPolicy needs a pinned root (policy.root)\n',
    });
  });
});

describe('keyanchor policy schema', () => {
  it('prints the JSON Schemas the committed files hold', async () => {
    expect((await cli(['policy', 'schema'])).stdout).toBe(jsonSchema('policy'));
    expect((await cli(['policy', 'schema', '--tests'])).stdout).toBe(jsonSchema('tests'));
    expect(readFileSync(path.join(ROOT, 'schema', 'policy-tests.schema.json'), 'utf8')).toBe(jsonSchema('tests'));
  });
});
