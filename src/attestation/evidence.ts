/**
 * Evidence: a compact JWS signed by the node key, with the node chain in `x5c`. Parsing checks
 * size and shape before anything else — the header and payload are strict JSON (UTF-8, no
 * duplicate members) and must match the protocol schemas, `alg` must be allow-listed and `crit`
 * is refused — and keeps the decoded JWS, so the signature is verified later (see release.ts for
 * the order) without decoding anything twice. src/jose does the JOSE work, synchronously.
 */
import type { KeyObject } from 'node:crypto';
import { BrokerError } from '../errors.js';
import { parseCompactJws, parseStrictJson, verifyParsedJws, type ParsedJws } from '../jose/index.js';
import {
  EVIDENCE_ALGS,
  EvidenceHeaderSchema,
  EvidencePayloadSchema,
  MAX_EVIDENCE_BYTES,
  type EvidenceHeader,
  type EvidencePayload,
} from '../protocol.js';

export interface ParsedEvidence {
  compact: string;
  header: EvidenceHeader;
  payload: EvidencePayload;
  /** The decoded JWS, for verifyEvidenceSignature. */
  jws: ParsedJws;
}

const malformed = (reason: string, cause?: unknown) => new BrokerError('evidence_malformed', reason, { cause });
const issues = (e: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> }) =>
  e.issues.map((i) => `${i.path.map(String).join('.')} ${i.message}`).join('; ');

export function parseEvidence(compact: unknown): ParsedEvidence {
  if (typeof compact !== 'string') throw malformed('evidence is not a string');
  if (Buffer.byteLength(compact, 'utf8') > MAX_EVIDENCE_BYTES) {
    throw new BrokerError('evidence_too_large', `evidence is ${Buffer.byteLength(compact)} bytes`);
  }
  let jws: ParsedJws;
  try {
    jws = parseCompactJws(compact, EVIDENCE_ALGS);
  } catch (e) {
    throw malformed(`evidence: ${(e as Error).message}`, e);
  }
  const header = EvidenceHeaderSchema.safeParse(jws.header);
  if (!header.success) throw malformed(`JWS header: ${issues(header.error)}`);
  const json = parseStrictJson(jws.payload);
  if (!json.ok) throw malformed(`JWS payload is ${json.why}${json.key === undefined ? '' : ` ${JSON.stringify(json.key)}`}`);
  const payload = EvidencePayloadSchema.safeParse(json.value);
  if (!payload.success) throw malformed(`payload: ${issues(payload.error)}`);
  return { compact, header: header.data, payload: payload.data, jws };
}

/** Verifies the JWS signature under the leaf certificate's key, with the header's (allow-listed) alg. */
export function verifyEvidenceSignature(ev: ParsedEvidence, leaf: { publicKey: KeyObject }): void {
  try {
    verifyParsedJws(ev.jws, leaf.publicKey);
  } catch (e) {
    throw new BrokerError('evidence_signature_invalid', `JWS signature does not verify under the leaf key (${(e as Error).message})`, { cause: e });
  }
}
