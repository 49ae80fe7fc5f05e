/** The HTTP application: routes and the one error mapping. No module-level state. */
import { randomBytes } from 'node:crypto';
import express, { type Express } from 'express';
import { BrokerError } from './errors.js';
import { errorHandler } from './http/problem.js';
import { adminRoutes, type AdminRouteDeps } from './http/adminRoutes.js';
import { apiRoutes, type RouteDeps } from './http/routes.js';

/** `admin` is present only when the admin API is enabled; otherwise /v1/admin/* is not_found. */
export type AppDeps = RouteDeps & { admin?: AdminRouteDeps };

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);
  app.use((_req, res, next) => {
    const requestId = randomBytes(8).toString('hex');
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(apiRoutes(deps));
  if (deps.admin) app.use('/v1/admin', adminRoutes(deps.admin));
  app.use(() => {
    throw new BrokerError('not_found', 'no such route');
  });
  app.use(errorHandler(deps.log));
  return app;
}
