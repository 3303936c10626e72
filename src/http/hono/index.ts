/**
 * page-dumper for Hono: `app.use(honoDumper(dumper))`, first. Hono answers HEAD by running the
 * GET route and dropping the body, so HEAD requests reach the dumper as GETs and fill the GET
 * entry, as everywhere else.
 *
 * To answer hits before Hono routes at all, wrap its fetch instead:
 * `dumperFetch(dumper, app.fetch)` from `page-dumper/fetch`.
 */
import type { MiddlewareHandler } from 'hono';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { serveFetch } from '../fetch/index.js';

export function honoDumper(dumper: Dumper): MiddlewareHandler {
  assertDumper(dumper, 'honoDumper');
  return async function honoDumperMiddleware(c, next) {
    const response = await serveFetch(dumper, c.req.raw, async (request) => {
      // The dumper may hand the app a cleaned request (no validators, no tracking parameters).
      c.req.raw = request;
      await next();
      return c.res;
    });
    c.res = response;
  };
}

export default honoDumper;
