/**
 * The admin authenticator: bearer JWTs, client certificates, or both, as configured.
 *
 * Which credential decides: a request that carries an `Authorization` header is judged by that
 * header alone. A bearer token that fails verification is refused even when the connection also
 * presents a valid client certificate, and any Authorization header is refused when bearer tokens
 * are not configured. Falling back to the certificate would act under an identity the caller did
 * not ask for (and record that one in the audit trail), and would hide a stolen or broken token.
 * Without an Authorization header, a client certificate decides; without either, 401.
 */
import type { IncomingMessage } from 'node:http';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config.js';
import { BrokerError } from '../errors.js';
import { jwtVerifier } from './jwtAuth.js';
import { hasPeerCertificate, mtlsVerifier } from './mtlsAuth.js';
import type { Authenticator } from './principal.js';

export type { Authenticator, Caller, Principal } from './principal.js';
export { adminTlsOptions } from './mtlsAuth.js';

const BEARER = /^Bearer +(\S+) *$/i;

export function createAuthenticator(admin: Config['admin'], opts: { clock?: Clock } = {}): Authenticator {
  const clock = opts.clock ?? systemClock;
  const jwt = admin.jwt ? jwtVerifier(admin.jwt, clock) : undefined;
  const mtls = admin.mtls ? mtlsVerifier(admin.mtls, clock) : undefined;
  if (!jwt && !mtls) throw new Error('the admin API needs jwt or mtls configured');
  return {
    bearer: jwt !== undefined,
    reload: () => jwt?.reload(),
    async authenticate(req: IncomingMessage) {
      const authorization = req.headers.authorization;
      if (authorization !== undefined) {
        if (!jwt) throw new BrokerError('unauthorized', 'an Authorization header was sent but bearer tokens are not configured');
        const token = BEARER.exec(authorization)?.[1];
        if (!token) throw new BrokerError('unauthorized', 'Authorization is not "Bearer <token>"');
        return jwt(token);
      }
      if (mtls && hasPeerCertificate(req.socket)) return mtls(req.socket);
      throw new BrokerError('unauthorized', 'no credentials');
    },
  };
}
