/**
 * page-dumper for Hono: `app.use(honoDumper(dumper))`, first. Hono answers HEAD by running the
 * GET route and dropping the body, so HEAD requests reach the dumper as GETs and fill the GET
 * entry, as everywhere else.
 *
 * To answer hits before Hono routes at all, wrap its fetch instead:
 * `dumperFetch(dumper, app.fetch)` from `page-dumper/fetch`.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { isPromise } from '../../core/store.js';
import { answer } from '../fetch/index.js';

/** What a middleware that answered without waiting returns: one promise for every hit. */
const DONE: Promise<void> = Promise.resolve();

export function honoDumper(dumper: Dumper): MiddlewareHandler {
  assertDumper(dumper, 'honoDumper');
  return function honoDumperMiddleware(c, next) {
    const response = answer(dumper, c.req.raw, async (request) => {
      // The dumper may hand the app a cleaned request (no validators, no tracking parameters).
      c.req.raw = request;
      await next();
      return c.res;
    });
    if (isPromise(response)) {
      return response.then((r) => respond(c, r));
    }
    // A hit from a synchronous store: no promise of our own to wait for.
    respond(c, response);
    return DONE;
  };
}

/**
 * Makes `r` the response. Hono's `c.res = r` copies the headers of the response it holds (the
 * app's, on a miss) over those of `r`, which would put back what the dumper changed in them: its
 * `Cache-Status` member, the edge headers (`Surrogate-Control`, tags, `no-store` for a page it
 * does not store). `r` already carries every header of the app's response: the one held is
 * dropped first.
 */
function respond(c: Context, r: Response): void {
  c.res = undefined;
  c.res = r;
}

export default honoDumper;
