/**
 * The HTTP application: the release path's two routes on node:http (http/hotRoutes.ts), everything
 * else on express, and the one error mapping. No module-level state.
 */
import type { RequestListener } from 'node:http';
import express from 'express';
import { BrokerError } from './errors.js';
import { adminRoutes, type AdminRouteDeps } from './http/adminRoutes.js';
import { withHotRoutes } from './http/hotRoutes.js';
import { errorHandler } from './http/problem.js';
import { apiRoutes, type RouteDeps } from './http/routes.js';
import { COMMON_HEADERS, newRequestId } from './server/problemResponse.js';

/** `admin` is present only when the admin API is enabled; otherwise /v1/admin/* is not_found. */
export type AppDeps = RouteDeps & { admin?: AdminRouteDeps };

export function createApp(deps: AppDeps): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);
  app.use((_req, res, next) => {
    const requestId = newRequestId();
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    res.setHeader('Cache-Control', COMMON_HEADERS['Cache-Control']);
    res.setHeader('X-Content-Type-Options', COMMON_HEADERS['X-Content-Type-Options']);
    next();
  });
  app.use(apiRoutes(deps));
  if (deps.admin) app.use('/v1/admin', adminRoutes(deps.admin));
  app.use(() => {
    throw new BrokerError('not_found', 'no such route');
  });
  app.use(errorHandler(deps.log));
  return withHotRoutes(deps, app);
}
