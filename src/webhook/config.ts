/**
 * A webhook endpoint in the config, for every part of the broker that calls one (alarms, audit
 * witnesses): the URL, the `whsec_…` secret from env or a file, an optional CA, and delivery bounds.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { resolveSecret, SecretRef } from '../secretRef.js';
import { webhookKey } from './signing.js';
import { WEBHOOK_DEFAULTS, type WebhookOptions } from './sender.js';

export const WebhookTarget = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** `whsec_<base64>` (Standard Webhooks), from `{ env }` or `{ file }`. */
  secret: SecretRef,
  /** PEM CA file for an https endpoint with a private CA. */
  ca: z.string().min(1).optional(),
  timeoutMs: z.number().int().min(100).max(60_000).default(WEBHOOK_DEFAULTS.timeoutMs),
  maxQueue: z.number().int().min(1).max(100_000).default(WEBHOOK_DEFAULTS.maxQueue),
  maxAttempts: z.number().int().min(1).max(100).default(WEBHOOK_DEFAULTS.maxAttempts),
});
export type WebhookTarget = z.infer<typeof WebhookTarget>;

/** Resolves the secret and CA (problems are collected, as the config does), ready for WebhookSender. */
export function webhookOptions(t: WebhookTarget, env: NodeJS.ProcessEnv, where: string, configDir: string, problems: string[]): WebhookOptions {
  const secret = resolveSecret(t.secret, env, `${where}.secret`, configDir, problems);
  if (secret.reveal()) {
    try {
      webhookKey(secret);
    } catch (e) {
      problems.push(`${where}.secret: ${(e as Error).message}`);
    }
  }
  let ca: string | undefined;
  if (t.ca) {
    try {
      ca = readFileSync(path.resolve(configDir, t.ca), 'utf8');
    } catch (e) {
      problems.push(`${where}.ca: cannot read ${t.ca} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return {
    url: t.url,
    secret,
    ...(ca ? { ca } : {}),
    timeoutMs: t.timeoutMs,
    maxQueue: t.maxQueue,
    maxAttempts: t.maxAttempts,
    backoffMs: WEBHOOK_DEFAULTS.backoffMs,
    maxBackoffMs: WEBHOOK_DEFAULTS.maxBackoffMs,
  };
}
