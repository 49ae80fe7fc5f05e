/**
 * The /v1/attest body, read as bytes and parsed strictly (UTF-8, no duplicate members) instead of
 * by express.json, whose JSON.parse keeps the last of two `evidence` members. Same limit and
 * media type as before: over the limit is 413 (see problem.ts), another media type 415.
 */
import express, { type Request } from 'express';
import { BrokerError } from '../errors.js';
import { parseStrictJson } from '../jose/index.js';
import { MAX_EVIDENCE_BYTES } from '../protocol.js';

export const rawJsonBody = express.raw({ limit: MAX_EVIDENCE_BYTES + 4096, type: 'application/json' });

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)/i;

/** The parsed body of a request that went through `rawJsonBody`. */
export function strictJsonBody(req: Request): unknown {
  const type = req.headers['content-type'];
  if (!Buffer.isBuffer(req.body)) {
    if (type) throw new BrokerError('unsupported_media_type', `content-type ${type}`);
    throw new BrokerError('request_malformed', 'a JSON body is required');
  }
  const charset = CHARSET.exec(type ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') throw new BrokerError('unsupported_media_type', `charset ${charset}`);
  const parsed = parseStrictJson(req.body);
  if (!parsed.ok) throw new BrokerError('request_malformed', `body is ${parsed.why}${parsed.key === undefined ? '' : ` ${JSON.stringify(parsed.key)}`}`);
  return parsed.value;
}
