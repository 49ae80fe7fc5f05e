/**
 * Node identity: the evidence's x5c chain must lead to a node CA that the policy trusts. Each
 * certificate is checked for its validity period and signature; intermediates must be CAs that
 * may sign certificates; the leaf must be an end-entity key allowed to sign (digitalSignature).
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { BrokerError } from '../errors.js';
import type { NodeIdentity } from '../policy/evaluate.js';
import type { NodeCA } from '../policy/types.js';
import { normalizeSerial } from '../limits/nodes.js';
import { Lru } from '../lru.js';

/** A certificate and the facts the chain check needs, extracted once when it is parsed. */
export interface ParsedCert {
  node: X509Certificate;
  /** The subject public key, made once (X509Certificate.publicKey builds a new KeyObject per read). */
  publicKey: KeyObject;
  notBefore: number;
  notAfter: number;
  ca: boolean;
  pathLength?: number;
  /** Key usage bits, or undefined when the certificate has no keyUsage extension. */
  keyUsage?: number;
  sanUris: string[];
  fingerprint: string;
  /** Serial number, normalised as the policy's deny-list compares it. */
  serial: string;
  /** OIDs of critical extensions this check does not understand (RFC 5280 §4.2: refuse). */
  unknownCritical: string[];
}

/** Critical extensions the chain check processes: basicConstraints, keyUsage, EKU, SAN. */
const UNDERSTOOD_CRITICAL = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17']);

const untrusted = (reason: string, cause?: unknown) => new BrokerError('node_untrusted', reason, { cause });

/**
 * Parsed certificates by their base64 DER. A node presents the same chain at every start, and
 * parsing X.509 extensions costs more than the rest of the chain check; the checks themselves
 * (validity at `now`, signatures, anchors) still run on every request.
 */
const parsed = new Lru<string, ParsedCert>(2048);

function parseCert(b64: string): ParsedCert {
  const hit = parsed.get(b64);
  if (hit) return hit;
  const der = Buffer.from(b64, 'base64');
  // Canonical base64 only, as for publisher chains: one certificate, one spelling.
  if (der.toString('base64') !== b64) throw new Error('not canonical base64');
  const node = new X509Certificate(der);
  // Exact DER only: no trailing bytes after the certificate.
  if (node.raw.length !== der.length) throw new Error('trailing data after the certificate');
  const ext = new x509.X509Certificate(der);
  const bc = ext.getExtension(x509.BasicConstraintsExtension);
  const ku = ext.getExtension(x509.KeyUsagesExtension);
  const san = ext.getExtension(x509.SubjectAlternativeNameExtension);
  const cert: ParsedCert = {
    node,
    publicKey: node.publicKey,
    notBefore: Date.parse(node.validFrom),
    notAfter: Date.parse(node.validTo),
    ca: bc?.ca === true,
    ...(bc?.pathLength !== undefined ? { pathLength: bc.pathLength } : {}),
    ...(ku ? { keyUsage: ku.usages } : {}),
    sanUris: (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    serial: normalizeSerial(node.serialNumber),
    unknownCritical: ext.extensions.filter((e) => e.critical && !UNDERSTOOD_CRITICAL.has(e.type)).map((e) => e.type),
  };
  parsed.set(b64, cert);
  return cert;
}

/** The trust anchors' own facts, parsed once per policy certificate. */
const anchors = new WeakMap<X509Certificate, ParsedCert>();
function anchorFacts(ca: NodeCA): ParsedCert {
  let facts = anchors.get(ca.cert);
  if (!facts) anchors.set(ca.cert, (facts = parseCert(ca.cert.raw.toString('base64'))));
  return facts;
}

export function parseChain(x5c: readonly string[]): ParsedCert[] {
  return x5c.map((b64, i) => {
    try {
      return parseCert(b64);
    } catch (e) {
      throw new BrokerError('evidence_malformed', `x5c[${i}] is not a canonical base64 DER certificate (${(e as Error).message})`, { cause: e });
    }
  });
}

const keyUsageAllows = (c: ParsedCert, flag: x509.KeyUsageFlags): boolean | undefined =>
  c.keyUsage === undefined ? undefined : (c.keyUsage & flag) !== 0;

/**
 * Certificate signatures that verified, by (child, issuer) DER. A signature check is a pure
 * function of the two certificates; validity periods and trust anchors are still checked on
 * every request. Only successes are kept, in a bounded LRU.
 */
const signedBy = new Lru<string, true>(4096);

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  const key = `${child.fingerprint256}/${parent.fingerprint256}`;
  if (signedBy.get(key)) return true;
  const ok = child.checkIssued(parent) && child.verify(parent.publicKey);
  if (ok) signedBy.set(key, true);
  return ok;
}

/** Verifies the chain at time `now` and returns who the node is. Throws node_untrusted. */
export function verifyNodeChain(chain: ParsedCert[], trusted: ReadonlyMap<string, NodeCA>, now: number): NodeIdentity {
  const leaf = chain[0];
  if (!leaf) throw untrusted('empty chain');
  if (leaf.ca) throw untrusted('leaf certificate is a CA');
  if (keyUsageAllows(leaf, x509.KeyUsageFlags.digitalSignature) !== true) {
    throw untrusted('leaf certificate lacks keyUsage digitalSignature');
  }
  for (let i = 0; i < chain.length; i++) {
    const cur = chain[i]!;
    if (cur.unknownCritical.length) throw untrusted(`certificate ${i} has unknown critical extension(s) ${cur.unknownCritical.join(', ')}`);
    if (now < cur.notBefore || now > cur.notAfter) throw untrusted(`certificate ${i} (${cur.node.subject.replace(/\n/g, ', ')}) is outside its validity period`);
    if (i > 0) {
      if (!cur.ca || keyUsageAllows(cur, x509.KeyUsageFlags.keyCertSign) === false) {
        throw untrusted(`certificate ${i} is not a CA allowed to sign certificates`);
      }
      if (cur.pathLength !== undefined && i - 1 > cur.pathLength) throw untrusted(`certificate ${i} pathLen constraint exceeded`);
    }
    for (const ca of trusted.values()) {
      const isAnchor = cur.node.raw.equals(ca.cert.raw);
      if (isAnchor || issuedBy(cur.node, ca.cert)) {
        const anchor = anchorFacts(ca);
        if (now < anchor.notBefore || now > anchor.notAfter) throw untrusted(`trusted node CA ${ca.name} is outside its validity period`);
        // Intermediates between the leaf and the anchor: certificates 1..i, less the anchor itself.
        const below = isAnchor ? i - 1 : i;
        const anchorPathLen = anchor.pathLength;
        if (anchorPathLen !== undefined && below > anchorPathLen) {
          throw untrusted(`node CA ${ca.name} allows ${anchorPathLen} intermediate(s), the chain has ${below}`);
        }
        // The chain must be used whole: nothing may follow but the anchor itself.
        const rest = chain.slice(i + 1);
        if (rest.length > 1 || (rest.length === 1 && (isAnchor || !rest[0]!.node.raw.equals(ca.cert.raw)))) {
          throw untrusted(`x5c carries ${rest.length} certificate(s) beyond the trusted node CA ${ca.name}`);
        }
        return identity(leaf, ca.name);
      }
    }
    const next = chain[i + 1];
    if (!next) break;
    if (!issuedBy(cur.node, next.node)) throw untrusted(`certificate ${i} is not signed by certificate ${i + 1}`);
  }
  throw untrusted('chain does not lead to a trusted node CA');
}

function identity(leaf: ParsedCert, nodeCA: string): NodeIdentity {
  return { nodeCA, subject: leaf.node.subject, sanUris: leaf.sanUris, fingerprint: leaf.fingerprint, serial: leaf.serial };
}
