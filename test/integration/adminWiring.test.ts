/** The admin API as the broker mounts it: off by default (404), authenticated when on. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { assembleBroker } from '../../src/broker.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

let w: World | undefined;
afterEach(() => w?.cleanup());

describe('admin API wiring', () => {
  it('is not mounted unless enabled', async () => {
    w = await makeWorld();
    const b = await assembleBroker(w.config);
    const r = await request(b.app).get('/v1/admin/keys');
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 404, code: 'not_found' });
    await b.close();
  });

  it('authenticates bearer JWTs against the configured JWKS and authorizes by policy team', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const jwksDir = mkdtempSync(path.join(tmpdir(), 'keyanchor-jwks-'));
    const jwksFile = path.join(jwksDir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
    w = await makeWorld({ configExtra: { admin: { enabled: true, jwt: { issuer: 'https://idp.test', audience: 'keyanchor', jwksFile } } } });
    writeFileSync(path.join(w.policyDir, 'teams.yaml'), 'teams:\n  - name: team\n    keyPrefixes: ["team/"]\n    members: ["jwt:group:team-owners"]\n');
    const b = await assembleBroker(w.config);
    const token = (groups: string[]) =>
      new SignJWT({ groups }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://idp.test').setAudience('keyanchor').setSubject('pat').setIssuedAt().setExpirationTime('5m').sign(privateKey);

    const anon = await request(b.app).get('/v1/admin/keys');
    expect({ status: anon.status, code: anon.body.code }).toEqual({ status: 401, code: 'unauthorized' });
    expect(anon.headers['www-authenticate']).toMatch(/^Bearer/);

    const owner = `Bearer ${await token(['team-owners'])}`;
    const created = await request(b.app).post('/v1/admin/keys').set('authorization', owner).send({ name: APP_KEY });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: APP_KEY, createdBy: 'jwt:sub:pat', versions: [{ version: 1, state: 'enabled' }] });
    expect(JSON.stringify(created.body)).not.toMatch(/wrapped|blob/);

    const outsider = `Bearer ${await token(['other'])}`;
    const denied = await request(b.app).post('/v1/admin/keys/team/app-key/rotate').set('authorization', outsider);
    expect({ status: denied.status, code: denied.body.code }).toEqual({ status: 403, code: 'forbidden' });
    await b.close();
    rmSync(jwksDir, { recursive: true });
  });
});
