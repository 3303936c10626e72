/**
 * page-dumper for Koa 3 (and Koa 2): `app.use(koaDumper(dumper))`, first.
 *
 * Hits are written straight to Node's response (`ctx.respond = false`), so nothing after the
 * dumper runs for them. On a miss Koa renders as usual, and the response is captured as Koa
 * writes it, whatever `ctx.body` was (string, Buffer, stream, JSON).
 */
import type { Context, Middleware, Next } from 'koa';
import { handle } from '../node/engine.js';
import { assertDumper, type Dumper } from '../../core/dumper.js';

export function koaDumper(dumper: Dumper): Middleware {
  assertDumper(dumper, 'koaDumper');
  return function koaDumperMiddleware(ctx: Context, next: Next): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      handle({
        dumper,
        req: ctx.req,
        res: ctx.res,
        target: ctx.originalUrl,
        app: () => {
          // Koa copied the URL the client sent when it made the context: give it the one the
          // dumper gave the request (the same on a bypass), and forget the URL it parsed.
          ctx.originalUrl = ctx.request.originalUrl = ctx.req.url ?? ctx.originalUrl;
          (ctx.request as { memoizedURL?: unknown }).memoizedURL = undefined;
          void next().then(() => resolve(), reject);
        },
        merge: true,
        served: () => {
          ctx.respond = false;
          resolve();
        },
      });
    });
  };
}

export default koaDumper;
