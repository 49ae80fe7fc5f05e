/**
 * The JSON body of a hot-route request (hotRoutes.ts), read as bytes from node:http and parsed
 * strictly (UTF-8, no duplicate members: JSON.parse would keep the last of two `evidence`
 * members). What it accepts:
 *   - `Content-Type: application/json`, with a UTF-8 charset if one is named (415 otherwise);
 *   - no `Content-Encoding` but `identity` (415: a compressed body is refused, never inflated);
 *   - at most `limit` bytes, whether announced by Content-Length or streamed (413 `tooLarge`);
 *   - a body that is strict JSON (400 request_malformed otherwise).
 * No body at all is `undefined` when the route allows it, 400 request_malformed when it needs one.
 */
import type { IncomingMessage } from 'node:http';
import { BrokerError } from '../errors.js';
import { parseStrictJson } from '../jose/index.js';
import type { ProblemCode } from '../protocol.js';

export interface BodyRules {
  limit: number;
  /** The code of a body over the limit. */
  tooLarge: ProblemCode;
  required: boolean;
}

export interface JsonBody {
  value: unknown;
  /** Bytes received. */
  bytes: number;
}

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)/i;

export const hasBody = (req: IncomingMessage): boolean =>
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;

export async function readJsonBody(req: IncomingMessage, rules: BodyRules): Promise<JsonBody | undefined> {
  const type = req.headers['content-type'];
  if (!hasBody(req)) {
    if (!rules.required) return undefined;
    throw new BrokerError('request_malformed', 'a JSON body is required');
  }
  const mediaType = type?.split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    if (type) throw new BrokerError('unsupported_media_type', `content-type ${type.slice(0, 100)}`);
    throw new BrokerError('request_malformed', 'a JSON body is required');
  }
  const charset = CHARSET.exec(type!)?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') throw new BrokerError('unsupported_media_type', `charset ${charset.slice(0, 40)}`);
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') throw new BrokerError('unsupported_media_type', `content-encoding ${encoding.slice(0, 40)}`);
  const announced = Number(req.headers['content-length'] ?? 0);
  if (announced > rules.limit) throw new BrokerError(rules.tooLarge, `request body of ${announced} bytes announced, over the limit`);

  const bytes = await readAll(req, rules);
  const parsed = parseStrictJson(bytes);
  if (!parsed.ok) throw new BrokerError('request_malformed', `body is ${parsed.why}${parsed.key === undefined ? '' : ` ${JSON.stringify(parsed.key)}`}`);
  return { value: parsed.value, bytes: bytes.length };
}

function readAll(req: IncomingMessage, rules: BodyRules): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (e?: BrokerError) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (e) reject(e);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    };
    const onData = (c: Buffer) => {
      length += c.length;
      if (length > rules.limit) done(new BrokerError(rules.tooLarge, 'request body over the limit'));
      else chunks.push(c);
    };
    const onEnd = () => done();
    const onError = () => done(new BrokerError('request_malformed', 'request body could not be read'));
    const onAborted = () => done(new BrokerError('request_malformed', 'request aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
