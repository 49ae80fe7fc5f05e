/**
 * Node identity: the evidence's x5c chain must lead to a node CA that the policy trusts. Each
 * certificate is checked for its validity period and signature; intermediates must be CAs that
 * may sign certificates; the leaf must be an end-entity key allowed to sign (digitalSignature).
 */
import { createHash, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { BrokerError } from '../errors.js';
import type { NodeIdentity } from '../policy/evaluate.js';
import type { NodeCA } from '../policy/types.js';

export interface ParsedCert {
  node: X509Certificate;
  ext: x509.X509Certificate;
}

const untrusted = (reason: string, cause?: unknown) => new BrokerError('node_untrusted', reason, { cause });

export function parseChain(x5c: readonly string[]): ParsedCert[] {
  return x5c.map((b64, i) => {
    try {
      const der = Buffer.from(b64, 'base64');
      const node = new X509Certificate(der);
      // Exact DER only: no trailing bytes after the certificate.
      if (node.raw.length !== der.length) throw new Error('trailing data after the certificate');
      return { node, ext: new x509.X509Certificate(der) };
    } catch (e) {
      throw new BrokerError('evidence_malformed', `x5c[${i}] is not a DER certificate`, { cause: e });
    }
  });
}

function withinValidity(c: X509Certificate, now: number): boolean {
  return Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
}

function keyUsageAllows(ext: x509.X509Certificate, flag: x509.KeyUsageFlags): boolean | undefined {
  const ku = ext.getExtension(x509.KeyUsagesExtension);
  return ku ? (ku.usages & flag) !== 0 : undefined;
}

function isCa(ext: x509.X509Certificate): boolean {
  return ext.getExtension(x509.BasicConstraintsExtension)?.ca === true;
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/** Verifies the chain at time `now` and returns who the node is. Throws node_untrusted. */
export function verifyNodeChain(chain: ParsedCert[], trusted: ReadonlyMap<string, NodeCA>, now: number): NodeIdentity {
  const leaf = chain[0];
  if (!leaf) throw untrusted('empty chain');
  if (isCa(leaf.ext)) throw untrusted('leaf certificate is a CA');
  if (keyUsageAllows(leaf.ext, x509.KeyUsageFlags.digitalSignature) !== true) {
    throw untrusted('leaf certificate lacks keyUsage digitalSignature');
  }
  for (let i = 0; i < chain.length; i++) {
    const cur = chain[i]!;
    if (!withinValidity(cur.node, now)) throw untrusted(`certificate ${i} (${cur.node.subject.replace(/\n/g, ', ')}) is outside its validity period`);
    if (i > 0) {
      if (!isCa(cur.ext) || keyUsageAllows(cur.ext, x509.KeyUsageFlags.keyCertSign) === false) {
        throw untrusted(`certificate ${i} is not a CA allowed to sign certificates`);
      }
      const pathLen = cur.ext.getExtension(x509.BasicConstraintsExtension)?.pathLength;
      if (pathLen !== undefined && i - 1 > pathLen) throw untrusted(`certificate ${i} pathLen constraint exceeded`);
    }
    for (const ca of trusted.values()) {
      const isAnchor = cur.node.raw.equals(ca.cert.raw);
      if (isAnchor || issuedBy(cur.node, ca.cert)) {
        if (!withinValidity(ca.cert, now)) throw untrusted(`trusted node CA ${ca.name} is outside its validity period`);
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
  const san = leaf.ext.getExtension(x509.SubjectAlternativeNameExtension);
  const sanUris = (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  return { nodeCA, subject: leaf.node.subject, sanUris, fingerprint: createHash('sha256').update(leaf.node.raw).digest('hex') };
}
