/**
 * Standard Webhooks signing (https://www.standardwebhooks.com, v1): the signature is
 * `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`, where the key is the
 * base64 after the `whsec_` prefix of the endpoint's secret. Any receiver's library verifies it.
 */
import { createHmac } from 'node:crypto';
import type { Secret } from '../secret.js';

const PREFIX = 'whsec_';

/** The HMAC key of a `whsec_<base64>` secret; throws (naming no part of it) when malformed. */
export function webhookKey(secret: Secret): Buffer {
  const text = secret.reveal().trim();
  const b64 = text.startsWith(PREFIX) ? text.slice(PREFIX.length) : '';
  const key = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.toString('base64') !== b64 || key.length < 24) {
    throw new Error('a webhook secret is "whsec_" followed by the base64 of at least 24 random bytes');
  }
  return key;
}

/** The `webhook-signature` header value for one delivery. */
export function signWebhook(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}
