/**
 * page-dumper for Koa 3 (and Koa 2): `app.use(koaDumper(dumper))`, first.
 *
 * Hits are written straight to Node's response (`ctx.respond = false`), so nothing after the
 * dumper runs for them. On a miss Koa renders as usual, and the response is captured as Koa
 * writes it, whatever `ctx.body` was (string, Buffer, stream, JSON).
 */
import { ReadStream } from 'node:fs';
import type { Context, Middleware, Next } from 'koa';
import { fillOf, handle } from '../node/engine.js';
import { assertDumper, type Dumper } from '../../core/dumper.js';

export function koaDumper(dumper: Dumper): Middleware {
  assertDumper(dumper, 'koaDumper');
  return function koaDumperMiddleware(ctx: Context, next: Next): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      handle(
        dumper,
        ctx.req,
        ctx.res,
        ctx.originalUrl,
        () =>
          void next().then(() => {
            // koa-static and koa-send answer with a file stream (and no Accept-Ranges).
            if (ctx.body instanceof ReadStream) fillOf(ctx.res)?.staticFile();
            resolve();
          }, reject),
        true,
        () => {
          ctx.respond = false;
          resolve();
        },
      );
    });
  };
}

export default koaDumper;
