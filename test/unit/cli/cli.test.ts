/**
 * The `keyanchor` CLI as a user runs it: `node dist/src/cli/main.js …` in a temporary directory,
 * as built by test/globalSetup.ts. `policy check` prints a summary or every problem as
 * `file:line:col path: message`; `keys …` prints JSON metadata, never a wrapped blob.
 */
import { execFile, execSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const ACTOR = `cli:${userInfo().username}`;

let dir: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `args` in `cwd` (default: the temp dir), without any KEYANCHOR_* variables. */
function cli(args: string[], cwd = dir): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYANCHOR_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd, env, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** What every command run without --config says first on stderr (no KEYANCHOR_CONFIG, no /etc/keyanchor/config.yaml here). */
const defaultsLine = () => `keyanchor: using the embedded defaults (no --config, KEYANCHOR_CONFIG or /etc/keyanchor/config.yaml), state dir ${path.join(dir, 'state')}\n`;

const sh = (line: string) => execSync(line, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

const GOOD_OK = /^policy OK: 1 file\(s\), 1 node CA\(s\), 1 zone\(s\), 1 publisher\(s\), 1 software entry\nunsigned: no trust root given \(--root-key, or policy.root in the config\); content [0-9a-f]{64}\n$/;

const GOOD_POLICY = `# one of each
version: 1
nodeCAs:
  - name: nodes
    certificate: { file: ca.pem }
zones:
  - name: z1
    match: { nodeCA: nodes }
publishers:
  - name: pub
    publicKey: { file: pub.pem }
software:
  - name: app
    binary: { publishers: [pub] }
    grants:
      - keys: [team/x]
        zones: [z1]
`;

beforeAll(() => {
  // dist/ is built once for every suite by test/globalSetup.ts.
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-cli-'));
  mkdirSync(path.join(dir, 'good'));
  mkdirSync(path.join(dir, 'bad'));
  sh('openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out good/ca.pem -subj "/CN=cli test node CA" -days 30 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign');
  sh('openssl pkey -in ca.key -pubout -out good/pub.pem');
  writeFileSync(path.join(dir, 'good', 'policy.yaml'), GOOD_POLICY);
  // One problem of each kind, spread over four files: unknown references, a duplicate name
  // across files, unreadable material, and a schema error.
  writeFileSync(path.join(dir, 'bad', 'a.yaml'), 'zones:\n  - name: z1\n    match: { nodeCA: missing-ca }\nsoftware:\n  - name: app\n    binary: { digests: ["' + 'ab'.repeat(32) + '"] }\n    grants: [{ keys: [team/x], zones: [z9] }]\n');
  writeFileSync(path.join(dir, 'bad', 'b.yaml'), 'zones:\n  - name: z1\n    match: { subject: "CN=x" }\n');
  writeFileSync(path.join(dir, 'bad', 'c.yaml'), 'nodeCAs:\n  - name: nodes\n    certificate: { file: nowhere.pem }\n');
  writeFileSync(path.join(dir, 'bad', 'd.yaml'), 'software:\n  - name: tool\n    binary: { digests: ["ab"] }\n    grants: [{ keys: [team/x], zones: [z1] }]\n');
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ stateDir: 'state', policyDir: 'good', dev: { enabled: false } }));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Independent runs: concurrent, each with its own expect.
describe.concurrent('keyanchor policy check', () => {
  it('a valid directory: exit 0 and a summary', async ({ expect }) => {
    expect(await cli(['policy', 'check', 'good'])).toEqual({ code: 0, stdout: expect.stringMatching(GOOD_OK), stderr: '' });
  });

  it('an invalid directory: exit 3 and every problem on stderr as file:line:col path: message', async ({ expect }) => {
    const r = await cli(['policy', 'check', 'bad']);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    // policy commands act on the directory they are given, so they do not announce the config.
    expect(r.stderr).not.toContain(defaultsLine());
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.pop()).toBe('5 problem(s)');
    expect(lines.sort()).toEqual(
      [
        'bad/a.yaml:3:22 zones[0].match.nodeCA: unknown node CA "missing-ca"',
        'bad/a.yaml:7:40 software[0].grants[0].zones[0]: unknown zone "z9"',
        'bad/b.yaml:2:11 zones[0].name: zone "z1" is already defined at bad/a.yaml:2',
        `bad/c.yaml:3:18 nodeCAs[0].certificate: cannot read ${path.join(dir, 'bad', 'nowhere.pem')} (ENOENT)`,
        'bad/d.yaml:3:25 software[0].binary.digests[0]: lowercase hex sha256',
      ].sort(),
    );
    for (const l of lines) expect(l).toMatch(/^\S+:\d+:\d+ \S+: .+$/);
  });

  it('without a directory: the policyDir of --config', async ({ expect }) => {
    const r = await cli(['--config', 'config.json', 'policy', 'check']);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: expect.stringMatching(GOOD_OK) });
  });

  it('a relative directory argument is relative to the working directory, even with --config elsewhere', async ({ expect }) => {
    mkdirSync(path.join(dir, 'etc'), { recursive: true });
    writeFileSync(path.join(dir, 'etc', 'keyanchor.json'), JSON.stringify({ stateDir: '../state', policyDir: '../good', dev: { enabled: false } }));
    const r = await cli(['--config', 'etc/keyanchor.json', 'policy', 'check', 'good']);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: expect.stringMatching(GOOD_OK), stderr: '' });
  });

  it('a missing directory: exit 3', async ({ expect }) => {
    const r = await cli(['policy', 'check', 'no-such-dir']);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('no-such-dir:0:0 (dir): cannot read the policy directory (ENOENT)\n1 problem(s)\n');
  });

  it('an invalid config file: exit 3 with its problems', async ({ expect }) => {
    writeFileSync(path.join(dir, 'broken.json'), JSON.stringify({ stateDir: 'state', colour: 'blue' }));
    const r = await cli(['--config', 'broken.json', 'policy', 'check', 'good']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^keyanchor: invalid configuration:\n {2}broken\.json:1:\d+ colour: unknown key "colour"\n$/);
  });
});

const HOW = ': start the broker (keyanchor serve) or run `keyanchor keys create --init NAME`';

describe('keyanchor keys', () => {
  const keys = (...args: string[]) => cli(['--config', 'config.json', 'keys', ...args]);
  const keystore = () => {
    const db = new Database(path.join(dir, 'state', 'keyanchor.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT name, version, blob FROM key_versions ORDER BY name, version').all() as Array<{ name: string; version: number; blob: Buffer | null }>;
      const keys: Record<string, { versions: Array<{ version: number; wrapped?: { blob: string } }> }> = {};
      for (const r of rows) (keys[r.name] ??= { versions: [] }).versions.push({ version: r.version, ...(r.blob ? { wrapped: { blob: r.blob.toString('base64') } } : {}) });
      return { keys };
    } finally {
      db.close();
    }
  };
  /** The bytes of the database and its WAL. */
  const storeBytes = () => Buffer.concat(readdirSync(path.join(dir, 'state')).filter((f) => f.startsWith('keyanchor.db')).map((f) => readFileSync(path.join(dir, 'state', f))));
  const blobsSeen = new Set<string>();
  const outputs: string[] = [];
  const remember = (r: Run) => {
    outputs.push(r.stdout, r.stderr);
    for (const k of Object.values(keystore().keys)) for (const v of k.versions) if (v.wrapped) blobsSeen.add(v.wrapped.blob);
    return r;
  };

  it('read-only commands refuse a state directory that does not exist, and create nothing', async () => {
    for (const args of [['list'], ['show', 'team/x'], ['export'], ['rotate', 'team/x']]) {
      const r = await keys(...args);
      expect({ code: r.code, stdout: r.stdout }, args.join(' ')).toEqual({ code: 1, stdout: '' });
      expect(r.stderr).toBe(`keyanchor: store_missing: the store ${path.join(dir, 'state', 'keyanchor.db')} does not exist${HOW}\n`);
    }
    const audit = await cli(['--config', 'config.json', 'audit', 'verify']);
    expect({ code: audit.code, stderr: audit.stderr }).toEqual({ code: 1, stderr: `keyanchor: store_missing: the store ${path.join(dir, 'state', 'keyanchor.db')} does not exist${HOW}\n` });
    expect(existsSync(path.join(dir, 'state'))).toBe(false);
  });

  it('create in an uninitialised state directory needs --init', async () => {
    mkdirSync(path.join(dir, 'state'), { mode: 0o700 });
    const r = await keys('create', 'team/x');
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
    expect(r.stderr).toBe(`keyanchor: store_missing: the store ${path.join(dir, 'state', 'keyanchor.db')} does not exist${HOW}\n`);
    expect(readdirSync(path.join(dir, 'state'))).toEqual([]);
    expect(existsSync(path.join(dir, 'state', 'kek.bin'))).toBe(false);
  });

  it('create, list, rotate, disable, destroy: JSON metadata, never a wrapped blob', async () => {
    const created = remember(await keys('create', '--init', 'team/x'));
    expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
    const info = JSON.parse(created.stdout);
    expect(info).toEqual({
      name: 'team/x',
      createdAt: expect.any(String),
      createdBy: ACTOR,
      versions: [{ version: 1, state: 'enabled', createdAt: info.createdAt, createdBy: ACTOR }],
    });

    const listed = remember(await keys('list'));
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([info]);

    const rotated = remember(await keys('rotate', 'team/x'));
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout).versions.map((v: { version: number; state: string }) => [v.version, v.state])).toEqual([
      [1, 'enabled'],
      [2, 'enabled'],
    ]);

    const disabled = remember(await keys('disable', 'team/x', '1'));
    expect(disabled.code).toBe(0);
    expect(JSON.parse(disabled.stdout).versions[0]).toMatchObject({ version: 1, state: 'disabled', changedBy: ACTOR });

    const v1blob = keystore().keys['team/x']!.versions[0]!.wrapped!.blob;
    const destroyed = remember(await keys('destroy', 'team/x', '1'));
    expect(destroyed.code).toBe(0);
    expect(JSON.parse(destroyed.stdout).versions.map((v: { state: string }) => v.state)).toEqual(['destroyed', 'enabled']);
    expect(storeBytes().includes(Buffer.from(v1blob, 'base64'))).toBe(false);

    const shown = remember(await keys('show', 'team/x'));
    expect(JSON.parse(shown.stdout).versions).toHaveLength(2);

    expect(blobsSeen.size).toBe(2);
    for (const out of outputs) {
      expect(out).not.toMatch(/wrapped|blob|kekId/);
      for (const b of blobsSeen) expect(out).not.toContain(b);
    }
  });

  describe.concurrent('refusals, after the lifecycle above', () => {
    it('an invalid key name: exit 2 with a clear message, and nothing is created', async ({ expect }) => {
      const [upper, r] = await Promise.all([keys('create', 'Team/X'), keys('rotate', 'no-slash')]);
      expect(upper).toEqual({
        code: 2,
        stdout: '',
        stderr: 'keyanchor: invalid key name "Team/X": use owner/purpose (lowercase letters, digits, . _ -)\n',
      });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: 'keyanchor: invalid key name "no-slash": use owner/purpose (lowercase letters, digits, . _ -)\n' });
      expect(Object.keys(keystore().keys)).not.toContain('Team/X');
    });

    it('an invalid version: exit 2', async ({ expect }) => {
      const versions = ['0', '1.5'];
      const runs = await Promise.all(versions.map((v) => keys('disable', 'team/x', v)));
      runs.forEach((r, i) => expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `keyanchor: invalid version "${versions[i]}"\n` }));
    });

    it('lifecycle refusals: exit 1 with the code and reason', async ({ expect }) => {
      const [exists, unknown, final] = await Promise.all([keys('create', 'team/x'), keys('rotate', 'team/none'), keys('enable', 'team/x', '1')]);
      expect(exists).toEqual({ code: 1, stdout: '', stderr: 'keyanchor: key_exists: key team/x exists\n' });
      expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'keyanchor: key_unknown: no key team/none\n' });
      expect(final).toEqual({ code: 1, stdout: '', stderr: 'keyanchor: key_state_invalid: team/x@1 is destroyed, cannot become enabled\n' });
    });
  });
});
