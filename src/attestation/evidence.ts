/**
 * Evidence: a compact JWS signed by the node key, with the node chain in `x5c`. Parsing checks
 * size and shape before anything else; the signature is verified separately, after the nonce
 * has been consumed (see release.ts for the order).
 */
import { compactVerify } from 'jose';
import { BrokerError } from '../errors.js';
import {
  EvidenceHeaderSchema,
  EvidencePayloadSchema,
  MAX_EVIDENCE_BYTES,
  type EvidenceHeader,
  type EvidencePayload,
} from '../protocol.js';
import type { ParsedCert } from './nodeChain.js';

export interface ParsedEvidence {
  compact: string;
  header: EvidenceHeader;
  payload: EvidencePayload;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const malformed = (reason: string, cause?: unknown) => new BrokerError('evidence_malformed', reason, { cause });

function decodeJson(part: string, what: string): unknown {
  if (!B64URL.test(part)) throw malformed(`${what} is not base64url`);
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (e) {
    throw malformed(`${what} is not JSON`, e);
  }
}

export function parseEvidence(compact: unknown): ParsedEvidence {
  if (typeof compact !== 'string') throw malformed('evidence is not a string');
  if (Buffer.byteLength(compact, 'utf8') > MAX_EVIDENCE_BYTES) {
    throw new BrokerError('evidence_too_large', `evidence is ${Buffer.byteLength(compact)} bytes`);
  }
  const parts = compact.split('.');
  if (parts.length !== 3 || !parts[2] || !B64URL.test(parts[2])) throw malformed('evidence is not a compact JWS');
  const header = EvidenceHeaderSchema.safeParse(decodeJson(parts[0]!, 'JWS header'));
  if (!header.success) throw malformed(`JWS header: ${header.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  const payload = EvidencePayloadSchema.safeParse(decodeJson(parts[1]!, 'JWS payload'));
  if (!payload.success) throw malformed(`payload: ${payload.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  return { compact, header: header.data, payload: payload.data };
}

/** Verifies the JWS signature under the leaf certificate's key, with the header's (allow-listed) alg. */
export async function verifyEvidenceSignature(ev: ParsedEvidence, leaf: ParsedCert): Promise<void> {
  try {
    await compactVerify(ev.compact, leaf.node.publicKey, { algorithms: [ev.header.alg] });
  } catch (e) {
    throw new BrokerError('evidence_signature_invalid', `JWS signature does not verify under the leaf key (${(e as Error).name})`, { cause: e });
  }
}
