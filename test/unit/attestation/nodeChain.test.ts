/**
 * Node chains made by the real openssl CLI at test time (`openssl req` + `openssl x509 -req` with
 * extension files; `openssl ca` where a start date in the future is needed), verified by
 * verifyNodeChain. Where the broker's answer is a judgement call, `openssl verify` is asked too.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChain, verifyNodeChain } from '../../../src/attestation/nodeChain.js';
import { BrokerError } from '../../../src/errors.js';
import { parseCaCertificate } from '../../../src/policy/material.js';
import type { NodeCA } from '../../../src/policy/types.js';

let dir: string;
const DAY = 86_400_000;
const LEAF_SAN = 'spiffe://example.org/zone/pci/node-1';

const EXT = {
  ca: 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  caPathlen0: 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  inter: 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  interFree: 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  interNotCa: 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  leaf: `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=URI:${LEAF_SAN},DNS:node-1.example.org\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n`,
  leafNoDigitalSignature: 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  leafNoKeyUsage: 'basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  leafUnknownCritical: 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n1.3.6.1.4.1.55555.1=critical,ASN1:NULL\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
};

function openssl(...args: string[]): string {
  try {
    return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed:\n${(e as { stderr?: string }).stderr ?? ''}`, { cause: e });
  }
}

function opensslVerifies(anchor: string, intermediates: string[], leaf: string): boolean {
  const untrusted = intermediates.length ? ['-untrusted', `${intermediates.join('-')}.bundle.pem`] : [];
  if (intermediates.length) writeFileSync(path.join(dir, `${intermediates.join('-')}.bundle.pem`), intermediates.map((n) => readFileSync(path.join(dir, `${n}.pem`), 'utf8')).join(''));
  try {
    openssl('verify', '-CAfile', `${anchor}.pem`, ...untrusted, '-purpose', 'any', `${leaf}.pem`);
    return true;
  } catch {
    return false;
  }
}

function key(name: string): void {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

/** Self-signed CA `name`.pem / `name`.key. */
function root(name: string, subject: string, ext: keyof typeof EXT = 'ca', days = 3650): void {
  key(name);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-signkey', `${name}.key`, '-days', String(days), '-set_serial', '1', '-extfile', `${ext}.ext`, '-out', `${name}.pem`);
}

let serial = 100;
/** `name`.pem issued by `issuer` with the extensions of `ext`. */
function issue(name: string, subject: string, issuer: string, ext: keyof typeof EXT, days = 365): void {
  key(name);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-set_serial', String(++serial), '-days', String(days), '-extfile', `${ext}.ext`, '-out', `${name}.pem`);
}

/** Like issue(), but with explicit validity dates (openssl ca: x509 -req cannot set notBefore). */
function issueDated(name: string, subject: string, issuer: string, ext: keyof typeof EXT, start: Date, end: Date): void {
  const stamp = (d: Date) => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
  key(name);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`);
  openssl('ca', '-config', 'ca.cnf', '-batch', '-notext', '-cert', `${issuer}.pem`, '-keyfile', `${issuer}.key`, '-in', `${name}.csr`, '-out', `${name}.pem`, '-startdate', stamp(start), '-enddate', stamp(end), '-extfile', `${ext}.ext`);
}

const pem = (name: string) => readFileSync(path.join(dir, `${name}.pem`), 'utf8');
const cert = (name: string) => new X509Certificate(pem(name));
const x5c = (...names: string[]) => names.map((n) => cert(n).raw.toString('base64'));
const anchor = (name: string, policyName = name): [string, NodeCA] => [policyName, { name: policyName, ...parseCaCertificate(pem(name)) }];
const trusted = (...anchors: Array<[string, NodeCA]>) => new Map(anchors);

/** The code of the BrokerError thrown by `f`, or 'accepted'. */
function outcome(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (e) {
    if (!(e instanceof BrokerError)) throw e;
    return e.code;
  }
}
const verify = (chain: string[], t: ReadonlyMap<string, NodeCA>, now = Date.now()) => outcome(() => verifyNodeChain(parseChain(chain), t, now));

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-nodechain-'));
  for (const [name, text] of Object.entries(EXT)) writeFileSync(path.join(dir, `${name}.ext`), text);
  mkdirSync(path.join(dir, 'newcerts'));
  writeFileSync(path.join(dir, 'index.txt'), '');
  writeFileSync(path.join(dir, 'serial'), '1000\n');
  writeFileSync(
    path.join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca = dflt\n[dflt]\ndatabase = index.txt\nnew_certs_dir = newcerts\nserial = serial\ndefault_md = sha256\npolicy = pol\nunique_subject = no\ncopy_extensions = none\n[pol]\ncommonName = supplied\norganizationName = optional\n',
  );

  root('root', '/O=Example/CN=Node Root');
  root('impostor', '/O=Example/CN=Node Root'); // same name, different key
  root('other', '/O=Other/CN=Other Root');
  root('strict', '/O=Example/CN=Strict Root', 'caPathlen0');
  root('shortRoot', '/O=Example/CN=Short Root', 'ca', 1);

  issue('inter', '/O=Example/CN=Node Intermediate', 'root', 'inter');
  issue('interFree', '/O=Example/CN=Free Intermediate', 'root', 'interFree');
  issue('inter2', '/O=Example/CN=Second Intermediate', 'interFree', 'inter');
  issue('interDeep', '/O=Example/CN=Too Deep', 'inter', 'interFree');
  issue('interNotCa', '/O=Example/CN=Not A CA', 'root', 'interNotCa');
  issue('impostorInter', '/O=Example/CN=Node Intermediate', 'impostor', 'inter');
  issue('underStrict', '/O=Example/CN=Under Strict', 'strict', 'interFree');

  issue('leaf', '/O=Example/CN=node-1', 'inter', 'leaf');
  issue('leafNoDs', '/O=Example/CN=node-2', 'inter', 'leafNoDigitalSignature');
  issue('leafNoKu', '/O=Example/CN=node-3', 'inter', 'leafNoKeyUsage');
  issue('leafCritical', '/O=Example/CN=node-4', 'inter', 'leafUnknownCritical');
  issue('leaf4', '/O=Example/CN=node-5', 'inter2', 'leaf');
  issue('leafDeep', '/O=Example/CN=node-6', 'interDeep', 'leaf');
  issue('leafNotCa', '/O=Example/CN=node-7', 'interNotCa', 'leaf');
  issue('leafImpostor', '/O=Example/CN=node-1', 'impostorInter', 'leaf');
  issue('leafDirect', '/O=Example/CN=node-8', 'root', 'leaf');
  issue('leafUnderStrictInter', '/O=Example/CN=node-9', 'underStrict', 'leaf');
  issue('leafDirectStrict', '/O=Example/CN=node-10', 'strict', 'leaf');
  issue('leafUnderShort', '/O=Example/CN=node-14', 'shortRoot', 'leaf');
  issue('leafShort', '/O=Example/CN=node-11', 'inter', 'leaf', 1);
  issueDated('leafFuture', '/O=Example/CN=node-12', 'inter', 'leaf', new Date(Date.now() + 2 * DAY), new Date(Date.now() + 30 * DAY));
  issueDated('leafExpired', '/O=Example/CN=node-13', 'inter', 'leaf', new Date(Date.UTC(2020, 0, 1)), new Date(Date.UTC(2020, 0, 2)));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a valid chain', () => {
  it('root CA → intermediate → leaf is accepted, with the node identity', () => {
    const id = verifyNodeChain(parseChain(x5c('leaf', 'inter')), trusted(anchor('root', 'prod-nodes')), Date.now());
    const fp = openssl('x509', '-in', 'leaf.pem', '-noout', '-fingerprint', '-sha256').trim().split('=')[1]!.replace(/:/g, '').toLowerCase();
    const serial = openssl('x509', '-in', 'leaf.pem', '-noout', '-serial').trim().split('=')[1]!.toLowerCase().replace(/^0+(?=.)/, '');
    expect(id).toEqual({ nodeCA: 'prod-nodes', subject: 'O=Example\nCN=node-1', sanUris: [LEAF_SAN], fingerprint: fp, serial });
    expect(opensslVerifies('root', ['inter'], 'leaf')).toBe(true);
  });

  it('a leaf issued directly by the anchor is accepted', () => {
    expect(verifyNodeChain(parseChain(x5c('leafDirect')), trusted(anchor('root')), Date.now()).subject).toBe('O=Example\nCN=node-8');
  });

  it('a chain that includes the anchor at the end is accepted', () => {
    expect(verify(x5c('leaf', 'inter', 'root'), trusted(anchor('root')))).toBe('accepted');
  });

  it('a 4-level chain within every pathlen is accepted', () => {
    expect(verify(x5c('leaf4', 'inter2', 'interFree'), trusted(anchor('root')))).toBe('accepted');
  });

  it('picks the anchor the chain leads to among several', () => {
    const id = verifyNodeChain(parseChain(x5c('leaf', 'inter')), trusted(anchor('other'), anchor('strict'), anchor('root', 'the-root')), Date.now());
    expect(id.nodeCA).toBe('the-root');
  });
});

describe('the leaf', () => {
  it('without keyUsage digitalSignature: node_untrusted', () => {
    expect(verify(x5c('leafNoDs', 'inter'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('without any keyUsage: node_untrusted', () => {
    expect(verify(x5c('leafNoKu', 'inter'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('that is a CA: node_untrusted', () => {
    expect(verify(x5c('inter'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('with an unknown critical extension: node_untrusted (RFC 5280 §4.2; openssl refuses it too)', () => {
    expect(opensslVerifies('root', ['inter'], 'leafCritical')).toBe(false);
    expect(verify(x5c('leafCritical', 'inter'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('not yet valid: node_untrusted (now before notBefore), accepted once valid', () => {
    const notBefore = Date.parse(cert('leafShort').validFrom);
    expect(verify(x5c('leafShort', 'inter'), trusted(anchor('root')), notBefore - 1000)).toBe('node_untrusted');
    expect(verify(x5c('leafShort', 'inter'), trusted(anchor('root')), notBefore + 1000)).toBe('accepted');
  });

  it('with a notBefore in the future while its CAs are valid: node_untrusted', () => {
    expect(verify(x5c('leafFuture', 'inter'), trusted(anchor('root')))).toBe('node_untrusted');
    expect(verify(x5c('leafFuture', 'inter'), trusted(anchor('root')), Date.now() + 3 * DAY)).toBe('accepted');
  });

  it('expired: node_untrusted', () => {
    const notAfter = Date.parse(cert('leafShort').validTo);
    expect(verify(x5c('leafShort', 'inter'), trusted(anchor('root')), notAfter)).toBe('accepted');
    expect(verify(x5c('leafShort', 'inter'), trusted(anchor('root')), notAfter + 1000)).toBe('node_untrusted');
    expect(verify(x5c('leafExpired', 'inter'), trusted(anchor('root')))).toBe('node_untrusted');
  });
});

describe('intermediates', () => {
  it('without CA:TRUE: node_untrusted', () => {
    expect(verify(x5c('leafNotCa', 'interNotCa'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('a pathlen:0 intermediate with another intermediate under it: node_untrusted', () => {
    expect(opensslVerifies('root', ['interDeep', 'inter'], 'leafDeep')).toBe(false);
    expect(verify(x5c('leafDeep', 'interDeep', 'inter'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('an intermediate under an anchor with pathlen:0: node_untrusted (openssl refuses it too)', () => {
    expect(verify(x5c('leafDirectStrict'), trusted(anchor('strict')))).toBe('accepted');
    expect(opensslVerifies('strict', ['underStrict'], 'leafUnderStrictInter')).toBe(false);
    expect(verify(x5c('leafUnderStrictInter', 'underStrict'), trusted(anchor('strict')))).toBe('node_untrusted');
  });

  it('in the wrong order: node_untrusted', () => {
    expect(verify(x5c('leaf4', 'interFree', 'inter2'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('missing from the chain: node_untrusted', () => {
    expect(verify(x5c('leaf'), trusted(anchor('root')))).toBe('node_untrusted');
  });
});

describe('the anchor', () => {
  it('a chain to a CA with the same subject but a different key: node_untrusted', () => {
    expect(verify(x5c('leafImpostor', 'impostorInter'), trusted(anchor('root')))).toBe('node_untrusted');
    expect(verify(x5c('leafImpostor', 'impostorInter', 'impostor'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('extra certificates after the anchor: node_untrusted', () => {
    expect(verify(x5c('leaf', 'inter', 'root', 'other'), trusted(anchor('root')))).toBe('node_untrusted');
    expect(verify(x5c('leaf', 'inter', 'root', 'root'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('an unrelated certificate after the last intermediate: node_untrusted', () => {
    expect(verify(x5c('leaf', 'inter', 'other'), trusted(anchor('root')))).toBe('node_untrusted');
  });

  it('an anchor that is not trusted: node_untrusted', () => {
    expect(verify(x5c('leaf', 'inter', 'root'), trusted(anchor('other')))).toBe('node_untrusted');
    expect(verify(x5c('leaf', 'inter'), new Map())).toBe('node_untrusted');
  });

  it('an anchor outside its validity period: node_untrusted', () => {
    // shortRoot lives one day; the leaf it issued lives a year.
    const rootEnd = Date.parse(cert('shortRoot').validTo);
    expect(Date.parse(cert('leafUnderShort').validTo)).toBeGreaterThan(rootEnd + DAY);
    expect(verify(x5c('leafUnderShort'), trusted(anchor('shortRoot')), rootEnd)).toBe('accepted');
    expect(verify(x5c('leafUnderShort'), trusted(anchor('shortRoot')), rootEnd + 1000)).toBe('node_untrusted');
  });

  it('an empty chain: node_untrusted', () => {
    expect(outcome(() => verifyNodeChain([], trusted(anchor('root')), Date.now()))).toBe('node_untrusted');
  });
});

describe('parseChain', () => {
  it('accepts exact DER', () => {
    expect(parseChain(x5c('leaf', 'inter')).map((c) => c.node.subject)).toEqual(['O=Example\nCN=node-1', 'O=Example\nCN=Node Intermediate']);
  });

  it('DER with trailing bytes: evidence_malformed', () => {
    const der = Buffer.concat([cert('leaf').raw, Buffer.from([0])]).toString('base64');
    expect(outcome(() => parseChain([der]))).toBe('evidence_malformed');
  });

  it('not a certificate: evidence_malformed', () => {
    expect(outcome(() => parseChain([Buffer.from('hello').toString('base64')]))).toBe('evidence_malformed');
    expect(outcome(() => parseChain([Buffer.from(pem('leaf')).toString('base64')]))).toBe('evidence_malformed');
  });
});
