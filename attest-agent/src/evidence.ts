/**
 * Builds the evidence: a compact JWS signed by the node key, header {alg, typ, x5c}, payload per
 * EvidencePayloadSchema. The payload is validated against the shared schema before signing, so a
 * malformed request fails here with a local error rather than at the broker. The signature is
 * made synchronously by src/jose (the broker's own JOSE code), not by the jose library.
 */
import { compactSign } from '../../src/jose/index.js';
import {
  EVIDENCE_TYP,
  EvidencePayloadSchema,
  MAX_EVIDENCE_BYTES,
  PROTOCOL_VERSION,
  type EvidenceHeader,
  type EvidencePayload,
  type RecipientJwk,
} from '../../src/protocol.js';
import { AgentError, oneLine } from './errors.js';
import type { NodeIdentity } from './nodeIdentity.js';
import type { BinarySignature, ImageSignature } from './signatures.js';

/** What the agent claims about the workload. */
export interface WorkloadClaims {
  binary: { path: string; sha256: string; signatures: BinarySignature[] };
  image?: { ref?: string; digest: string; signatures: ImageSignature[] };
}

export interface KeyRequest { name: string; version?: number }

export interface EvidenceInput {
  node: NodeIdentity;
  nonce: string;
  workload: WorkloadClaims;
  keys: KeyRequest[];
  recipient: RecipientJwk;
  /** Defaults to the current time. */
  now?: Date;
}

export function buildPayload(input: Omit<EvidenceInput, 'node'>): EvidencePayload {
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const draft = {
    ver: PROTOCOL_VERSION,
    nonce: input.nonce,
    iat,
    workload: input.workload,
    keys: input.keys.map((k) => (k.version === undefined ? { name: k.name } : { name: k.name, version: k.version })),
    cnf: { jwk: input.recipient },
  };
  const parsed = EvidencePayloadSchema.safeParse(draft);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') || 'payload';
    throw new AgentError('config', `evidence would be invalid at ${where}: ${oneLine(issue?.message ?? 'schema')}`);
  }
  return parsed.data;
}

export async function buildEvidence(input: EvidenceInput): Promise<string> {
  const payload = buildPayload(input);
  const header: EvidenceHeader = { alg: input.node.alg, typ: EVIDENCE_TYP, x5c: input.node.x5c };
  const jws = compactSign(header, Buffer.from(JSON.stringify(payload), 'utf8'), input.node.privateKey);
  if (Buffer.byteLength(jws) > MAX_EVIDENCE_BYTES) {
    throw new AgentError('evidence_too_large', `evidence is ${Buffer.byteLength(jws)} bytes, limit ${MAX_EVIDENCE_BYTES}`);
  }
  return jws;
}
