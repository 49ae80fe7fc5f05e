/**
 * Where a secret comes from in the config: an environment variable or a file, never the config
 * itself. Resolved once, when the config is parsed, into a Secret that logs and JSON redact.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Secret } from './secret.js';

export const SecretRef = z.union([
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);
export type SecretRef = z.infer<typeof SecretRef>;

/** Reads the secret; a missing variable or unreadable file is a problem (named, never shown). */
export function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv, where: string, baseDir: string, problems: string[]): Secret {
  if ('env' in ref) {
    const v = env[ref.env];
    if (!v) problems.push(`${where}: environment variable ${ref.env} is not set`);
    return new Secret(v ?? '');
  }
  try {
    return new Secret(readFileSync(path.resolve(baseDir, ref.file), 'utf8').trim());
  } catch (e) {
    problems.push(`${where}: cannot read the file ${ref.file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    return new Secret('');
  }
}
