/**
 * Client certificates for admin callers. The broker's one HTTPS server asks every client for a
 * certificate but lets the handshake finish without one (agents have none), so OpenSSL's verdict
 * arrives as `socket.authorized`. A caller is accepted only when OpenSSL accepted the chain against
 * the admin CA *and* the chain checks out again here, against the same CA, at the broker's clock:
 * a second, independent look, as nodeChain.ts does for node certificates.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import type { Clock } from '../clock.js';
import { ConfigError, type Config } from '../config.js';
import { BrokerError } from '../errors.js';
import type { Caller, Principal } from './principal.js';

export type MtlsConfig = NonNullable<Config['admin']['mtls']>;

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** Certificates looked at in the presented chain, leaf included. */
export const MAX_CHAIN = 5;
const MAX_SAN_URIS = 32;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

const unauthorized = (reason: string) => new BrokerError('unauthorized', reason);

/** Options to merge into https.createServer when admin.mtls is set; `{}` otherwise. */
export function adminTlsOptions(admin: Config['admin']): { requestCert?: true; rejectUnauthorized?: false; ca?: string } {
  if (!admin.enabled || !admin.mtls) return {};
  readAdminCa(admin.mtls.ca); // fail at startup, not at the first admin request
  return { requestCert: true, rejectUnauthorized: false, ca: readFileSync(admin.mtls.ca, 'utf8') };
}

/** The admin CA file: one or more PEM CA certificates. */
export function readAdminCa(file: string): X509Certificate[] {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`admin.mtls.ca: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new ConfigError([`admin.mtls.ca: ${file} holds no PEM certificate`]);
  return blocks.map((b, i) => {
    let c: X509Certificate;
    try {
      c = new X509Certificate(b);
    } catch (e) {
      throw new ConfigError([`admin.mtls.ca: ${file} certificate ${i + 1} does not parse (${(e as Error).message})`]);
    }
    if (!c.ca) throw new ConfigError([`admin.mtls.ca: ${file} certificate ${i + 1} (${oneLine(c.subject)}) is not a CA`]);
    return c;
  });
}

/** Authenticates the TLS peer of a request. Throws BrokerError('unauthorized'). */
export type MtlsVerifier = (socket: TLSSocket) => Caller;

export function mtlsVerifier(cfg: MtlsConfig, clock: Clock): MtlsVerifier {
  const anchors = readAdminCa(cfg.ca);
  return (socket) => {
    const chain = presentedChain(socket);
    if (chain.length === 0) throw unauthorized('no client certificate');
    if (socket.authorized !== true) throw unauthorized(`client certificate refused by TLS: ${String(socket.authorizationError ?? 'not authorized')}`);
    const [leaf, ...rest] = chain as [X509Certificate, ...X509Certificate[]];
    verifyClientChain(leaf, rest, anchors, clock.now());
    return callerOf(leaf);
  };
}

/** True when the socket is TLS and the peer sent a certificate. */
export function hasPeerCertificate(socket: unknown): socket is TLSSocket {
  const s = socket as Partial<TLSSocket>;
  if (s.encrypted !== true || typeof s.getPeerCertificate !== 'function') return false;
  return Buffer.isBuffer((s.getPeerCertificate(false) as { raw?: unknown } | null)?.raw);
}

/** Leaf first, then what follows it (sent intermediates and the anchor OpenSSL found), no repeats. */
function presentedChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (c && Buffer.isBuffer(c.raw) && out.length < MAX_CHAIN + 1 && !out.some((o) => o.raw.equals(c!.raw))) {
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}

/**
 * Checks that `leaf` is an end-entity client certificate valid at `now` that chains, through CA
 * certificates from `presented`, to one of `anchors`. Throws BrokerError('unauthorized').
 */
export function verifyClientChain(leaf: X509Certificate, presented: readonly X509Certificate[], anchors: readonly X509Certificate[], now: number): void {
  const ext = new x509.X509Certificate(leaf.raw);
  if (ext.getExtension(x509.BasicConstraintsExtension)?.ca === true) throw unauthorized('client certificate is a CA');
  const ku = ext.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) throw unauthorized('client certificate keyUsage lacks digitalSignature');
  const eku = ext.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.map(String).includes(CLIENT_AUTH)) throw unauthorized('client certificate extendedKeyUsage lacks clientAuth');
  checkValidity(leaf, now, 'client certificate');

  const used = new Set<X509Certificate>();
  let cur = leaf;
  for (let below = 0; below < MAX_CHAIN; below++) {
    const anchor = anchors.find((a) => issuedBy(cur, a));
    if (anchor) {
      checkIssuer(anchor, below, now, `admin CA ${oneLine(anchor.subject)}`);
      return;
    }
    const next = presented.find((p) => !used.has(p) && !p.raw.equals(cur.raw) && issuedBy(cur, p));
    if (!next) throw unauthorized(`${cur === leaf ? 'client certificate' : `intermediate ${oneLine(cur.subject)}`} does not chain to the admin CA`);
    checkIssuer(next, below, now, `intermediate ${oneLine(next.subject)}`);
    used.add(next);
    cur = next;
  }
  throw unauthorized(`client certificate chain longer than ${MAX_CHAIN}`);
}

/** An issuer: a CA allowed to sign certificates, within its pathLen, valid at `now`. */
function checkIssuer(c: X509Certificate, intermediatesBelow: number, now: number, what: string): void {
  const ext = new x509.X509Certificate(c.raw);
  const bc = ext.getExtension(x509.BasicConstraintsExtension);
  const ku = ext.getExtension(x509.KeyUsagesExtension);
  if (bc?.ca !== true || (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0)) throw unauthorized(`${what} is not a CA allowed to sign certificates`);
  if (bc.pathLength !== undefined && intermediatesBelow > bc.pathLength) throw unauthorized(`${what} pathLen exceeded`);
  checkValidity(c, now, what);
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

function checkValidity(c: X509Certificate, now: number, what: string): void {
  if (!(Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo))) throw unauthorized(`${what} is outside its validity period`);
}

function callerOf(leaf: X509Certificate): Caller {
  const san = new x509.X509Certificate(leaf.raw).getExtension(x509.SubjectAlternativeNameExtension);
  const uris = (san?.names.items ?? []).filter((n) => n.type === 'url' && n.value.length > 0).map((n) => `cert:uri:${n.value}` as const);
  const subject: Principal[] = leaf.subject ? [`cert:subject:${leaf.subject}`] : [];
  const principals = [...subject, ...uris.slice(0, MAX_SAN_URIS)];
  const actor = principals[0];
  if (!actor) throw unauthorized('client certificate has neither a subject nor a SAN URI');
  return { actor, principals };
}

const oneLine = (dn: string) => dn.replace(/\n/g, ', ');
