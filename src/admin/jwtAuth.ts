/**
 * Bearer JWTs from the configured OIDC issuer. jose does the verification (signature against the
 * JWKS, `alg` from the allow-list only, issuer, audience, exp/nbf/iat with a small tolerance, token
 * age); this file adds only what jose cannot know: which claims make principals, that a header or
 * payload with a duplicate member is refused (jose's JSON.parse would keep the last one), and that
 * every failure is the same `unauthorized` to the client with the real reason kept for the log.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../clock.js';
import { parseStrictJson } from '../jose/index.js';
import { ConfigError, type Config } from '../config.js';
import { BrokerError } from '../errors.js';
import type { Caller, Principal } from './principal.js';

export type JwtConfig = NonNullable<Config['admin']['jwt']>;

/** Seconds of clock difference between the issuer and the broker that exp/nbf/iat forgive. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/** A compact JWS longer than this is refused before any parsing. */
export const MAX_TOKEN_CHARS = 8192;
/** Groups beyond this many in one token are ignored (so is every non-string or empty entry). */
export const MAX_GROUPS = 100;
const MAX_CLAIM_CHARS = 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

const unauthorized = (reason: string, cause?: unknown) => new BrokerError('unauthorized', reason, cause === undefined ? undefined : { cause });

/**
 * Verifies a compact JWT and returns who it names. Throws BrokerError('unauthorized'). `reload()`
 * re-reads the JWKS file (SIGHUP), or starts a fresh cache of the JWKS URL; a file that does not
 * read as a JWK Set throws ConfigError and the keys in force stay.
 */
export type JwtVerifier = ((token: string) => Promise<Caller>) & { reload(): void };

export function jwtVerifier(cfg: JwtConfig, clock: Clock): JwtVerifier {
  let keys = keySet(cfg);
  const verify = async (token: string): Promise<Caller> => {
    if (token.length > MAX_TOKEN_CHARS || !COMPACT_JWS.test(token)) throw unauthorized('bearer token is not a compact JWS');
    refuseAmbiguousJson(token);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: cfg.issuer,
        audience: cfg.audience,
        algorithms: [...cfg.algorithms],
        requiredClaims: ['exp', 'iat', 'sub'],
        maxTokenAge: cfg.maxTokenAgeSeconds,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(clock.now()),
      }));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      throw unauthorized(`bearer token refused: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}`, e);
    }
    return callerOf(payload, cfg.groupsClaim);
  };
  return Object.assign(verify, {
    reload: () => {
      keys = keySet(cfg);
    },
  });
}

/** The header and payload must be strict JSON: UTF-8, and no member named twice. */
function refuseAmbiguousJson(token: string): void {
  const [header, payload] = token.split('.') as [string, string];
  for (const [segment, what] of [[header, 'header'], [payload, 'payload']] as const) {
    const parsed = parseStrictJson(Buffer.from(segment, 'base64url'));
    if (!parsed.ok) throw unauthorized(`bearer token ${what} is ${parsed.why}${parsed.key === undefined ? '' : ` ${JSON.stringify(parsed.key)}`}`);
  }
}

function callerOf(payload: Record<string, unknown>, groupsClaim: string): Caller {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_CLAIM_CHARS) throw unauthorized('bearer token "sub" is not a usable string');
  const actor: Principal = `jwt:sub:${sub}`;
  const claim = Object.hasOwn(payload, groupsClaim) ? payload[groupsClaim] : undefined;
  const groups = Array.isArray(claim) ? claim.filter((g): g is string => typeof g === 'string' && g.length > 0 && g.length <= MAX_CLAIM_CHARS) : [];
  const principals: Principal[] = [actor, ...[...new Set(groups)].slice(0, MAX_GROUPS).map((g) => `jwt:group:${g}` as const)];
  return { actor, principals };
}

/** The issuer's keys: a JWKS file read once now, or a JWKS URL that jose fetches and caches. */
function keySet(cfg: JwtConfig): JWTVerifyGetKey {
  if (cfg.jwksUrl !== undefined) {
    const url = new URL(cfg.jwksUrl);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOST.test(url.hostname))) {
      throw new ConfigError([`admin.jwt.jwksUrl: must be https (plain http only on a loopback address), not ${url.protocol}`]);
    }
    return createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  }
  const file = cfg.jwksFile!;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new ConfigError([`admin.jwt.jwksFile: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`]);
  }
  const parsed = parseStrictJson(bytes);
  if (!parsed.ok) {
    throw new ConfigError([`admin.jwt.jwksFile: ${file} is ${parsed.why === 'duplicate member' ? `JSON with a duplicate member ${JSON.stringify(parsed.key)}` : parsed.why}`]);
  }
  const jwks = parsed.value as JSONWebKeySet;
  if (!jwks || typeof jwks !== 'object' || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    throw new ConfigError([`admin.jwt.jwksFile: ${file} is not a JWK Set with at least one key`]);
  }
  // Verification needs public keys only; a private or symmetric key here is a mistake worth stopping for.
  jwks.keys.forEach((k, i) => {
    if (k.kty === 'oct' || 'd' in k) throw new ConfigError([`admin.jwt.jwksFile: ${file} keys[${i}] is a private or symmetric key; give the issuer's public keys only`]);
  });
  try {
    return createLocalJWKSet(jwks);
  } catch (e) {
    throw new ConfigError([`admin.jwt.jwksFile: ${file}: ${(e as Error).message}`]);
  }
}
