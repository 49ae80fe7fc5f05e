/**
 * Loading a policy directory: schema, PEM material, cross-references. Every problem comes back
 * in one PolicyError as `file:line:col path: message`. Certificates and keys are made by the
 * openssl CLI at test time.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../../src/policy/evaluate.js';
import { formatProblem, loadPolicyDir, PolicyError } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';

let root: string;
/** Fixture material, absolute paths. */
const fx = { ca: '', leaf: '', ecPub: '', edPub: '', rsa1024Pub: '', rsa2048Pub: '' };
const DIGEST = 'ab'.repeat(32);
let dirCount = 0;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Writes `files` into a new policy directory and returns its path. */
function policyDir(files: Record<string, string>): string {
  const d = path.join(root, `policy-${++dirCount}`);
  mkdirSync(d);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(d, name), text);
  return d;
}

/** The formatted problems of the PolicyError that loading `d` throws. */
function problemLines(d: string, vars: Record<string, string> = {}): string[] {
  try {
    loadPolicyDir(d, { vars });
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError);
    expect((e as PolicyError).code).toBe('policy_invalid');
    return (e as PolicyError).problems.map(formatProblem);
  }
  throw new Error(`expected ${d} to be refused`);
}

const valid = () => `version: 1
nodeCAs:
  - name: ca1
    certificate: { file: "${fx.ca}" }
zones:
  - name: z1
    match: { nodeCA: ca1, sanUriPrefix: "spiffe://t/z1/" }
publishers:
  - name: pub1
    publicKey: { file: "${fx.ecPub}" }
software:
  - name: app
    binary: { publishers: [pub1] }
    grants:
      - keys: [team/a]
        zones: [z1]
`;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'keyanchor-policy-'));
  const ext = path.join(root, 'ca.ext');
  writeFileSync(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  const leafExt = path.join(root, 'leaf.ext');
  writeFileSync(leafExt, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n');
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key');
  openssl('req', '-new', '-key', 'ca.key', '-subj', '/O=Test/CN=Test Node CA', '-out', 'ca.csr');
  openssl('x509', '-req', '-in', 'ca.csr', '-signkey', 'ca.key', '-days', '30', '-extfile', ext, '-out', 'ca.pem');
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'leaf.key');
  openssl('req', '-new', '-key', 'leaf.key', '-subj', '/CN=not a CA', '-out', 'leaf.csr');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '2', '-days', '30', '-extfile', leafExt, '-out', 'leaf.pem');
  openssl('pkey', '-in', 'leaf.key', '-pubout', '-out', 'ec.pub');
  openssl('genpkey', '-algorithm', 'ed25519', '-out', 'ed.key');
  openssl('pkey', '-in', 'ed.key', '-pubout', '-out', 'ed.pub');
  openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', 'rsa1024.key');
  openssl('pkey', '-in', 'rsa1024.key', '-pubout', '-out', 'rsa1024.pub');
  openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa2048.key');
  openssl('pkey', '-in', 'rsa2048.key', '-pubout', '-out', 'rsa2048.pub');
  Object.assign(fx, {
    ca: path.join(root, 'ca.pem'),
    leaf: path.join(root, 'leaf.pem'),
    ecPub: path.join(root, 'ec.pub'),
    edPub: path.join(root, 'ed.pub'),
    rsa1024Pub: path.join(root, 'rsa1024.pub'),
    rsa2048Pub: path.join(root, 'rsa2048.pub'),
  });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a valid policy', () => {
  it('loads with every section resolved', () => {
    const d = policyDir({ 'a.yaml': valid() });
    const p = loadPolicyDir(d);
    expect(p.nodeCAs.size).toBe(1);
    const ca = p.nodeCAs.get('ca1')!;
    expect(ca.name).toBe('ca1');
    expect(ca.cert.subject).toBe('O=Test\nCN=Test Node CA');
    expect(ca.fingerprint).toBe(createHash('sha256').update(ca.cert.raw).digest('hex'));
    expect(p.zones).toEqual([{ name: 'z1', match: { nodeCA: 'ca1', sanUriPrefix: 'spiffe://t/z1/' } }]);
    expect(p.publishers.get('pub1')?.kind).toBe('key');
    expect(p.software).toEqual([
      { name: 'app', binary: { digests: new Set(), publishers: ['pub1'] }, grants: [{ keys: [{ name: 'team/a' }], zones: ['z1'] }] },
    ]);
    expect(p.sources).toEqual([
      { file: path.join(d, 'a.yaml'), sha256: createHash('sha256').update(readFileSync(path.join(d, 'a.yaml'))).digest('hex') },
    ]);
    expect(Object.isFrozen(p)).toBe(true);
  });

  it('parses pinned key versions, node selectors, images and every publisher key type', () => {
    const d = policyDir({
      'a.yml': valid(),
      'b.json': JSON.stringify({
        publishers: [
          { name: 'ed', publicKey: { file: fx.edPub } },
          { name: 'rsa', publicKey: { file: fx.rsa2048Pub } },
          { name: 'release-ca', certificate: { file: fx.ca }, subjects: ['CN=release'] },
        ],
        software: [
          {
            name: 'batch',
            binary: { digests: [DIGEST] },
            image: { digests: [`sha256:${DIGEST}`], publishers: ['release-ca'] },
            grants: [{ keys: ['team/b@2', 'team/c'], zones: ['z1'], nodes: ['spiffe://t/z1/n7'] }],
          },
        ],
      }),
    });
    const p = loadPolicyDir(d);
    expect([...p.publishers.keys()]).toEqual(['pub1', 'ed', 'rsa', 'release-ca']);
    const rc = p.publishers.get('release-ca');
    expect(rc?.kind === 'ca' && rc.subjects).toEqual(['CN=release']);
    const batch = p.software.find((s) => s.name === 'batch')!;
    expect(batch.grants).toEqual([{ keys: [{ name: 'team/b', version: 2 }, { name: 'team/c' }], zones: ['z1'], nodes: ['spiffe://t/z1/n7'] }]);
    expect(batch.image).toEqual({ digests: new Set([`sha256:${DIGEST}`]), publishers: ['release-ca'] });
    expect(batch.binary.digests.has(DIGEST)).toBe(true);
    expect(p.sources.map((s) => path.basename(s.file))).toEqual(['a.yml', 'b.json']);
  });

  it('resolves relative material paths against the policy file and expands ${stateDir}', () => {
    const state = path.join(root, 'state-for-vars');
    mkdirSync(path.join(state, 'dev'), { recursive: true });
    writeFileSync(path.join(state, 'dev', 'pub.pem'), readFileSync(fx.ecPub));
    const d = policyDir({
      'a.yaml': `nodeCAs:\n  - name: ca1\n    certificate: { file: ../ca.pem }\npublishers:\n  - name: p\n    publicKey: { file: "\${stateDir}/dev/pub.pem" }\n`,
    });
    const p = loadPolicyDir(d, { vars: { stateDir: state } });
    expect(p.nodeCAs.has('ca1')).toBe(true);
    expect(p.publishers.has('p')).toBe(true);
  });

  it('accepts inline PEM', () => {
    const pem = readFileSync(fx.ca, 'utf8');
    const d = policyDir({ 'a.json': JSON.stringify({ nodeCAs: [{ name: 'inline', certificate: { pem } }] }) });
    expect(loadPolicyDir(d).nodeCAs.get('inline')?.cert.subject).toBe('O=Test\nCN=Test Node CA');
  });

  it('ignores files that are not .yaml, .yml or .json', () => {
    const d = policyDir({ 'a.yaml': valid(), 'README.md': 'not: [valid', 'b.yaml.bak': 'junk: [' });
    expect(loadPolicyDir(d).sources.map((s) => path.basename(s.file))).toEqual(['a.yaml']);
  });

  it('an empty directory is a valid, empty policy that denies everything', () => {
    const p = loadPolicyDir(policyDir({}));
    expect({ nodeCAs: p.nodeCAs.size, zones: p.zones.length, publishers: p.publishers.size, software: p.software.length, sources: p.sources.length }).toEqual({
      nodeCAs: 0,
      zones: 0,
      publishers: 0,
      software: 0,
      sources: 0,
    });
    const d = evaluate(p as Policy, {
      node: { nodeCA: 'any', subject: 'CN=n', sanUris: [], fingerprint: '00' },
      binary: { sha256: DIGEST, publishers: new Set() },
      keys: [{ name: 'team/a' }],
    });
    expect(d.allow).toBe(false);
    expect(d.allow === false && d.code).toBe('software_not_approved');
  });

  it('an empty file is an empty policy', () => {
    expect(loadPolicyDir(policyDir({ 'a.yaml': '# nothing yet\n' })).software).toEqual([]);
  });
});

describe('problems are located at file:line:col path', () => {
  it('an unknown key, at the key', () => {
    const d = policyDir({ 'a.yaml': 'zones:\n  - name: z1\n    colour: blue\n    match: { subject: "CN=x" }\n' });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:3:5 zones[0].colour: unknown key "colour"`]);
  });

  it('an unknown zone reference', () => {
    const text = `${valid()}  - name: other
    binary: { digests: ["${DIGEST}"] }
    grants:
      - keys: ["team/b@2"]
        zones: [z9]
`;
    const d = policyDir({ 'a.yaml': text });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:21:17 software[1].grants[0].zones[0]: unknown zone "z9"`]);
  });

  it('an unknown publisher, in binary and image rules', () => {
    const text = valid().replace('binary: { publishers: [pub1] }', `binary: { publishers: [pub1, ghost] }\n    image: { publishers: [phantom] }`);
    const d = policyDir({ 'a.yaml': text });
    expect(problemLines(d)).toEqual([
      `${d}/a.yaml:13:34 software[0].binary.publishers[1]: unknown publisher "ghost"`,
      `${d}/a.yaml:14:27 software[0].image.publishers[0]: unknown publisher "phantom"`,
    ]);
  });

  it('an unknown node CA in a zone', () => {
    const d = policyDir({ 'a.yaml': valid().replace('match: { nodeCA: ca1,', 'match: { nodeCA: ca2,') });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:7:22 zones[0].match.nodeCA: unknown node CA "ca2"`]);
  });

  it('a duplicate name across two files names the other file and line', () => {
    const d = policyDir({
      'a.yaml': valid(),
      'b.yaml': '# more zones\nzones:\n  - name: z2\n    match: { subject: "CN=a" }\n  - name: z1\n    match: { subject: "CN=b" }\n',
    });
    expect(problemLines(d)).toEqual([`${d}/b.yaml:5:11 zones[1].name: zone "z1" is already defined at ${d}/a.yaml:6`]);
  });

  it('a duplicate software name within one file', () => {
    const d = policyDir({ 'a.yaml': `${valid()}  - name: app\n    binary: { digests: ["${DIGEST}"] }\n    grants: [{ keys: [team/b], zones: [z1] }]\n` });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:17:11 software[1].name: software "app" is already defined at ${d}/a.yaml:12`]);
  });

  it('a bad key name in grants', () => {
    const d = policyDir({ 'a.yaml': valid().replace('keys: [team/a]', 'keys: [team/a, Team/B, "team/c@0", team]') });
    expect(problemLines(d)).toEqual([
      `${d}/a.yaml:15:24 software[0].grants[0].keys[1]: a key name "team/purpose", optionally "@VERSION"`,
      `${d}/a.yaml:15:32 software[0].grants[0].keys[2]: a key name "team/purpose", optionally "@VERSION"`,
      `${d}/a.yaml:15:44 software[0].grants[0].keys[3]: a key name "team/purpose", optionally "@VERSION"`,
    ]);
  });

  it('`file` pointing to a missing file', () => {
    const d = policyDir({ 'a.yaml': valid().replace(`file: "${fx.ca}"`, 'file: certs/missing.pem') });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:4:18 nodeCAs[0].certificate: cannot read ${d}/certs/missing.pem (ENOENT)`]);
  });

  it('a certificate that is not a CA', () => {
    const d = policyDir({ 'a.yaml': valid().replace(fx.ca, fx.leaf) });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:4:18 nodeCAs[0].certificate: the certificate is not a CA (basicConstraints cA is not true)`]);
  });

  it('material that is not a certificate', () => {
    const d = policyDir({ 'a.yaml': valid().replace(fx.ca, fx.ecPub) });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:4:18 nodeCAs[0].certificate: not a PEM X.509 certificate`]);
  });

  it('an RSA-1024 publisher key', () => {
    const d = policyDir({ 'a.yaml': valid().replace(fx.ecPub, fx.rsa1024Pub) });
    expect(problemLines(d)).toEqual([
      `${d}/a.yaml:10:16 publishers[0].publicKey: unsupported publisher key (rsa 1024); use EC P-256/P-384, Ed25519 or RSA ≥ 2048`,
    ]);
  });

  it('a publisher key that is not a public key', () => {
    const d = policyDir({ 'a.yaml': valid().replace(`{ file: "${fx.ecPub}" }`, '{ pem: "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n" }') });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:10:16 publishers[0].publicKey: not a PEM public key`]);
  });

  it('an unknown ${variable}', () => {
    const d = policyDir({ 'a.yaml': valid().replace(`file: "${fx.ca}"`, 'file: "${unknownVar}/ca.pem"') });
    expect(problemLines(d, { stateDir: '/srv/keyanchor' })).toEqual([
      `${d}/a.yaml:4:18 nodeCAs[0].certificate: unknown variable \${unknownVar} (known: stateDir)`,
    ]);
    expect(problemLines(d)).toEqual([`${d}/a.yaml:4:18 nodeCAs[0].certificate: unknown variable \${unknownVar} (known: none)`]);
  });

  it('a YAML syntax error, at its line', () => {
    const d = policyDir({ 'a.yaml': 'zones:\n  - name: z1\n    match: nodeCA: ca1\n' });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:3:18 (syntax): bad indentation of a mapping entry`]);
  });

  it('a key given twice in one mapping', () => {
    const d = policyDir({ 'a.yaml': 'zones:\n  - name: z1\n    name: z2\n    match: { subject: "CN=x" }\n' });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:3:5 (syntax): duplicated mapping key`]);
  });

  it('both `file` and `pem`', () => {
    const d = policyDir({ 'a.yaml': valid().replace(`{ file: "${fx.ca}" }`, `{ file: "${fx.ca}", pem: "x" }`) });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:4:18 nodeCAs[0].certificate: give exactly one of "file" or "pem"`]);
  });

  it('neither `publicKey` nor `certificate`, and `subjects` on a key publisher', () => {
    const d = policyDir({
      'a.yaml': 'publishers:\n  - name: none\n  - name: keyed\n    publicKey: { pem: x }\n    subjects: ["CN=a"]\n',
    });
    expect(problemLines(d)).toEqual([
      `${d}/a.yaml:2:5 publishers[0]: give exactly one of "publicKey" or "certificate"`,
      `${d}/a.yaml:3:5 publishers[1]: "subjects" applies only to a certificate publisher`,
    ]);
  });

  it('a software entry that approves nothing, and an upper-case digest', () => {
    const d = policyDir({
      'a.yaml': `software:\n  - name: s\n    binary: { digests: [] }\n    grants: [{ keys: [team/a], zones: [z] }]\n  - name: t\n    binary: { digests: ["${DIGEST.toUpperCase()}"] }\n    grants: [{ keys: [team/a], zones: [z] }]\n`,
    });
    expect(problemLines(d)).toEqual([
      `${d}/a.yaml:3:13 software[0].binary: approve by at least one digest or publisher`,
      `${d}/a.yaml:6:25 software[1].binary.digests[0]: lowercase hex sha256`,
    ]);
  });

  it('a wrong version', () => {
    const d = policyDir({ 'a.yaml': 'version: 2\n' });
    expect(problemLines(d)).toEqual([`${d}/a.yaml:1:10 version: Invalid input: expected 1`]);
  });

  it('a missing policy directory', () => {
    const d = path.join(root, 'no-such-dir');
    expect(problemLines(d)).toEqual([`${d}:0:0 (dir): cannot read the policy directory (ENOENT)`]);
  });
});

describe('all problems of all files', () => {
  it('come back in one PolicyError, and nothing is loaded', () => {
    const d = policyDir({
      'a.yaml': valid().replace(fx.ecPub, fx.rsa1024Pub).replace('zones: [z1]', 'zones: [z1, nowhere]'),
      'b.yaml': 'zones:\n  - name: z2\n    match: { subject: "CN=a" }\n    extra: 1\n',
      'c.yaml': 'software: [\n',
      'd.yaml': 'zones:\n  - name: z1\n    match: { subject: "CN=b" }\n',
    });
    let err: PolicyError | undefined;
    try {
      loadPolicyDir(d);
    } catch (e) {
      err = e as PolicyError;
    }
    expect(err).toBeInstanceOf(PolicyError);
    const byFile = err!.problems.map((p) => `${path.basename(p.file)} ${p.path}`).sort();
    expect(byFile).toEqual([
      'a.yaml publishers[0].publicKey',
      'a.yaml software[0].grants[0].zones[1]',
      'b.yaml zones[0].extra',
      'c.yaml (syntax)',
      'd.yaml zones[0].name',
    ]);
    expect(err!.message).toBe(`invalid policy:\n  ${err!.problems.map(formatProblem).join('\n  ')}`);
  });
});
