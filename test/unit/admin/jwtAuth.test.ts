/**
 * The bearer-token verifier on its own: which claims become principals, and the JWKS sources it
 * refuses at startup. Tokens are signed with jose at test time; time comes from a ManualClock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { jwtVerifier, MAX_GROUPS, type JwtConfig } from '../../../src/admin/jwtAuth.js';
import { ManualClock } from '../../../src/clock.js';
import { ConfigError } from '../../../src/config.js';
import { BrokerError } from '../../../src/errors.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'keyanchor-admin';
let dir: string;
let key: CryptoKey;
let cfg: JwtConfig;
const clock = new ManualClock(Date.UTC(2030, 0, 1));
const nowS = () => Math.floor(clock.now() / 1000);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-jwt-'));
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  cfg = { issuer: ISSUER, audience: AUDIENCE, jwksFile: path.join(dir, 'jwks.json'), groupsClaim: 'groups', algorithms: ['ES256'], maxTokenAgeSeconds: 3600 };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sign = (claims: JWTPayload) =>
  new SignJWT({ iss: ISSUER, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(key);

describe('jwtVerifier principals', () => {
  it('the subject is the actor; string groups become jwt:group principals', async () => {
    const verify = jwtVerifier(cfg, clock);
    const c = await verify(await sign({ sub: 'alice@example.com', groups: ['payments-eng', 7, null, { a: 1 }, '', 'payments-eng', 'secops'] }));
    expect(c).toEqual({ actor: 'jwt:sub:alice@example.com', principals: ['jwt:sub:alice@example.com', 'jwt:group:payments-eng', 'jwt:group:secops'] });
  });
  it('reads the configured groups claim only, and only as an array', async () => {
    const verify = jwtVerifier({ ...cfg, groupsClaim: 'roles' }, clock);
    expect((await verify(await sign({ sub: 'a', groups: ['x'], roles: ['y'] }))).principals).toEqual(['jwt:sub:a', 'jwt:group:y']);
    expect((await verify(await sign({ sub: 'a', roles: 'y' }))).principals).toEqual(['jwt:sub:a']);
  });
  it(`keeps at most ${MAX_GROUPS} groups`, async () => {
    const groups = Array.from({ length: 150 }, (_, i) => `g${i}`);
    const c = await jwtVerifier(cfg, clock)(await sign({ sub: 'a', groups }));
    expect(c.principals).toHaveLength(1 + MAX_GROUPS);
    expect(c.principals.at(-1)).toBe(`jwt:group:g${MAX_GROUPS - 1}`);
  });
  it('uses the injected clock: a token expires when the clock moves past exp + 30 s tolerance', async () => {
    const verify = jwtVerifier(cfg, clock);
    const t = await sign({ sub: 'a' });
    clock.advance(320_000);
    await expect(verify(t)).resolves.toMatchObject({ actor: 'jwt:sub:a' });
    clock.advance(20_000);
    const err = await verify(t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).code).toBe('unauthorized');
    expect((err as BrokerError).reason).toMatch(/ERR_JWT_EXPIRED/);
  });
  it('refuses a non-string subject', async () => {
    const err = await jwtVerifier(cfg, clock)(await sign({ sub: 42 as never })).catch((e: unknown) => e);
    expect((err as BrokerError).code).toBe('unauthorized');
  });
});

describe('JWKS sources refused at startup', () => {
  const withFile = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text);
    return { ...cfg, jwksFile: path.join(dir, name) };
  };
  it('a JWKS holding a private key', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const text = JSON.stringify({ keys: [await exportJWK(privateKey)] });
    expect(() => jwtVerifier(withFile('priv.json', text), clock)).toThrow(/private or symmetric/);
  });
  it('a JWKS holding a symmetric key', () => {
    expect(() => jwtVerifier(withFile('oct.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'AAAA' }] })), clock)).toThrow(/private or symmetric/);
  });
  it('not a JWK Set, or not JSON, or missing', () => {
    expect(() => jwtVerifier(withFile('empty.json', '{"keys": []}'), clock)).toThrow(ConfigError);
    expect(() => jwtVerifier(withFile('bad.json', 'not json'), clock)).toThrow(ConfigError);
    expect(() => jwtVerifier({ ...cfg, jwksFile: path.join(dir, 'missing.json') }, clock)).toThrow(ConfigError);
  });
  it('a JWKS file naming a member twice (two "keys": which would a parser keep?)', () => {
    const good = readFileSync(cfg.jwksFile!, 'utf8');
    const twice = good.replace('{', '{"keys":[{"kty":"oct","k":"AAAA"}],');
    expect(() => jwtVerifier(withFile('twice.json', twice), clock)).toThrow(/duplicate member "keys"/);
  });
  it('a JWKS URL over plain http, unless on loopback', () => {
    const { jwksFile: _f, ...rest } = cfg;
    expect(() => jwtVerifier({ ...rest, jwksUrl: 'http://idp.example/jwks' }, clock)).toThrow(/must be https/);
    expect(() => jwtVerifier({ ...rest, jwksUrl: 'http://127.0.0.1:9/jwks' }, clock)).not.toThrow();
    expect(() => jwtVerifier({ ...rest, jwksUrl: 'https://idp.example/jwks' }, clock)).not.toThrow();
  });
});
