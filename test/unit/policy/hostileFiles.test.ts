/**
 * Hostile or broken policy directories (issue 6, item 6): every case is a located problem
 * `file:line:col path: message`, never a crash, a hang or a read without bound. FIFOs are made
 * with mkfifo, /dev/zero is the real device, large files are sparse (truncate), and the symlinks
 * are real symlinks.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPolicyTree } from '../../../src/policy/files.js';
import { formatProblem, loadPolicyDir, PolicyError } from '../../../src/policy/load.js';

let root: string;
let n = 0;
const OK = 'zones:\n  - name: z1\n    match: { subject: "CN=a" }\n';

function dir(files: Record<string, string | Buffer> = {}): string {
  const d = path.join(root, `p${++n}`);
  mkdirSync(d);
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(d, name)), { recursive: true });
    writeFileSync(path.join(d, name), body);
  }
  return d;
}

function problems(d: string): string[] {
  try {
    loadPolicyDir(d);
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    return (e as PolicyError).problems.map(formatProblem);
  }
  throw new Error(`expected ${d} to be refused`);
}

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'keyanchor-hostile-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('what a policy directory may hold', () => {
  it('a *.yaml symlink to /dev/zero is refused, not read', () => {
    const d = dir({ 'a.yaml': OK });
    symlinkSync('/dev/zero', path.join(d, 'zero.yaml'));
    expect(problems(d)).toEqual([`${d}/zero.yaml:1:1 (file): a symbolic link that leaves the policy directory (to /dev/zero)`]);
  });

  it('a FIFO named *.yaml is refused without blocking on it', () => {
    const d = dir({ 'a.yaml': OK });
    execFileSync('mkfifo', [path.join(d, 'pipe.yaml')]);
    expect(problems(d)).toEqual([`${d}/pipe.yaml:1:1 (file): not a regular file (a FIFO)`]);
  });

  it('a directory named *.yaml is a problem', () => {
    const d = dir({ 'a.yaml': OK, 'b.yaml/inner.txt': 'x' });
    expect(problems(d)).toEqual([`${d}/b.yaml:1:1 (file): a directory named like a policy file; policy files must be regular files`]);
  });

  it('a dangling symlink and a symlink loop are problems', () => {
    const d = dir({ 'a.yaml': OK });
    symlinkSync('nowhere.yaml', path.join(d, 'dangling.yaml'));
    symlinkSync('loop2.yaml', path.join(d, 'loop1.yaml'));
    symlinkSync('loop1.yaml', path.join(d, 'loop2.yaml'));
    expect(problems(d)).toEqual([
      `${d}/dangling.yaml:1:1 (file): a dangling symbolic link`,
      `${d}/loop1.yaml:1:1 (file): a symbolic link loop`,
      `${d}/loop2.yaml:1:1 (file): a symbolic link loop`,
    ]);
  });

  it('a symlink that stays inside the directory is followed; one to a directory is not', () => {
    const d = dir({ 'shared/zones.yml': OK });
    symlinkSync('shared/zones.yml', path.join(d, 'zones.yaml'));
    expect(loadPolicyDir(d).zones.map((z) => z.name)).toEqual(['z1']);
    symlinkSync('shared', path.join(d, 'linked'));
    expect(problems(d)).toEqual([`${d}/linked:1:1 (file): a symbolic link to a directory (not followed)`]);
  });

  it('a symlink that leaves the directory to a regular file is refused too', () => {
    const outside = path.join(root, `outside-${++n}.yaml`);
    writeFileSync(outside, OK);
    const d = dir();
    symlinkSync(outside, path.join(d, 'a.yaml'));
    expect(problems(d)).toEqual([`${d}/a.yaml:1:1 (file): a symbolic link that leaves the policy directory (to ${outside})`]);
  });

  it('hidden files and directories are not part of the policy', () => {
    const d = dir({ 'a.yaml': OK, '.hidden.yaml': 'not: [valid', '.git/config': 'x' });
    expect(loadPolicyDir(d).sources.map((s) => path.basename(s.file))).toEqual(['a.yaml']);
  });
});

describe('bounded reads', () => {
  it('a 50 MB policy file is refused by its size, unread', () => {
    const d = dir();
    writeFileSync(path.join(d, 'big.yaml'), '');
    truncateSync(path.join(d, 'big.yaml'), 50 * 1024 * 1024);
    expect(problems(d)).toEqual([`${d}/big.yaml:1:1 (file): 52428800 bytes, larger than the 16 MiB limit`]);
  });

  it('the whole directory has a cap too', () => {
    const d = dir({ 'a.yaml': 'x'.repeat(600), 'b.yaml': 'y'.repeat(600), 'c.yaml': 'z' });
    const tree = readPolicyTree(d, { maxFileBytes: 1000, maxTotalBytes: 1000, maxFiles: 10, maxDepth: 4, maxMaterialBytes: 100 });
    expect([...tree.files.keys()]).toEqual(['a.yaml']);
    expect(tree.problems.map(formatProblem)).toEqual([`${d}/b.yaml:1:1 (file): the policy directory is larger than 1000-byte in total`]);
  });

  it('material from /dev/zero or a FIFO is a problem at the reference', () => {
    const fifo = path.join(root, `fifo-${++n}`);
    execFileSync('mkfifo', [fifo]);
    const d = dir({ 'a.yaml': `nodeCAs:\n  - name: zero\n    certificate: { file: /dev/zero }\n  - name: pipe\n    certificate: { file: "${fifo}" }\n` });
    expect(problems(d)).toEqual([
      `${d}/a.yaml:3:18 nodeCAs[0].certificate: /dev/zero: not a regular file (a character device)`,
      `${d}/a.yaml:5:18 nodeCAs[1].certificate: ${fifo}: not a regular file (a FIFO)`,
    ]);
  });

  it('material inside the directory that is not a regular file says so', () => {
    const d = dir({ 'a.yaml': 'nodeCAs:\n  - name: zero\n    certificate: { file: certs/zero.pem }\n' });
    mkdirSync(path.join(d, 'certs'));
    symlinkSync('/dev/zero', path.join(d, 'certs', 'zero.pem'));
    expect(problems(d)).toEqual([
      `${d}/certs/zero.pem:1:1 (file): a symbolic link that leaves the policy directory (to /dev/zero)`,
      `${d}/a.yaml:3:18 nodeCAs[0].certificate: ${d}/certs/zero.pem is not a regular file of the policy directory (see its own problem)`,
    ]);
  });
});

describe('text that is not what it seems', () => {
  it('Latin-1 bytes are refused at their line and column', () => {
    const d = dir({ 'a.yaml': Buffer.concat([Buffer.from('zones:\n  - name: z1\n    match: { subject: "CN=Jos'), Buffer.from([0xe9]), Buffer.from('" }\n')]) });
    expect(problems(d)).toEqual([`${d}/a.yaml:3:30 (encoding): byte 0xe9 is not UTF-8 (Latin-1?); save the file as UTF-8`]);
  });

  it('UTF-16 with a byte-order mark, and without one, is refused', () => {
    const utf16 = (s: string) => Buffer.from(s, 'utf16le');
    const d = dir({ 'a.yaml': Buffer.concat([Buffer.from([0xff, 0xfe]), utf16(OK)]), 'b.yaml': utf16(OK) });
    expect(problems(d)).toEqual([
      `${d}/a.yaml:1:1 (encoding): UTF-16 text (byte-order mark FF FE); save the file as UTF-8`,
      `${d}/b.yaml:1:2 (encoding): a NUL byte: the file is binary or UTF-16; save it as UTF-8`,
    ]);
  });

  it('a UTF-8 byte-order mark is allowed', () => {
    const d = dir({ 'a.yaml': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(OK)]) });
    expect(loadPolicyDir(d).zones.map((z) => z.name)).toEqual(['z1']);
  });

  it('an alias bomb is refused before anything walks it', () => {
    let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i <= 9; i++) text += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    const d = dir({ 'bomb.yaml': text });
    expect(problems(d)).toEqual([`${d}/bomb.yaml:1:1 (aliases): aliases expand to more than 2,000,000 nodes (an alias bomb?)`]);
  });

  it('nesting without end is refused', () => {
    const chain = ['a0: &a0 [x]', ...Array.from({ length: 80 }, (_, i) => `a${i + 1}: &a${i + 1} [*a${i}]`)].join('\n') + '\n';
    const d = dir({ 'deep.yaml': `zones: ${'['.repeat(80)}${']'.repeat(80)}\n`, 'deeper.json': `${'['.repeat(20000)}${']'.repeat(20000)}`, 'chained.yaml': chain });
    expect(problems(d)).toEqual([
      `${d}/chained.yaml:1:1 (aliases): nested more than 64 levels deep`,
      `${d}/deep.yaml:1:71 (syntax): nesting exceeded maxDepth (64)`,
      `${d}/deeper.json:1:64 (syntax): nesting exceeded maxDepth (64)`,
    ]);
  });

  it('a YAML merge key is not a merge: it is an unknown key', () => {
    const d = dir({ 'a.yaml': 'zones:\n  - <<: { name: z1 }\n    match: { subject: "CN=a" }\n' });
    expect(problems(d)).toEqual([
      `${d}/a.yaml:2:5 zones[0].name: Invalid input: expected string, received undefined`,
      `${d}/a.yaml:2:5 zones[0].<<: unknown key "<<"`,
    ]);
  });
});
