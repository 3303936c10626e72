import { Readable } from 'node:stream';
import Koa from 'koa';
import { koaDumper } from '../../src/http/koa/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { nodeRequest, type SiteResponse } from '../support/site.js';

/** Koa's way of answering: status, ctx.set(), and a string, a Buffer or a stream as ctx.body. */
function body(r: SiteResponse): string | Buffer | Readable {
  if (r.chunks.length === 1) {
    const c = r.chunks[0]!;
    return typeof c === 'string' ? c : Buffer.from(c);
  }
  return Readable.from(
    (async function* () {
      for (const c of r.chunks) {
        yield typeof c === 'string' ? Buffer.from(c) : Buffer.from(c);
        if (r.pauseMs) await new Promise((x) => setTimeout(x, r.pauseMs));
      }
    })(),
  );
}

httpBehaviourSuite('koaDumper in Koa', (dumper, site) => {
  const app = new Koa();
  app.use(koaDumper(dumper));
  app.use(async (ctx) => {
    const r = await site.handle(nodeRequest(ctx.req, ctx.url));
    ctx.status = r.status;
    for (const [k, v] of Object.entries(r.headers)) ctx.set(k, v);
    ctx.body = body(r);
  });
  return listen(app.callback());
});
